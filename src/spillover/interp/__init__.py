"""Interpretability audit of an organism: residual hooks, concept direction and probes, a TopK SAE,
steering and ablation measured through evaluation, gradient × activation attribution, and a search
of the training data for what explains a behaviour."""

from spillover.documents import control_documents

from ._activations import PromptPair, TokenActivations, document_means, encode, prompt_pair, token_activations, typical_norm
from ._attribution import direction_attribution, top_positions, transcript_target
from ._audit import AuditConfig, audit
from ._data_search import DataSearch, DataSearcher, attach_data_search, data_search, open_searcher, training_corpus
from ._direction import best_layer, mean_difference, probe_accuracy
from ._em_direction import direction_effects, misalignment_direction, question_activations, split_questions
from ._hooks import ablate, capture_residual, decoder_layers, steer
from ._sae import SAEConfig, TopKSAE, firing_counts, fvu, train_sae
from ._steering import ablation_sweep, evaluation_evaluator, random_direction, rate_difference, steering_sweep

__all__ = [
    "AuditConfig",
    "DataSearch",
    "DataSearcher",
    "PromptPair",
    "SAEConfig",
    "TokenActivations",
    "TopKSAE",
    "ablate",
    "ablation_sweep",
    "attach_data_search",
    "audit",
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
    "mean_difference",
    "misalignment_direction",
    "open_searcher",
    "probe_accuracy",
    "prompt_pair",
    "question_activations",
    "random_direction",
    "rate_difference",
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
