"""5G NR LDPC mother codes (TS 38.212 section 5.3.2): tables, lifting, structure, and sionna's pcm."""
import numpy as np
import pytest

from eccflow.codes import get_code, gf2
from eccflow.codes.constructions.nr5g import (
    BASE_GRAPH_SHAPES,
    INFO_COLUMNS,
    LIFTING_SIZES,
    base_matrix,
    lift,
    nr5g_ldpc_code,
    set_index,
    shift_table,
)
from eccflow.errors import ConfigError, UnknownCodeError

SMALL_Z = [z for sizes in LIFTING_SIZES.values() for z in sizes if z <= 16]


def test_lifting_size_table():
    # Table 5.3.2-1: 51 sizes a 2^j <= 384, each in exactly one set
    sizes = [z for row in LIFTING_SIZES.values() for z in row]
    assert len(sizes) == len(set(sizes)) == 51
    for i_ls, (a, row) in enumerate(zip((2, 3, 5, 7, 9, 11, 13, 15), LIFTING_SIZES.values())):
        assert row == tuple(a << j for j in range(len(row)))
        assert row[-1] <= 384 < 2 * row[-1]
        assert all(set_index(z) == i_ls for z in row)


@pytest.mark.parametrize(
    "bg, entries, row_degrees, col_degrees, first_cols",
    [(1, 316, (3, 19), (1, 30), (30, 28)), (2, 197, (3, 10), (1, 23), (22, 23))],
)
def test_base_graph_counts_and_degrees(bg, entries, row_degrees, col_degrees, first_cols):
    table = shift_table(bg)
    assert table.shape == (8, *BASE_GRAPH_SHAPES[bg])
    present = table >= 0
    assert (present == present[0]).all()  # the same positions for every set index
    assert present[0].sum() == entries
    rows, cols = present[0].sum(axis=1), present[0].sum(axis=0)
    assert (rows.min(), rows.max()) == row_degrees
    assert (cols.min(), cols.max()) == col_degrees
    assert tuple(cols[:2]) == first_cols
    # V_ij < largest Z of its set, so every shift is distinct mod that Z
    for i_ls, sizes in LIFTING_SIZES.items():
        assert table[i_ls].max() < sizes[-1]


def test_table_spot_values():
    # H_BG(0, 0) for i_LS = 0..7 as printed in Tables 5.3.2-2 and 5.3.2-3
    assert shift_table(1)[:, 0, 0].tolist() == [250, 307, 73, 223, 211, 294, 0, 135]
    assert shift_table(2)[:, 0, 0].tolist() == [9, 174, 0, 72, 3, 156, 143, 145]


@pytest.mark.parametrize("bg", [1, 2])
def test_base_graph_structure(bg):
    """Columns k_b..k_b+3: weight-3 column plus double diagonal on rows 0..3; then the identity extension."""
    table = shift_table(bg)
    m, n = BASE_GRAPH_SHAPES[bg]
    kb = INFO_COLUMNS[bg]
    weight3_rows = (0, 1, 3) if bg == 1 else (0, 2, 3)
    for i_ls in range(8):
        core = table[i_ls, :4, kb : kb + 4]
        assert sorted(np.flatnonzero(core[:, 0] >= 0)) == list(weight3_rows)
        # double diagonal of zero shifts in columns k_b+1 .. k_b+3
        expected = np.full((4, 3), -1)
        for c in range(3):
            expected[c : c + 2, c] = 0
        assert np.array_equal(core[:, 1:], expected)
        assert (table[i_ls, :4, kb + 4 :] == -1).all()
        assert np.array_equal(table[i_ls, 4:, kb + 4 :], np.where(np.eye(m - 4, dtype=bool), 0, -1))
    # the weight-3 column's shifts, with the standard's exceptions (BG1 i_LS 6; BG2 i_LS 3 and 7)
    col = table[:, list(weight3_rows), kb]
    if bg == 1:
        assert all(col[i].tolist() == ([0, 105, 0] if i == 6 else [1, 0, 1]) for i in range(8))
    else:
        assert all(col[i].tolist() == ([1, 0, 1] if i in (3, 7) else [0, 1, 0]) for i in range(8))


def test_lifting_shift_convention():
    P = 250 % 16  # BG1 (0, 0), i_LS = 0, Z = 16
    assert base_matrix(1, 16)[0, 0] == P
    H = nr5g_ldpc_code(1, 16).H
    block = H[:16, :16]
    assert np.array_equal(np.flatnonzero(block[0]), [P])
    assert all(block[r, (r + P) % 16] == 1 and block[r].sum() == 1 for r in range(16))
    assert np.array_equal(lift(np.array([[-1, 1]]), 3), [[0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1], [0, 0, 0, 1, 0, 0]])


