import numpy as np
import pytest

from eccflow.codes import Code, get_code, read_alist, read_dense, write_alist, write_dense
from eccflow.codes import gf2
from eccflow.codes.io import load_code_file
from eccflow.codes.registry import shared_code_files
from eccflow.codes.spectra import laplacian_eigenpairs, spectral_signature, tanner_laplacian
from eccflow.errors import CodeFormatError, ConfigError, UnknownCodeError

# (rows stored, rank, ones) from shared/codes/SOURCE.md
SOURCE_TABLE = {
    "BCH_n31_k16": (15, 15, 120), "BCH_n63_k45": (18, 18, 432), "LDPC_n49_k24": (28, 25, 196),
    "LDPC_n121_k60": (66, 61, 726), "LDPC_n121_k70": (55, 51, 605), "LDPC_n121_k80": (44, 41, 484),
    "CCSDS_n128_k64": (64, 64, 512), "MACKAY_n96_k48": (48, 48, 288), "POLAR_n64_k32": (32, 32, 576),
    "POLAR_n128_k86": (42, 42, 1456), "BCH_n511_k457": (54, 54, 12096), "POLARred_n128_k64": (64, 64, 904),
}
SIGNATURES = {
    "BCH_n31_k16": (6.2495, 3.3873), "BCH_n63_k36": (13.2569, 6.3647), "BCH_n63_k45": (13.9502, 5.6450),
    "BCH_n63_k51": (13.1076, 4.8594), "CCSDS_n128_k64": (5.8310, 4.2030), "LDPC_n121_k60": (8.1240, 3.3166),
    "LDPC_n121_k70": (7.4162, 3.3166), "LDPC_n121_k80": (6.6332, 3.3166), "LDPC_n49_k24": (5.2915, 2.6458),
    "MACKAY_n96_k48": (4.2426, 3.3889), "POLAR_n128_k64": (27.5869, 10.3907), "POLAR_n128_k86": (25.9057, 9.7859),
    "POLAR_n128_k96": (24.7814, 9.1455), "POLAR_n64_k32": (16.8092, 6.3926), "POLAR_n64_k48": (14.9696, 5.7537),
}


def test_every_shared_code_is_registered_and_valid():
    files = shared_code_files()
    assert len(files) == 41  # 15 top level + 26 under sbnd/ (SOURCE.md)
    for name in files:
        code = get_code(name)
        assert code.n == int(name.split("_n")[1].split("_")[0])
        assert code.k == int(name.split("_k")[1])
        assert code.G.shape == (code.k, code.n)
        assert not gf2.matmul(code.G, code.H.T).any()
        assert np.array_equal(code.G[:, code.info_set], np.eye(code.k, dtype=np.uint8))


@pytest.mark.parametrize("name", sorted(SOURCE_TABLE))
def test_shared_codes_match_source_table(name):
    code = get_code(name)
    rows, rank, ones = SOURCE_TABLE[name]
    assert (code.num_checks, code.rank, code.num_edges) == (rows, rank, ones)
    assert np.array_equal(code.H[code.edge_check, code.edge_var], np.ones(ones, dtype=np.uint8))


def test_lookup_is_case_insensitive_and_accepts_paths():
    assert get_code("bch_N63_K45") is get_code("BCH_n63_k45")
    path = shared_code_files()["LDPC_n49_k24"]
    assert np.array_equal(get_code(str(path)).H, get_code("LDPC_n49_k24").H)


def test_unknown_code_lists_close_matches():
    with pytest.raises(UnknownCodeError, match="did you mean.*bch_n63_k45"):
        get_code("BCH_n63_k46")
    with pytest.raises(UnknownCodeError, match="does not exist"):
        get_code("/nonexistent/LDPC_N1_K1.alist")


@pytest.mark.parametrize("name", ["LDPC_n49_k24", "CCSDS_n128_k64", "BCH_n31_k16"])
def test_writers_round_trip(name, tmp_path):
    H = get_code(name).H
    write_alist(H, tmp_path / "a.alist")
    write_dense(H, tmp_path / "a.txt")
    assert np.array_equal(read_alist(tmp_path / "a.alist"), H)
    assert np.array_equal(read_dense(tmp_path / "a.txt"), H)


def test_dual_code():
    code = get_code("BCH_n31_k16")
    dual = code.dual()
    assert (dual.n, dual.k) == (31, 15)
    assert gf2.rank(np.vstack([dual.G, code.H])) == code.num_checks  # G_dual spans the rows of H


def test_encode_and_syndrome():
    code = get_code("LDPC_n49_k24")
    rng = np.random.default_rng(0)
    words = code.encode(rng.integers(0, 2, (50, code.k)))
    assert not code.syndrome(words).any()
    with pytest.raises(CodeFormatError, match="length 24"):
        code.encode(np.zeros((2, 25)))


