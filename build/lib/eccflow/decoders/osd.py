"""Ordered statistics decoding (Fossorier & Lin, 1995), orders 0, 1 and 2, batched over frames.

For one frame with channel LLRs L (positive means bit 0), reliabilities r = |L| and hard decisions
h = [L < 0]:

1. Order positions by r, most reliable first (permutation pi).
2. Gaussian elimination of G with columns in that order yields the most reliable basis (MRB): the
   first k independent columns, and a generator G~ (k x n) that is the identity on the MRB.
3. Order 0 re-encodes the MRB decisions: c0 = u0 G~ (mod 2), u0 = h restricted to the MRB.
4. Order i tries every flip pattern e of weight <= i on the MRB, c = (u0 + e) G~, and keeps the
   candidate with the least correlation discrepancy  D(c) = sum_j r_j [c_j != h_j]  (the maximum
   correlation codeword among the candidates).

With P (k x (n-k)) the parity part of G~, d0 = [c0 != h] on the parity positions and
w_j = r_j (1 - 2 d0_j), flipping MRB positions S changes the parity discrepancy by sum_j w_j f_j,
f = xor_{a in S} P_a. Writing f_j = P_aj + P_bj - 2 P_aj P_bj for S = {a, b}:

    D(c_a)  = D(c0) + delta_a,             delta_a  = r_a + W_aa                    (order 1)
    D(c_ab) = D(c0) + delta_a + delta_b - 2 W_ab                                    (order 2)
    W = P diag(w) P^T,  (B, k, n-k) x (B, n-k, k)  -- one batched matmul for all pairs.

So order 1 is the diagonal of W and no (B, C(k, 2), n) tensor of codewords is ever built.
"""
from __future__ import annotations

from numbers import Integral

import torch
from torch import nn

from eccflow.codes import Code
from eccflow.decoders.base import DecoderOutput
from eccflow.errors import ConfigError

# Automatic chunk size: about this many elements in the largest work tensor, k * max(n, k) per frame.
_ELEMENT_BUDGET = 2**22


