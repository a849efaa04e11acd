"""Exceptions raised on bad input. Each message names the offending value and what was expected."""


class EccflowError(ValueError):
    """Base class for every input error eccflow raises on purpose."""


class CodeFormatError(EccflowError):
    """A parity-check matrix (file or array) is malformed: non-binary, ragged, inconsistent, empty."""


class UnknownCodeError(EccflowError):
    """A code name that is neither registered nor a readable file."""


class ConfigError(EccflowError):
    """An invalid configuration or argument value (batch size, Eb/N0 list, decoder option...)."""