# ---- bad inputs -------------------------------------------------------------------------------
def test_non_binary_dense_file(tmp_path):
    (tmp_path / "X_N3_K1.txt").write_text("1 0 2\n0 1 1\n")
    with pytest.raises(CodeFormatError, match="non-binary"):
        load_code_file(tmp_path / "X_N3_K1.txt")


def test_ragged_dense_file(tmp_path):
    (tmp_path / "X_N3_K1.txt").write_text("1 0 1\n0 1\n")
    with pytest.raises(CodeFormatError, match="ragged.*line 2"):
        load_code_file(tmp_path / "X_N3_K1.txt")


def test_alist_degree_list_disagrees_with_rows(tmp_path):
    H = get_code("LDPC_n49_k24").H
    write_alist(H, tmp_path / "L_N49_K24.alist")
    lines = (tmp_path / "L_N49_K24.alist").read_text().splitlines()
    weights = lines[3].split()
    weights[0] = str(int(weights[0]) + 1)  # row 1 claims one more entry than it lists
    lines[3] = " ".join(weights)
    (tmp_path / "L_N49_K24.alist").write_text("\n".join(lines))
    with pytest.raises(CodeFormatError, match="weight line says"):
        load_code_file(tmp_path / "L_N49_K24.alist")


def test_alist_sections_disagree(tmp_path):
    H = np.array([[1, 1, 0, 1], [0, 1, 1, 1]], dtype=np.uint8)
    write_alist(H, tmp_path / "t.alist")
    lines = (tmp_path / "t.alist").read_text().splitlines()
    lines[-1] = "1 3 4"  # row 2 section now says columns 1,3,4 while the column section says 2,3,4
    (tmp_path / "t.alist").write_text("\n".join(lines))
    with pytest.raises(CodeFormatError, match="sections disagree"):
        read_alist(tmp_path / "t.alist")


def test_file_k_disagrees_with_rank(tmp_path):
    write_alist(get_code("LDPC_n49_k24").H, tmp_path / "LDPC_N49_K21.alist")  # rows 28, but rank 25
    with pytest.raises(CodeFormatError, match="stated k = 21 but n - rank"):
        load_code_file(tmp_path / "LDPC_N49_K21.alist")


def test_file_n_disagrees_with_columns(tmp_path):
    write_dense(np.eye(3, 5, dtype=np.uint8), tmp_path / "X_N6_K2.txt")
    with pytest.raises(CodeFormatError, match="n = 6 but the matrix has 5 columns"):
        load_code_file(tmp_path / "X_N6_K2.txt")


def test_all_zero_H():
    with pytest.raises(CodeFormatError, match="all-zero"):
        Code(np.zeros((3, 7)))


def test_invalid_arrays():
    with pytest.raises(CodeFormatError, match="2-D"):
        Code(np.ones(5))
    with pytest.raises(CodeFormatError, match="NaN"):
        Code(np.array([[1.0, np.nan]]))
    with pytest.raises(CodeFormatError, match="binary"):
        Code(np.array([[1, 3]]))


# ---- spectra ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_signature_matches_reference(name):
    assert np.allclose(spectral_signature(get_code(name)), SIGNATURES[name], atol=1e-4)


def test_signature_of_regular_code_is_sqrt_dv_dc():
    assert spectral_signature(get_code("LDPC_n64_k32"))[0] == pytest.approx(np.sqrt(18), abs=1e-9)


def test_sparse_signature_agrees_with_dense():
    code = get_code("LDPC_n648_k486")  # large enough to take the sparse path
    assert np.allclose(spectral_signature(code, 3), np.linalg.svd(code.H.astype(float), compute_uv=False)[:3])


@pytest.mark.parametrize("name,normalized", [("MACKAY_n96_k48", False), ("LDPC_n648_k486", False), ("BCH_n31_k16", True)])
def test_laplacian_eigenpairs(name, normalized):
    code = get_code(name)
    values, vectors = laplacian_eigenpairs(code, 6, normalized=normalized)
    L = tanner_laplacian(code, normalized).toarray()
    assert values[0] == pytest.approx(0.0, abs=1e-8)
    assert np.all(np.diff(values) >= -1e-9)
    assert np.allclose(L @ vectors, vectors * values, atol=1e-6)
    assert np.allclose(np.linalg.eigvalsh(L)[:6], values, atol=1e-6)


def test_spectra_bad_counts():
    with pytest.raises(ConfigError):
        spectral_signature(get_code("BCH_n31_k16"), 0)
    with pytest.raises(ConfigError):
        laplacian_eigenpairs(get_code("BCH_n31_k16"), 1000)
