/* Fused code-aware self-attention for the CPU, forward and backward, float32.

   Forward (Vaswani et al., "Attention is all you need", with the additive mask of Choukroun & Wolf,
   "Error Correction Code Transformer"): per batch element b, head h and query i,
       s_ij = scale * <q_i, k_j> + g_hij,   P_ij = exp(s_ij - max_j s_ij) / sum_j exp(...),
       o_i  = sum_j P_ij v_j.
   Backward, with dO the gradient of o:
       dP_ij = <dO_i, v_j>,   dS_ij = P_ij (dP_ij - sum_j P_ij dP_ij),
       dq_i = scale sum_j dS_ij k_j,  dk_j = scale sum_i dS_ij q_i,  dv_j = sum_i P_ij dO_i,  dg_hij = sum_b dS_ij.

   Only the keys some head may attend to are visited: query i's keys are keys[i, 0..K) (padding slots carry
   g = -inf, so P = 0 there). Heads are the vector lanes: channels are laid out head-innermost, (D, H) per
   token with H a multiple of LANES, so every operation on a (query, key) pair is one vector operation over
   eight heads and no horizontal sum is needed.

   Layouts (row-major, contiguous): qkv (B, N, 3, D, H); keys (N, K) int32; g (N, K, H) per key slot;
   o (B, N, D, H); P (B, N, K, H). Each function handles batch elements [b0, b1), so callers may split a
   batch across threads. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Eight floats as one vector (GCC / Clang vector extension: AVX on x86 with -march=native, pairs of
   128-bit registers or NEON elsewhere). */
#define LANES 8
typedef float vf __attribute__((vector_size(4 * LANES)));
typedef int32_t vi __attribute__((vector_size(4 * LANES)));

static inline vf load(const float *x) { vf v; memcpy(&v, x, sizeof v); return v; }
static inline void store(float *x, vf v) { memcpy(x, &v, sizeof v); }
static inline vf splat(float a) { return (vf){0} + a; }
static inline vf select(vi mask, vf yes, vf no) { return (vf)(((vi)yes & mask) | ((vi)no & ~mask)); }

/* exp(x) for x <= 0, exactly 0 below -87 (masked pairs: -inf). x = n ln2 + r with |r| <= ln2 / 2,
   exp(r) by its Taylor series to degree 7 (relative error below 1e-8 on that range), 2^n from the
   float's exponent bits. */
