"""Constructed codes (BCH, polar, Gallager/PEG LDPC, SC-LDPC) against known properties and the shared files."""
import math

import numpy as np
import pytest

from eccflow.codes import get_code, gf2
from eccflow.codes.constructions.bch import GF2m, bch_code, cyclotomic_cosets
from eccflow.codes.constructions.ldpc import gallager_code, peg_code
from eccflow.codes.constructions.polar import (
    bhattacharyya_parameters,
    kronecker_power,
    polar_code,
    polarization_weights,
)
from eccflow.codes.constructions.sc_ldpc import sc_ldpc_code
from eccflow.codes.graph import girth
from eccflow.codes.registry import shared_code_files
from eccflow.errors import CodeFormatError, ConfigError


def codewords(code):
    """All 2^k codewords (k <= 16), as a (2^k, n) uint8 array."""
    messages = (np.arange(1 << code.k)[:, None] >> np.arange(code.k)[None, :]) & 1
    return (messages.astype(np.int32) @ code.G.astype(np.int32) % 2).astype(np.uint8)


def minimum_distance(code):
    weights = codewords(code).sum(axis=1)
    return int(weights[weights > 0].min())


def same_code(H1, H2):
    """Equal row spaces over GF(2)."""
    r1, r2 = gf2.rank(H1), gf2.rank(H2)
    return r1 == r2 == gf2.rank(np.vstack([H1, H2]))


def bit_reverse(i, m):
    return int(format(int(i), f"0{m}b")[::-1], 2)


# ---- BCH ------------------------------------------------------------------------------------------

# (m, t) -> shared file with the same (n, k)
BCH_SHARED = {
    (5, 3): "BCH_n31_k16", (6, 3): "BCH_n63_k45", (6, 2): "BCH_n63_k51", (6, 5): "BCH_n63_k36",
    (6, 6): "BCH_n63_k30", (6, 4): "BCH_n63_k39", (6, 1): "BCH_n63_k57", (4, 2): "BCH_n15_k7",
    (4, 1): "BCH_n15_k11", (7, 10): "BCH_n127_k64", (7, 4): "BCH_n127_k99", (8, 6): "BCH_n255_k207",
    (9, 6): "BCH_n511_k457",
}


@pytest.mark.parametrize(("m", "t"), sorted(BCH_SHARED))
def test_bch_matches_shared_file(m, t):
    code = bch_code(m, t)
    shared = get_code(BCH_SHARED[(m, t)])
    assert (code.n, code.k) == (shared.n, shared.k)
    # Same primitive polynomial table and the same row layout (x^i h*(x)): identical matrices.
    assert np.array_equal(code.H, shared.H)
    assert code.num_checks == code.n - code.k
    assert not gf2.matmul(code.G, code.H.T).any()


def test_bch_n63_k45_depends_on_the_primitive_polynomial():
    # x^6 + x^5 + 1 is the reciprocal of the default x^6 + x + 1: same (63, 45) parameters, a different
    # (coordinate-reversed) code, not the shared one.
    other = bch_code(6, 3, primitive_poly=0b1100001)
    shared = get_code("BCH_n63_k45")
    assert other.k == 45 and other.name == "BCH_m6_t3_p97"
    assert not same_code(other.H, shared.H)
    assert same_code(other.H[:, ::-1], shared.H)


def test_gf2m_field_axioms_and_cosets():
    field = GF2m(5)
    assert sorted(field.exp[: field.n].tolist()) == list(range(1, 32))  # alpha generates GF(32)*
    a, b = 7, 19
    assert field.mul(a, b) == field.mul(b, a) and field.mul(a, 1) == a and field.mul(a, 0) == 0
    cosets = cyclotomic_cosets(15)
    assert cosets == [[0], [1, 2, 4, 8], [3, 6, 12, 9], [5, 10], [7, 14, 13, 11]]
    # Minimal polynomial of alpha^5 in GF(16) is x^2 + x + 1.
    assert GF2m(4).minimal_polynomial([5, 10]).tolist() == [1, 1, 1]