class OSDDecoder(nn.Module):
    """Order-0/1/2 OSD of a binary linear code from its generator ``code.G`` (k x n).

    ``forward(llr)`` takes channel LLRs (B, n), positive means bit 0, and returns
    ``DecoderOutput(llr, bits)`` where ``bits`` (B, n) is the chosen codeword and the soft output is
    ``llr_out_j = (1 - 2 c_j) * max(|llr_j|, tiny)``: the channel reliability carrying the sign of the
    decision (``tiny`` = smallest positive normal of the dtype, so that ``bits == (llr_out < 0)``
    even where the channel LLR is 0).

    Args:
        code: the code; only its generator matrix is used, so redundant rows of H do not matter.
        order: maximum weight of the flip patterns on the MRB, 0, 1 or 2.
        max_batch: frames processed together; larger batches are split into chunks of this size
            (results identical). ``None`` picks it so that a chunk holds about 2^22 elements of
            the (B, k, n) and (B, k, k) work tensors (a peak of roughly 100 MB).
    """

    def __init__(self, code: Code, order: int, max_batch: int | None = None) -> None:
        super().__init__()
        if isinstance(order, bool) or not isinstance(order, Integral) or order not in (0, 1, 2):
            raise ConfigError(f"OSD order must be 0, 1 or 2, got {order!r}")
        if code.k < 1:
            raise ConfigError(f"{code.name}: OSD needs a code of dimension k >= 1, got k = {code.k}")
        bad_batch = isinstance(max_batch, bool) or not isinstance(max_batch, Integral) or max_batch < 1
        if max_batch is not None and bad_batch:
            raise ConfigError(f"OSD max_batch must be a positive integer or None, got {max_batch!r}")
        self.n = code.n
        self.k = code.k
        self.order = int(order)
        self.max_batch = int(max_batch) if max_batch else max(1, _ELEMENT_BUDGET // (self.k * max(self.n, self.k)))
        # Columns of G as rows (n, k), then zero rows up to a multiple of 64: indexing it with a
        # permutation of positions (padded with index n) gathers the permuted columns.
        cols = torch.zeros(64 * -(-self.n // 64), self.k, dtype=torch.uint8)
        cols[: self.n] = torch.as_tensor(code.G.T.copy(), dtype=torch.uint8)
        self.register_buffer("generator_cols", cols, persistent=False)
        # Candidate c (0: order 0, 1..k: single flips, then pairs a < b) flips MRB rows
        # flip_first[c] and flip_second[c]; index k stands for "no flip".
        pairs = torch.triu_indices(self.k, self.k, offset=1)
        singles = torch.arange(self.k)
        none = torch.full((1 + self.k,), self.k)
        self.register_buffer("pair_a", pairs[0], persistent=False)
        self.register_buffer("pair_b", pairs[1], persistent=False)
        self.register_buffer("pair_ab", pairs[0] * self.k + pairs[1], persistent=False)  # flat index into (k, k)
        self.register_buffer("flip_first", torch.cat([none[:1], singles, pairs[0]]), persistent=False)
        self.register_buffer("flip_second", torch.cat([none, pairs[1]]), persistent=False)

    def extra_repr(self) -> str:
        return f"n={self.n}, k={self.k}, order={self.order}, max_batch={self.max_batch}"

    def forward(self, llr: torch.Tensor) -> DecoderOutput:
        """Decode channel LLRs (B, n) -> chosen codewords and their soft output, both (B, n)."""
        if not isinstance(llr, torch.Tensor):
            raise ConfigError(f"OSD input must be a torch.Tensor of LLRs, got {type(llr).__name__}")
        if llr.dim() != 2 or llr.shape[1] != self.n:
            raise ConfigError(f"OSD input must have shape (B, {self.n}), got {tuple(llr.shape)}")
        if not llr.is_floating_point():
            raise ConfigError(f"OSD input must be floating point LLRs, got dtype {llr.dtype}")
        if not torch.isfinite(llr).all():
            raise ConfigError("OSD input contains NaN or infinite LLRs")
        if llr.shape[0] == 0:
            bits = llr.new_zeros(llr.shape)
        else:
            bits = torch.cat([self._decode(chunk) for chunk in llr.split(self.max_batch)])
        magnitude = llr.abs().clamp_min(torch.finfo(llr.dtype).tiny)
        return DecoderOutput(llr=(1.0 - 2.0 * bits) * magnitude, bits=bits)

    def _eliminate(self, perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Gauss-Jordan elimination over GF(2) of G with columns permuted by ``perm`` (B, n).

        Columns are visited in order; a free row with a 1 in column j becomes its pivot and is
        XORed into every other row with a 1 there. Rows are bit-packed into int64 words (column j
        is bit j % 64 of word j // 64), so that a row XOR is a few word operations.

        Returns ``(mrb, parity, par_gen)`` in permuted positions: ``mrb`` (B, k) ascending, the first
        k linearly independent columns (the most reliable basis); ``parity`` (B, n-k) ascending, the
        other positions; ``par_gen`` (B, k, n-k) int64 0/1, the parity part P of the generator that
        is the identity on the MRB, row i belonging to MRB position ``mrb[:, i]``.
        """
        batch, n, k, device = perm.shape[0], self.n, self.k, perm.device
        num_words = self.generator_cols.shape[0] // 64
        past_end = torch.full((batch, 64 * num_words - n), n, dtype=perm.dtype, device=device)
        cols = self.generator_cols[torch.cat([perm, past_end], dim=1)]  # (B, 64 * words, k) 0/1
        cols = cols.view(batch, num_words, 8, 8, k)  # [word, byte, bit]
        packed = cols[:, :, :, 0]
        for bit in range(1, 8):
            packed = packed | (cols[:, :, :, bit] << bit)
        packed = packed.long()  # (B, words, 8, k) bytes
        words = packed[:, :, 0]
        for byte in range(1, 8):
            words = words | (packed[:, :, byte] << 8 * byte)
        words = words.transpose(1, 2).contiguous()  # (B, k, words)
        frames = torch.arange(batch, device=device)
        free = torch.ones(batch, k, dtype=torch.int64, device=device)  # 1: row not yet a pivot
        found_per_col, pivot_per_col = [], []
        for j in range(n):
            col = words[:, :, j // 64].bitwise_right_shift(j % 64).bitwise_and(1)  # column j, (B, k)
            found, pivot = (col & free).max(dim=1)  # any free row with a 1 in column j will do
            pivot_row = words[frames, pivot] * found[:, None]  # zero where column j is dependent
            col[frames, pivot] = 0
            words ^= pivot_row[:, None, :] * col[:, :, None]
            free[frames, pivot] &= 1 - found
            found_per_col.append(found.bool())
            pivot_per_col.append(pivot)
            if j >= k - 1 and not bool(free.any()):
                break
        visited = len(found_per_col)
        is_mrb = torch.stack(found_per_col, dim=1)  # (B, visited), exactly k per frame
        row_order = torch.stack(pivot_per_col, dim=1)[is_mrb].reshape(batch, k)
        is_mrb = torch.nn.functional.pad(is_mrb, (0, n - visited))
        mrb = is_mrb.nonzero()[:, 1].reshape(batch, k)
        parity = (~is_mrb).nonzero()[:, 1].reshape(batch, n - k)
        words = words.gather(1, row_order[:, :, None].expand(-1, -1, num_words))
        par_words = words.gather(2, (parity // 64)[:, None, :].expand(-1, k, -1))
        return mrb, parity, par_words.bitwise_right_shift((parity % 64)[:, None, :]).bitwise_and(1)

    def _decode(self, llr: torch.Tensor) -> torch.Tensor:
        """Codewords (B, n), in ``llr``'s dtype, chosen by OSD of the given order for LLRs (B, n).

        Discrepancies are computed in ``llr``'s dtype (at least float32).
        """
        k = self.k
        dtype = torch.promote_types(llr.dtype, torch.float32)
        perm = llr.abs().argsort(dim=1, descending=True, stable=True)
        rel = llr.abs().gather(1, perm).to(dtype)  # r, permuted, (B, n)
        hard = (llr.gather(1, perm) < 0).to(dtype)  # h, permuted, (B, n)
        mrb, parity, par_gen = self._eliminate(perm)
        par_gen = par_gen.to(dtype)  # P, 0/1: the matmul below counts exactly
        u = hard.gather(1, mrb)  # u0, (B, k)
        par = torch.remainder(torch.bmm(u[:, None, :], par_gen)[:, 0], 2.0)  # order 0: u0 P, (B, n-k)
        if self.order > 0:
            rel_par = rel.gather(1, parity)
            w = rel_par * (1.0 - 2.0 * (par != hard.gather(1, parity)).to(dtype))
            gram = torch.bmm(par_gen * w[:, None, :], par_gen.transpose(1, 2))  # W, (B, k, k)
            delta = rel.gather(1, mrb) + gram.diagonal(dim1=1, dim2=2)  # order-1 changes of D, (B, k)
            costs = [torch.zeros_like(delta[:, :1]), delta]
            if self.order == 2:
                cross = gram.flatten(1).index_select(1, self.pair_ab)  # W_ab, a < b
                costs.append(delta.index_select(1, self.pair_a) + delta.index_select(1, self.pair_b) - 2.0 * cross)
            best = torch.cat(costs, dim=1).argmin(dim=1)  # first minimum: ties keep the lower order
            flips = torch.zeros(u.shape[0], k + 1, dtype=dtype, device=u.device)  # column k: no flip
            flips.scatter_(1, self.flip_first[best, None], 1.0).scatter_(1, self.flip_second[best, None], 1.0)
            flips = flips[:, :k]  # e, weight <= order
            u = torch.remainder(u + flips, 2.0)
            par = torch.remainder(par + torch.bmm(flips[:, None, :], par_gen)[:, 0], 2.0)  # (u0 + e) P
        out = torch.empty_like(llr)
        out.scatter_(1, perm.gather(1, mrb), u.to(llr.dtype))
        return out.scatter_(1, perm.gather(1, parity), par.to(llr.dtype))
