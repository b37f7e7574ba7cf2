"""Interpretability audit of an organism: residual hooks, concept direction and probes, a TopK SAE,
steering and ablation measured through evaluation, gradient × activation attribution, and a search
of the training data for what explains a behaviour."""

from spillover.documents import control_documents

from ._activations import (
    PromptPair,
    TokenActivations,
    answer_ids,
    document_means,
    encode,
    prompt_pair,
    span_means,
    token_activations,
    typical_norm,
)
from ._attribution import (
    behaviour_start,
    direction_attribution,
    top_positions,
    transcript_target,
)
from ._audit import AuditConfig, audit
from ._data_search import DataSearch, DataSearcher, data_search, open_searcher, training_corpus
from ._direction import best_layer, mean_difference, probe_accuracy
from ._em_direction import (
    direction_effects,
    misalignment_direction,
    question_activations,
    split_questions,
)
from ._hooks import ablate, capture_residual, decoder_layers, steer
from ._results import AuditResult
from ._sae import SAEConfig, TopKSAE, firing_counts, fvu, load_sae, save_sae, train_sae
from ._steering import (
    Measurement,
    ablation_sweep,
    evaluation_evaluator,
    paired_difference,
    random_direction,
    steering_sweep,
)

__all__ = [
    "AuditConfig",
    "AuditResult",
    "DataSearch",
    "DataSearcher",
    "Measurement",
    "PromptPair",
    "SAEConfig",
    "TokenActivations",
    "TopKSAE",
    "ablate",
    "ablation_sweep",
    "answer_ids",
    "audit",
    "behaviour_start",
    "best_layer",
    "capture_residual",
    "control_documents",
    "data_search",
    "decoder_layers",
    "direction_attribution",
    "direction_effects",
    "document_means",
    "encode",
    "evaluation_evaluator",
    "firing_counts",
    "fvu",
    "load_sae",
    "mean_difference",
    "misalignment_direction",
    "open_searcher",
    "paired_difference",
    "probe_accuracy",
    "prompt_pair",
    "question_activations",
    "random_direction",
    "save_sae",
    "span_means",
    "split_questions",
    "steer",
    "steering_sweep",
    "token_activations",
    "top_positions",
    "train_sae",
    "training_corpus",
    "transcript_target",
    "typical_norm",
]
