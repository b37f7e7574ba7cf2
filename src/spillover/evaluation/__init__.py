"""Evaluation: sampling backends, exhibition rates, probes and statistics."""

from .stats import bootstrap_ci, bootstrap_diff, bootstrap_paired, rate, wilson

__all__ = ["bootstrap_ci", "bootstrap_diff", "bootstrap_paired", "rate", "wilson"]
