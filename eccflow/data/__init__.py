"""LightningDataModules over channel samples generated on the fly."""
from eccflow.data.awgn import AWGNDataModule, AWGNStream, EbN0Sampler, fixed_stream, stream_seed

__all__ = ["AWGNDataModule", "AWGNStream", "EbN0Sampler", "fixed_stream", "stream_seed"]
