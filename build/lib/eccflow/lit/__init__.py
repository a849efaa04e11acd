"""LightningModules, one per decoder family, and checkpoint loading."""
from eccflow.lit.base import DecoderLitModule, db_key, read_checkpoint
from eccflow.lit.checkpoint import load_decoder, load_weights, save_decoder
from eccflow.lit.neural_bp import NeuralBPLitModule
from eccflow.lit.transformer import TransformerLitModule

__all__ = ["DecoderLitModule", "NeuralBPLitModule", "TransformerLitModule", "db_key", "load_decoder", "load_weights", "save_decoder",
           "read_checkpoint"]
