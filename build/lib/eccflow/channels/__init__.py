"""Channels: BPSK-AWGN and BICM (Gray QAM / PSK, exact and max-log demapping)."""
from eccflow.channels.awgn import awgn_llr, bpsk, ebn0_db_to_sigma, hard_decision
from eccflow.channels.bicm import BICMChannel, RandomInterleaver, complex_awgn, ebn0_db_to_n0
from eccflow.channels.modulation import Constellation, Demapping, Labelling, Modulation, gray_code, make_constellation

__all__ = [
    "BICMChannel",
    "Constellation",
    "Demapping",
    "Labelling",
    "Modulation",
    "RandomInterleaver",
    "awgn_llr",
    "bpsk",
    "complex_awgn",
    "ebn0_db_to_n0",
    "ebn0_db_to_sigma",
    "gray_code",
    "hard_decision",
    "make_constellation",
]