def test_bch_generator_polynomial_and_cyclic_structure():
    code = bch_code(6, 3)
    g = np.asarray(code.meta["generator_polynomial"], dtype=np.uint8)
    assert g.size - 1 == code.n - code.k == 18 and g[0] == g[-1] == 1
    # g(x) x^i are codewords.
    shifts = np.zeros((code.k, code.n), dtype=np.uint8)
    for i in range(code.k):
        shifts[i, i : i + g.size] = g
    assert not gf2.matmul(shifts, code.H.T).any()
    # Every cyclic shift of every codeword is a codeword.
    for s in (1, 5, 62):
        assert not gf2.matmul(np.roll(code.G, s, axis=1), code.H.T).any()
    # Rows of H are successive right shifts.
    assert np.array_equal(code.H[1:], np.roll(code.H[:-1], 1, axis=1))


@pytest.mark.parametrize(("m", "t", "d"), [(4, 2, 5), (5, 3, 7), (4, 1, 3), (5, 5, 11), (3, 1, 3)])
def test_bch_minimum_distance_by_enumeration(m, t, d):
    code = bch_code(m, t)
    assert code.k <= 16
    assert minimum_distance(code) == d >= code.meta["delta"]


def test_bch_largest_field_and_registry():
    code = get_code("bch_m10_t3")
    assert (code.n, code.k, code.name, code.family) == (1023, 993, "BCH_m10_t3", "BCH")
    assert code.meta["delta"] == 7
    assert get_code("BCH_M6_T3").H.tolist() == get_code("BCH_n63_k45").H.tolist()


@pytest.mark.parametrize(
    ("m", "t", "message"),
    [(2, 1, "m must be"), (11, 1, "m must be"), (4, 0, "t must be"), (4, 8, "too large"), (3, 4, "too large")],
)
def test_bch_bad_parameters(m, t, message):
    with pytest.raises(CodeFormatError, match=message):
        bch_code(m, t)


def test_bch_rejects_non_primitive_polynomial():
    with pytest.raises(CodeFormatError, match="not primitive"):
        bch_code(4, 1, primitive_poly=0b11111)  # x^4 + x^3 + x^2 + x + 1: alpha has order 5


# ---- polar ----------------------------------------------------------------------------------------


def test_kronecker_power_is_an_involution():
    for m in (1, 3, 6):
        F = kronecker_power(m)
        assert np.array_equal(gf2.matmul(F, F), np.eye(1 << m, dtype=np.uint8))
    assert np.array_equal(kronecker_power(1), [[1, 0], [1, 1]])
    assert np.array_equal(kronecker_power(3), np.kron(kronecker_power(1), kronecker_power(2)))


@pytest.mark.parametrize("order", ["pw", "bhattacharyya"])
@pytest.mark.parametrize(("n", "k"), [(16, 8), (32, 16), (64, 48), (128, 64)])
def test_polar_structure(n, k, order):
    code = polar_code(n, k, order)
    F = kronecker_power(int(math.log2(n)))
    frozen, info = np.asarray(code.meta["frozen_set"]), np.asarray(code.meta["info_set"])
    assert code.k == k and code.rank == n - k == frozen.size
    assert sorted(np.concatenate([frozen, info]).tolist()) == list(range(n))
    assert np.array_equal(code.H, F[:, frozen].T)  # rows are columns of F^{⊗m}
    assert not gf2.matmul(F[info], code.H.T).any()  # G = F^{⊗m}[info] satisfies G H^T = 0
    assert not gf2.matmul(code.G, code.H.T).any()


@pytest.mark.parametrize(("n", "k", "order"), [(16, 8, "pw"), (16, 5, "bhattacharyya"), (32, 16, "pw"), (32, 11, "bhattacharyya")])
def test_polar_minimum_distance_is_min_information_row_weight(n, k, order):
    code = polar_code(n, k, order)
    F = kronecker_power(int(math.log2(n)))
    expected = int(F[code.meta["info_set"]].sum(axis=1).min())
    assert minimum_distance(code) == expected