@pytest.mark.parametrize("bg", [1, 2])
@pytest.mark.parametrize("Z", SMALL_Z)
def test_lifted_shape_rank_and_systematic_part(bg, Z):
    code = nr5g_ldpc_code(bg, Z)
    m, n = BASE_GRAPH_SHAPES[bg]
    kb = INFO_COLUMNS[bg]
    assert code.H.shape == (m * Z, n * Z)
    assert code.num_edges == (shift_table(bg)[0] >= 0).sum() * Z
    assert code.k == kb * Z == code.meta["info_bits"]
    # the parity columns alone have full rank, so the first k_b Z bits are an information set
    assert gf2.rank(code.H[:, kb * Z :]) == m * Z
    # identity extension in the lifted matrix
    assert np.array_equal(code.H[4 * Z :, (kb + 4) * Z :], np.eye((m - 4) * Z, dtype=np.uint8))
    assert not code.H[: 4 * Z, (kb + 4) * Z :].any()


def test_registry_name_and_meta():
    code = get_code("nr5g_bg2_z20")
    assert (code.name, code.family, code.n, code.k, code.num_checks) == ("NR5G_BG2_Z20", "NR5G", 1040, 200, 840)
    assert code.meta["set_index"] == 2 and code.meta["base_graph"] == 2 and code.meta["Z"] == 20
    assert code.meta["punctured_bits"] == 40 and code.meta["info_columns"] == 10
    assert code.meta["circular_buffer_bits"] == 1000
    assert get_code("NR5G_BG1_Z2").H.shape == (92, 136)


def test_bad_parameters():
    with pytest.raises(ConfigError, match=r"Z = 21 is not in .*Table 5.3.2-1; valid Z: 2, 3, 4"):
        nr5g_ldpc_code(1, 21)
    with pytest.raises(ConfigError, match="Z = 512"):
        get_code("nr5g_bg1_z512")
    with pytest.raises(ConfigError, match="base graph must be 1 or 2, got 3"):
        get_code("nr5g_bg3_z20")
    with pytest.raises(ConfigError, match="lifting size"):
        nr5g_ldpc_code(2, 20.0)
    with pytest.raises(UnknownCodeError):
        get_code("nr5g_bgx_z20")


# ---- peer: sionna's LDPC5GEncoder(k, n).pcm -------------------------------------------------------


def _sionna_encoder(k, n, bg):
    ldpc = pytest.importorskip("sionna.phy.fec.ldpc")
    return ldpc.LDPC5GEncoder(k, n, bg=f"bg{bg}")


def _selected_z(bg, k):
    """TS 38.212 section 5.3.2 with K' = K: K_b from K (BG2), Z_c = min Z of Table 5.3.2-1 with K_b Z >= K."""
    kb = 22 if bg == 1 else 10 if k > 640 else 9 if k > 560 else 8 if k > 192 else 6
    return min(z for sizes in LIFTING_SIZES.values() for z in sizes if kb * z >= k)


def _assert_equal_to_sionna(code, pcm):
    assert pcm.shape == code.H.shape
    pcm = pcm.tocoo()
    assert np.all(pcm.data == 1)
    theirs = np.sort(pcm.row.astype(np.int64) * code.n + pcm.col)
    ours = np.flatnonzero(code.H)  # row-major, already sorted
    assert np.array_equal(theirs, ours)


@pytest.mark.peer
@pytest.mark.parametrize(
    "bg, Z, k",
    [(1, z, 22 * z) for z in (2, 3, 5, 7, 9, 11, 13, 15, 16, 104)]  # every set index; Z = 16: n = 1088
    + [(2, z, 6 * z) for z in (2, 3, 5, 7, 9, 11, 13, 15, 20)]  # Z = 20: n = 1040
    + [(2, 208, 2080)],
)
def test_sionna_pcm_is_our_mother_code(bg, Z, k):
    """sionna's pcm is the full lifted H (no shortening, no puncturing) for the Z it selects from k."""
    assert _selected_z(bg, k) == Z
    code = nr5g_ldpc_code(bg, Z)
    for n in (2 * k, 3 * k - 1):  # the pcm does not depend on n
        encoder = _sionna_encoder(k, n, bg)
        assert encoder.z == Z
        _assert_equal_to_sionna(code, encoder.pcm)


@pytest.mark.peer
@pytest.mark.parametrize("bg", [1, 2])
def test_sionna_lifting_selection(bg):
    ks = [12, 13, 100, 192, 193, 300, 560, 561, 640, 641, 1000, 2000, 3840] + ([5000, 8448] if bg == 1 else [])
    m, n = BASE_GRAPH_SHAPES[bg]
    for k in ks:
        encoder = _sionna_encoder(k, 2 * k, bg)
        Z = _selected_z(bg, k)
        assert encoder.z == Z, k
        assert encoder.pcm.shape == (m * Z, n * Z)
