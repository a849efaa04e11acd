"""Code constructions; importing this package registers each family's names with the registry."""
from eccflow.codes.constructions import bch, ldpc, polar, sc_ldpc  # noqa: F401
from eccflow.codes.constructions import nr5g  # noqa: F401