def test_reliability_orders():
    # PW of index i = sum of beta^j over its set bits: 3 (1 + beta) outranks 4 (beta^2).
    w = polarization_weights(3)
    assert np.allclose(w, [0, 1, 2 ** 0.25, 1 + 2 ** 0.25, 2 ** 0.5, 1 + 2 ** 0.5, 2 ** 0.25 + 2 ** 0.5, 1 + 2 ** 0.25 + 2 ** 0.5])
    assert polar_code(8, 4).meta["frozen_set"] == [0, 1, 2, 4]
    # The BEC recursion conserves the sum of Bhattacharyya parameters: (2z - z^2) + z^2 = 2z.
    z = bhattacharyya_parameters(7, 1.0, 0.5)
    assert z.sum() == pytest.approx(128 * math.exp(-0.5 * 10 ** 0.1))
    assert z[-1] == z.min() and z[0] == z.max()
    # Both orders respect the partial order: setting a bit never makes a channel worse.
    for order in ("pw", "bhattacharyya"):
        info = set(polar_code(64, 32, order).meta["info_set"])
        assert all((i | (1 << b)) in info for i in info for b in range(6))


# The shared POLAR files list the frozen columns of F^{⊗m} at bit-reversed indices (Arikan's
# G = B_N F^{⊗m} convention), with frozen sets from the Bhattacharyya recursion at Es/N0 = 4 dB.
POLAR_SHARED = ["POLAR_n16_k8", "POLAR_n32_k16", "POLAR_n64_k22", "POLAR_n64_k32", "POLAR_n64_k48",
                "POLAR_n128_k43", "POLAR_n128_k64", "POLAR_n128_k86", "POLAR_n128_k96"]


def shared_frozen_set(code):
    F = kronecker_power(int(math.log2(code.n)))
    columns = {tuple(col): j for j, col in enumerate(F.T.tolist())}
    return sorted(columns[tuple(row)] for row in code.H.tolist())


@pytest.mark.parametrize("name", POLAR_SHARED)
def test_shared_polar_files_are_bit_reversed_bhattacharyya_codes(name):
    shared = get_code(name)
    n, k, m = shared.n, shared.k, int(math.log2(shared.n))
    ours = polar_code(n, k, "bhattacharyya", design_ebn0_db=4.0 - 10 * math.log10(k / n))
    assert shared_frozen_set(shared) == sorted(bit_reverse(i, m) for i in ours.meta["frozen_set"])
    perm = [bit_reverse(i, m) for i in range(n)]
    assert same_code(ours.H[:, perm], shared.H)  # the same code up to bit-reversal of coordinates


@pytest.mark.parametrize(
    ("name", "pw_bit_reversed_matches"),
    [("POLAR_n64_k32", False), ("POLAR_n64_k48", True), ("POLAR_n128_k64", False)],
)
def test_pw_order_against_shared_polar_files(name, pw_bit_reversed_matches):
    shared = get_code(name)
    m = int(math.log2(shared.n))
    pw = polar_code(shared.n, shared.k).meta["frozen_set"]
    assert shared_frozen_set(shared) != pw  # natural-order sets never match the files
    assert (shared_frozen_set(shared) == sorted(bit_reverse(i, m) for i in pw)) is pw_bit_reversed_matches


def test_polar_registry_names():
    assert get_code("polarpw_n128_k64").name == "POLARPW_n128_k64"
    bh = get_code("polarbh_n64_k32_e2.5")
    assert bh.name == "POLARBH_n64_k32_e2.5" and bh.meta["design_ebn0_db"] == 2.5
    assert get_code("polarbh_n64_k32").meta["frozen_set"] == polar_code(64, 32, "bhattacharyya").meta["frozen_set"]
    assert "POLAR_n64_k32" in shared_code_files()  # the plain name stays the shared file


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((48, 24), CodeFormatError, "power of two"),
        ((1, 1), CodeFormatError, "power of two"),
        ((64, 65), CodeFormatError, "0 < k < n"),
        ((64, 64), CodeFormatError, "0 < k < n"),
        ((64, 0), CodeFormatError, "0 < k < n"),
        ((64, 32, "tal-vardy"), ConfigError, "unknown reliability order"),
        ((64, 32, "bhattacharyya", float("nan")), ConfigError, "design_ebn0_db"),
    ],
)
def test_polar_bad_parameters(args, error, message):
    with pytest.raises(error, match=message):
        polar_code(*args)


