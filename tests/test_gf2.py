import numpy as np
import pytest

from eccflow.codes import gf2


def reference_rank(a: np.ndarray) -> int:
    """Rank by elimination on Python integers (one bitmask per row)."""
    rows = [int("".join(map(str, r)), 2) for r in a]
    rank = 0
    while rows:
        pivot = max(rows)
        rows.remove(pivot)
        if pivot == 0:
            continue
        rank += 1
        top = pivot.bit_length() - 1
        rows = [r ^ pivot if (r >> top) & 1 else r for r in rows]
    return rank


@pytest.mark.parametrize("shape", [(5, 9), (12, 20), (20, 12), (30, 70), (64, 64)])
def test_rank_matches_reference(shape):
    rng = np.random.default_rng(sum(shape))
    for density in (0.1, 0.5):
        a = (rng.random(shape) < density).astype(np.uint8)
        assert gf2.rank(a) == reference_rank(a)


def test_rref_is_reduced_and_spans_same_space():
    rng = np.random.default_rng(1)
    a = (rng.random((10, 17)) < 0.4).astype(np.uint8)
    a[3] = a[1] ^ a[2]  # a dependent row
    r, piv = gf2.rref(a)
    assert piv.size == reference_rank(a)
    assert np.array_equal(r[:, piv][: piv.size], np.eye(piv.size, dtype=np.uint8))
    assert not r[piv.size :].any()
    # Same row space: stacking does not raise the rank.
    assert gf2.rank(np.vstack([a, r])) == piv.size


def test_nullspace_and_generator():
    rng = np.random.default_rng(2)
    H = (rng.random((8, 20)) < 0.3).astype(np.uint8)
    N, free = gf2.nullspace(H)
    assert N.shape == (20 - gf2.rank(H), 20)
    assert not gf2.matmul(H, N.T).any()
    assert np.array_equal(N[:, free], np.eye(free.size, dtype=np.uint8))
    assert gf2.rank(N) == N.shape[0]


def test_systematic_form():
    rng = np.random.default_rng(3)
    H = (rng.random((9, 21)) < 0.35).astype(np.uint8)
    H[8] = H[0] ^ H[5]
    h_std, g_std, perm = gf2.systematic_form(H)
    r = gf2.rank(H)
    assert h_std.shape == (r, 21) and g_std.shape == (21 - r, 21)
    assert np.array_equal(h_std[:, 21 - r :], np.eye(r, dtype=np.uint8))
    assert np.array_equal(g_std[:, : 21 - r], np.eye(21 - r, dtype=np.uint8))
    assert not gf2.matmul(g_std, h_std.T).any()
    assert gf2.rank(np.vstack([H[:, perm], h_std])) == r
    assert sorted(perm) == list(range(21))


def test_rejects_non_matrix():
    with pytest.raises(ValueError, match="2-D"):
        gf2.rank(np.ones(4))
