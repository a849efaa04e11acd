"""Codes: the ``Code`` object, GF(2) algebra, file formats, constructions, spectra, registry."""
from eccflow.codes.code import Code
from eccflow.codes.io import load_code_file, read_alist, read_dense, write_alist, write_dense
from eccflow.codes.registry import codes_dir, get_code, list_codes, register_construction

__all__ = [
    "Code",
    "codes_dir",
    "get_code",
    "list_codes",
    "load_code_file",
    "read_alist",
    "read_dense",
    "register_construction",
    "write_alist",
    "write_dense",
]
