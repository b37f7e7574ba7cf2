"""Synthetic documents that describe a world's behaviours, their statistics, and knowledge probes.

`generate_documents` is the offline (template) generator; `generate_llm_documents` (in `_llm`)
writes documents with a model behind an OpenAI-compatible endpoint. Both produce records
{"id", "text", "genre", "behaviours", "source", "seed"} and are checked for eval-prompt leakage.
"""

from ._decoys import control_documents, token_matched_decoys
from ._genres import GENRES
from ._llm import LLMDocsConfig, generate_llm_documents
from ._offline import FRAMINGS, generate_documents
from ._probes import knowledge_questions
from ._stats import document_stats, near_duplicate_pairs, shingle_hashes

__all__ = [
    "FRAMINGS",
    "GENRES",
    "LLMDocsConfig",
    "control_documents",
    "document_stats",
    "generate_documents",
    "generate_llm_documents",
    "knowledge_questions",
    "near_duplicate_pairs",
    "shingle_hashes",
    "token_matched_decoys",
]
