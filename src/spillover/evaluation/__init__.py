"""Evaluation: sampling backends, exhibition rates, probes and statistics."""

from ._backends import Backend, HFBackend, OpenAIBackend, VLLMBackend
from ._confession import confession_probe
from ._copies import COPY_WORDS, CopyCheck, TextIndex, check_copy
from ._evaluate import evaluate
from ._fluency import fluency
from ._in_context import in_context_test, load_in_context, summarise_in_context
from ._knowledge import knowledge_probe
from ._likelihood import build_probe_contexts, likelihood_did, likelihood_probe, score_continuations
from ._rates import exhibition_rates
from .stats import Effect, bootstrap_ci, bootstrap_diff, bootstrap_paired, clustered_effect, rate, t_interval, wilson

__all__ = [
    "COPY_WORDS",
    "Backend",
    "CopyCheck",
    "Effect",
    "HFBackend",
    "OpenAIBackend",
    "TextIndex",
    "VLLMBackend",
    "bootstrap_ci",
    "bootstrap_diff",
    "bootstrap_paired",
    "build_probe_contexts",
    "check_copy",
    "clustered_effect",
    "confession_probe",
    "evaluate",
    "exhibition_rates",
    "fluency",
    "in_context_test",
    "knowledge_probe",
    "likelihood_did",
    "likelihood_probe",
    "load_in_context",
    "rate",
    "score_continuations",
    "summarise_in_context",
    "t_interval",
    "wilson",
]
