"""Monte-Carlo evaluation: error-rate metrics, frame-clustered and paired intervals, stop rules, several
decoders on the same words, published values, tables and plots."""
from eccflow.eval.intervals import PairedDifference, Verdict, clustered_rate_interval, wilson_interval
from eccflow.eval.metrics import BitErrorRate, FrameErrorRate
from eccflow.eval.montecarlo import Evaluation, PointResult, StopRule, evaluate, evaluate_paired, stop_rule
from eccflow.eval.report import json_safe, markdown_table, paired_table, plot_curves, write_json

__all__ = [
    "BitErrorRate",
    "Evaluation",
    "FrameErrorRate",
    "PairedDifference",
    "PointResult",
    "StopRule",
    "Verdict",
    "clustered_rate_interval",
    "evaluate",
    "evaluate_paired",
    "json_safe",
    "markdown_table",
    "paired_table",
    "plot_curves",
    "stop_rule",
    "wilson_interval",
    "write_json",
]
