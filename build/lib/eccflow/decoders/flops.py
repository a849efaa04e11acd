"""FLOPs per decoded frame, the cost axis of compression and multi-objective studies."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def flops_per_frame(decoder: nn.Module, n: int) -> int:
    """Operations to decode one frame of length ``n``.

    A decoder that knows its cost exactly (``decoder.flops_per_frame()``, e.g. message passing,
    counted per edge) reports it; otherwise one frame is traced with torch's ``FlopCounterMode``,
    which counts matrix products (2 per multiply-add) and attention, the dominant cost of
    transformer decoders.
    """
    own = getattr(decoder, "flops_per_frame", None)
    if callable(own):
        return int(own())
    parameter = next(decoder.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    counter = FlopCounterMode(display=False)
    was_training = decoder.training
    decoder.eval()
    try:
        with counter, torch.no_grad():
            decoder(torch.ones(1, n, device=device))
    finally:
        decoder.train(was_training)
    return int(counter.get_total_flops())
