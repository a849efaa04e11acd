"""Wall-clock throughput, measured the same way by every benchmark and the held-out tables."""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable

import torch


def frames_per_second(model: torch.nn.Module, llr: torch.Tensor, repeats: int = 3) -> float:
    """Decoded frames per second: the best of ``repeats`` calls on the same (B, n) LLR batch, after a warm-up
    call on 16 frames, without gradients (threads as the caller set them)."""
    best = math.inf
    with torch.no_grad():
        model(llr[:16])
        for _ in range(repeats):
            start = time.perf_counter()
            model(llr)
            best = min(best, time.perf_counter() - start)
    return llr.shape[0] / best


def alternating_medians(calls: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median seconds of each call, timed in turn (a, b, a, b, ...) after one warm-up each, so that a change in
    the machine's load reaches every call alike."""
    for call in calls:
        call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, record in zip(calls, times):
            start = time.perf_counter()
            call()
            record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in times]


def steps_per_second(step: Callable[[], None], seconds: float, warmup: int = 1) -> float:
    """Calls per second of ``step`` over at least ``seconds`` (and two calls), after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or count < 2:
        step()
        count += 1
    return count / (time.perf_counter() - start)
