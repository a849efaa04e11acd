"""Decoders as plain ``torch.nn.Module``s taking channel LLRs (B, n) and returning ``DecoderOutput``."""
