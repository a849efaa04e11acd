"""eccflow: train, compress, tune and compare neural decoders of error-correcting codes."""
__version__ = "0.1.0"
