"""Monte-Carlo evaluation: BER/FER metrics, Wilson intervals, stopping rule, tables and plots."""
from eccflow.eval.metrics import BitErrorRate, FrameErrorRate, wilson_interval
from eccflow.eval.montecarlo import PointResult, evaluate
from eccflow.eval.report import markdown_table, plot_curves, write_json

__all__ = [
    "BitErrorRate",
    "FrameErrorRate",
    "PointResult",
    "evaluate",
    "markdown_table",
    "plot_curves",
    "wilson_interval",
    "write_json",
]
