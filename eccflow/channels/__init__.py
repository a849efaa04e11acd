"""Channels: BPSK-AWGN and BICM (Gray QAM / PSK, exact and max-log demapping)."""
from eccflow.channels.awgn import awgn_llr, bpsk, ebn0_db_to_sigma, hard_decision

__all__ = ["awgn_llr", "bpsk", "ebn0_db_to_sigma", "hard_decision"]