# ---- Gallager and PEG LDPC ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def peg512():
    return peg_code(512, 3, 6, seed=0)


def test_gallager_structure():
    code = gallager_code(96, 3, 6, seed=0)
    assert code.H.shape == (48, 96)
    assert set(code.variable_degrees.tolist()) == {3} and set(code.check_degrees.tolist()) == {6}
    # Each of the dv sub-matrices covers every column once, so their row sums coincide: dv - 1 dependencies.
    blocks = code.H.reshape(3, 16, 96).sum(axis=1)
    assert np.array_equal(blocks, np.ones((3, 96)))
    assert code.num_checks - code.rank == 2 and code.k == 50
    assert not gf2.matmul(code.G, code.H.T).any()
    assert np.array_equal(gallager_code(96, 3, 6, seed=0).H, code.H)
    assert not np.array_equal(gallager_code(96, 3, 6, seed=1).H, code.H)


def test_peg_is_regular_with_girth_eight(peg512):
    assert peg512.H.shape == (256, 512)
    assert set(peg512.variable_degrees.tolist()) == {3} and set(peg512.check_degrees.tolist()) == {6}
    assert girth(peg512) == 8
    assert peg512.k == 512 - peg512.rank >= 256
    assert np.array_equal(get_code("peg_n512_dv3_dc6").H, peg512.H)


@pytest.mark.parametrize("seed", [0, 3])
def test_peg_girth_beats_gallager(seed):
    # Gallager needs dc | n, so the comparison runs at n = 510 (512 is not a multiple of 6). With seed 3 the
    # degree cap forces the last variable into 4-cycles; the swap repair must restore girth 8.
    peg, gal = peg_code(510, 3, 6, seed), gallager_code(510, 3, 6, seed)
    assert set(peg.check_degrees.tolist()) == {6}
    assert girth(peg) == 8 > girth(gal) == 4


def test_peg_seeds_and_names():
    a, b = peg_code(96, 3, 6, seed=1), peg_code(96, 3, 6, seed=2)
    assert np.array_equal(a.H, peg_code(96, 3, 6, seed=1).H) and not np.array_equal(a.H, b.H)
    assert a.name == "PEG_n96_dv3_dc6_s1" and get_code("PEG_n96_dv3_dc6_s1").H.tolist() == a.H.tolist()
    assert get_code("gallager_n96_dv3_dc6").name == "GALLAGER_n96_dv3_dc6"
    odd = peg_code(10, 3, 6)  # dc | n dv although dc does not divide n: PEG still works
    assert set(odd.check_degrees.tolist()) == {6} and set(odd.variable_degrees.tolist()) == {3}


@pytest.mark.parametrize("build", [gallager_code, peg_code])
@pytest.mark.parametrize(
    ("n", "dv", "dc", "message"),
    [(100, 3, 7, "does not divide n \\* dv"), (96, 1, 6, "dv must be >= 2"), (96, 4, 4, "must exceed dv"), (4, 3, 6, "exceeds the length")],
)
def test_ldpc_bad_parameters(build, n, dv, dc, message):
    with pytest.raises(CodeFormatError, match=message):
        build(n, dv, dc)


def test_gallager_needs_dc_dividing_n_and_valid_seed():
    with pytest.raises(CodeFormatError, match="multiple of dc"):
        gallager_code(512, 3, 6)
    with pytest.raises(ConfigError, match="seed"):
        peg_code(96, 3, 6, seed=-1)


# ---- SC-LDPC --------------------------------------------------------------------------------------


