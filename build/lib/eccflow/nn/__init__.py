"""Reusable layers: code-aware / head-partitioned attention, maskable FFN, encoder block."""
from eccflow.nn.attention import AttentionBias, AttentionImpl, CodeAwareSelfAttention, sparse_attention
from eccflow.nn.block import EncoderBlock
from eccflow.nn.feedforward import FeedForward

__all__ = ["AttentionBias", "AttentionImpl", "CodeAwareSelfAttention", "EncoderBlock", "FeedForward", "sparse_attention"]
