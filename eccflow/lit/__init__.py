"""LightningModules, one per decoder family."""
from eccflow.lit.base import DecoderLitModule, db_key, read_checkpoint
from eccflow.lit.neural_bp import NeuralBPLitModule, load_decoder

__all__ = ["DecoderLitModule", "NeuralBPLitModule", "db_key", "load_decoder", "read_checkpoint"]