def test_sc_ldpc_default_shapes_and_rate():
    code = get_code("scldpc_dv3_dc6_w3_L20_M50")
    meta = code.meta
    assert code.name == "SCLDPC_dv3_dc6_w3_L20_M50" and code.family == "SC-LDPC"
    assert code.H.shape == (22 * 50, 20 * 2 * 50)
    assert (meta["positions"], meta["vars_per_position"], meta["checks_per_position"]) == (20, 100, 50)
    assert meta["design_rate"] == pytest.approx(1 - 22 / 40)
    assert np.array_equal(meta["coupled_protograph"][:3, :2], [[1, 1], [1, 1], [1, 1]])
    assert code.k == code.n - code.rank >= round(meta["design_rate"] * code.n)


@pytest.mark.parametrize(("dv", "dc", "w", "L", "M"), [(3, 6, 3, 6, 8), (4, 8, 2, 5, 7), (3, 6, 2, 4, 5), (4, 6, 2, 4, 6)])
def test_sc_ldpc_band_structure_and_degrees(dv, dc, w, L, M):
    code = sc_ldpc_code(dv, dc, w, L, M, seed=1)
    meta = code.meta
    b_c, b_v = np.asarray(meta["protograph"]).shape
    assert code.H.shape == ((L + w - 1) * b_c * M, L * b_v * M)
    var_pos, check_pos = meta["var_position"], meta["check_position"]
    assert np.array_equal(var_pos, np.repeat(np.arange(L), b_v * M))
    assert np.array_equal(check_pos, np.repeat(np.arange(L + w - 1), b_c * M))
    lag = check_pos[code.edge_check] - var_pos[code.edge_var]
    assert lag.min() >= 0 and lag.max() <= w - 1  # check position t touches variable positions t-w+1..t
    assert set(code.variable_degrees.tolist()) == {dv}
    interior = (check_pos >= w - 1) & (check_pos <= L - 1)
    assert set(code.check_degrees[interior].tolist()) == {dc}
    assert code.check_degrees[~interior].max() < dc
    # Every edge joins a check and a variable whose proto nodes are adjacent in the coupled protograph.
    coupled = np.asarray(meta["coupled_protograph"])
    assert (coupled[meta["proto_check"][code.edge_check], meta["proto_var"][code.edge_var]] > 0).all()
    assert np.array_equal(meta["proto_var"] // b_v, var_pos)


def test_sc_ldpc_parallel_edges_and_seeds():
    spread = [np.array([[2, 1]]), np.array([[1, 2]])]
    code = sc_ldpc_code(3, 6, w=2, L=4, M=5, seed=2, edge_spreading=spread)
    assert code.name.endswith("_custom")
    assert set(code.variable_degrees.tolist()) == {3}  # distinct shifts keep double edges as weight 2
    assert np.array_equal(sc_ldpc_code(3, 6, 3, 5, 10, seed=4).H, sc_ldpc_code(3, 6, 3, 5, 10, seed=4).H)
    assert not np.array_equal(sc_ldpc_code(3, 6, 3, 5, 10, seed=4).H, sc_ldpc_code(3, 6, 3, 5, 10, seed=5).H)
    assert get_code("scldpc_dv3_dc6_w3_L5_M10_s4").name == "SCLDPC_dv3_dc6_w3_L5_M10_s4"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"w": 4}, "exceeds the largest protograph entry"),
        ({"w": 2, "edge_spreading": [np.array([[1, 1]]), np.array([[1, 1]])]}, "sum to"),
        ({"w": 2, "edge_spreading": [np.array([[3, 3]])]}, "expected w = 2"),
        ({"protograph": np.array([[2, 4]])}, "column sums"),
        ({"w": 2, "M": 1}, "lifting factor"),
        ({"L": 0}, "L must be a positive integer"),
        ({"dv": 6, "dc": 6}, "must exceed dv"),
    ],
)
def test_sc_ldpc_bad_parameters(kwargs, message):
    args = {"L": 4, "M": 5, **kwargs}
    with pytest.raises(CodeFormatError, match=message):
        sc_ldpc_code(**args)