static inline vf exp_nonpositive(vf x) {
    const vi live = x >= splat(-87.0f);
    const vf clamped = select(live, x, splat(-87.0f));
    const vf rounding = splat(12582912.0f); /* 1.5 * 2^23: adding and subtracting it rounds to an integer */
    const vf n = (clamped * 1.44269504f + rounding) - rounding;
    const vf r = (clamped - n * 0.693145752f) - n * 1.42860677e-6f; /* ln2 split in two parts */
    vf p = splat(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return (vf)((vi)(p * (vf)bits) & live);
}

#define INLINE static inline __attribute__((always_inline))

/* Queries of batch elements [b0, b1). Called with a constant D, the per-query vectors (q, o) stay in
   registers. */
INLINE void forward_rows(const float *qkv, const int32_t *keys, const float *bias, int64_t b0, int64_t b1,
                         int64_t N, int64_t K, int64_t D, int64_t H, float scale, float *out, float *prob) {
    const int64_t row = D * H, token = 3 * row;
    for (int64_t b = b0; b < b1; ++b) {
        const float *x = qkv + b * N * token;
        for (int64_t i = 0; i < N; ++i) {
            const int32_t *key = keys + i * K;
            const float *g = bias + i * K * H;
            float *p = prob + (b * N + i) * K * H, *o = out + (b * N + i) * row;
            for (int64_t lane = 0; lane < H; lane += LANES) {
                vf q[D], acc[D];
                for (int64_t d = 0; d < D; ++d) {
                    q[d] = scale * load(x + i * token + d * H + lane);
                    acc[d] = splat(0.0f);
                }
                vf top = splat(-INFINITY);
                for (int64_t s = 0; s < K; ++s) {
                    const float *kj = x + key[s] * token + row + lane;
                    vf score = load(g + s * H + lane);
                    for (int64_t d = 0; d < D; ++d) score += q[d] * load(kj + d * H);
                    store(p + s * H + lane, score);
                    top = select(score > top, score, top);
                }
                vf total = splat(0.0f);
                for (int64_t s = 0; s < K; ++s) {
                    const vf e = exp_nonpositive(load(p + s * H + lane) - top);
                    store(p + s * H + lane, e);
                    total += e;
                }
                const vf inverse = splat(1.0f) / total;
                for (int64_t s = 0; s < K; ++s) {
                    const vf weight = load(p + s * H + lane) * inverse;
                    const float *vj = x + key[s] * token + 2 * row + lane;
                    store(p + s * H + lane, weight);
                    for (int64_t d = 0; d < D; ++d) acc[d] += weight * load(vj + d * H);
                }
                for (int64_t d = 0; d < D; ++d) store(o + d * H + lane, acc[d]);
            }
        }
    }
}

/* dqkv arrives zeroed; dp is scratch for K * H floats; dbias (N, K, H) may be NULL. */
INLINE void backward_rows(const float *qkv, const int32_t *keys, const float *prob, const float *dout, int64_t b0,
                          int64_t b1, int64_t N, int64_t K, int64_t D, int64_t H, float scale, float *dqkv,
                          float *dbias, float *dp) {
    const int64_t row = D * H, token = 3 * row;
    for (int64_t b = b0; b < b1; ++b) {
        const float *x = qkv + b * N * token;
        float *dx = dqkv + b * N * token;
        for (int64_t i = 0; i < N; ++i) {
            const int32_t *key = keys + i * K;
            const float *p = prob + (b * N + i) * K * H, *dO = dout + (b * N + i) * row;
            for (int64_t lane = 0; lane < H; lane += LANES) {
                vf q[D], g[D], dq[D];
                for (int64_t d = 0; d < D; ++d) {
                    q[d] = scale * load(x + i * token + d * H + lane);
                    g[d] = load(dO + d * H + lane);
                    dq[d] = splat(0.0f);
                }
                vf weighted = splat(0.0f);
                for (int64_t s = 0; s < K; ++s) {
                    const float *vj = x + key[s] * token + 2 * row + lane;
                    vf dps = splat(0.0f);
                    for (int64_t d = 0; d < D; ++d) dps += g[d] * load(vj + d * H);
                    store(dp + s * H + lane, dps);
                    weighted += load(p + s * H + lane) * dps;
                }
                for (int64_t s = 0; s < K; ++s) {
                    const int64_t j = key[s];
                    const vf ps = load(p + s * H + lane);
                    const vf ds = ps * (load(dp + s * H + lane) - weighted);
                    if (dbias) {
                        float *db = dbias + (i * K + s) * H + lane;
                        store(db, load(db) + ds);
                    }
                    const float *kj = x + j * token + row + lane;
                    float *dkj = dx + j * token + row + lane, *dvj = dx + j * token + 2 * row + lane;
                    for (int64_t d = 0; d < D; ++d) {
                        dq[d] += ds * load(kj + d * H);
                        store(dkj + d * H, load(dkj + d * H) + ds * q[d]);
                        store(dvj + d * H, load(dvj + d * H) + ps * g[d]);
                    }
                }
                for (int64_t d = 0; d < D; ++d) store(dx + i * token + d * H + lane, scale * dq[d]);
            }
        }
    }
}

/* Head widths of the usual presets get their own unrolled copies. */
#define DISPATCH(call_with)                      \
    switch (D) {                                 \
    case 4: call_with(4); break;                 \
    case 8: call_with(8); break;                 \
    case 16: call_with(16); break;               \
    case 32: call_with(32); break;               \
    default: call_with(D); break;                \
    }

int eccflow_attention_forward(const float *qkv, const int32_t *keys, const float *bias, int64_t b0, int64_t b1,
                              int64_t N, int64_t K, int64_t D, int64_t H, float scale, float *out, float *prob) {
#define FORWARD(width) forward_rows(qkv, keys, bias, b0, b1, N, K, width, H, scale, out, prob)
    DISPATCH(FORWARD)
#undef FORWARD
    return 0;
}

int eccflow_attention_backward(const float *qkv, const int32_t *keys, const float *prob, const float *dout,
                               int64_t b0, int64_t b1, int64_t N, int64_t K, int64_t D, int64_t H, float scale,
                               float *dqkv, float *dbias) {
    float *dp = malloc(sizeof(float) * K * H);
    if (!dp) return 1;
#define BACKWARD(width) backward_rows(qkv, keys, prob, dout, b0, b1, N, K, width, H, scale, dqkv, dbias, dp)
    DISPATCH(BACKWARD)
#undef BACKWARD
    free(dp);
    return 0;
}
