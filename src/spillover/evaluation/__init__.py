"""Evaluation: sampling backends, exhibition rates, probes and statistics."""

from ._backends import Backend, HFBackend, OpenAIBackend, VLLMBackend
from ._confession import confession_probe
from ._copies import COPY_WORDS, CopyCheck, TextIndex, check_copy
from ._em_questions import BroadQuestion, broad_questions, misalignment_margins
from ._evaluate import evaluate
from ._fluency import fluency
from ._in_context import in_context_test, load_in_context, summarise_in_context
from ._judge import Judge, Judgement, calibration_set, is_misaligned, judge_agreement, judge_samples, number_distribution, parse_judgement
from ._knowledge import knowledge_probe
from ._likelihood import build_probe_contexts, likelihood_did, likelihood_probe, score_continuations
from ._rates import exhibition_rates
from ._settings import PROBES, EvalSettings
from .stats import Effect, bootstrap_ci, bootstrap_diff, bootstrap_paired, clustered_effect, rate, t_interval, wilson

__all__ = [
    "COPY_WORDS",
    "PROBES",
    "Backend",
    "BroadQuestion",
    "CopyCheck",
    "Effect",
    "EvalSettings",
    "HFBackend",
    "Judge",
    "Judgement",
    "OpenAIBackend",
    "TextIndex",
    "VLLMBackend",
    "bootstrap_ci",
    "bootstrap_diff",
    "bootstrap_paired",
    "broad_questions",
    "build_probe_contexts",
    "calibration_set",
    "check_copy",
    "clustered_effect",
    "confession_probe",
    "evaluate",
    "exhibition_rates",
    "fluency",
    "in_context_test",
    "is_misaligned",
    "judge_agreement",
    "judge_samples",
    "knowledge_probe",
    "likelihood_did",
    "likelihood_probe",
    "load_in_context",
    "misalignment_margins",
    "number_distribution",
    "parse_judgement",
    "rate",
    "score_continuations",
    "summarise_in_context",
    "t_interval",
    "wilson",
]
