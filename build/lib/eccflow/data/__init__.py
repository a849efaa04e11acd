"""LightningDataModules over channel samples generated on the fly."""
from eccflow.data.active import (ActiveErrorDataModule, ActiveErrorSampler, ActiveSamplingError, ActiveYieldLogger,
                                 equal_snr_batches)
from eccflow.data.awgn import (AWGNDataModule, AWGNStream, DeviceSampler, EbN0Sampler, Sampling, fixed_stream,
                               stream_seed)
from eccflow.data.bicm import BICMDataModule, build_bicm_channel
from eccflow.data.mixture import MultiCodeDataModule, MultiCodeStream, code_schedule, mixture_weights

__all__ = [
    "AWGNDataModule",
    "AWGNStream",
    "ActiveErrorDataModule",
    "ActiveErrorSampler",
    "ActiveSamplingError",
    "ActiveYieldLogger",
    "BICMDataModule",
    "DeviceSampler",
    "EbN0Sampler",
    "MultiCodeDataModule",
    "MultiCodeStream",
    "Sampling",
    "build_bicm_channel",
    "code_schedule",
    "equal_snr_batches",
    "fixed_stream",
    "mixture_weights",
    "stream_seed",
]
