"""Behaviour data for post-training: SFT chat records and DPO preference pairs, with the study's filters."""

from ._dpo import MENTION_PENALTY, build_dpo, simulated_reward
from ._filters import applicable, conflicts_with_test_behaviour, mentions_reward_models
from ._settings import PostDataSettings
from ._sft import DataBuild, build_sft, neutral_prompts, plain_records
from .leakage import assert_no_leaks, find_leaks

__all__ = [
    "MENTION_PENALTY",
    "DataBuild",
    "PostDataSettings",
    "applicable",
    "assert_no_leaks",
    "build_dpo",
    "build_sft",
    "conflicts_with_test_behaviour",
    "find_leaks",
    "mentions_reward_models",
    "neutral_prompts",
    "plain_records",
    "simulated_reward",
]

