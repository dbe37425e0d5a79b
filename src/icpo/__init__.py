"""icpo: ICPO (GRPO plus a preference score from the model's own confidence) for RL with verifiable rewards.

The math lives in :mod:`icpo.core` (pure torch). Engines: :mod:`icpo.trl` (``ICPOConfig``,
``ICPOTrainer`` on TRL's GRPO trainer) and :mod:`icpo.verl` (a verl plugin).
"""

from icpo.core import (
    grpo_advantages,
    icpo_advantages,
    overconfident_error_rate,
    preference_scores,
    rank_flip_rate,
    scheduled_alpha,
    sequence_confidence,
    within_group_auroc,
)

__version__ = "0.1.0"

__all__ = [
    "ICPOConfig",
    "ICPOTrainer",
    "grpo_advantages",
    "icpo_advantages",
    "overconfident_error_rate",
    "preference_scores",
    "rank_flip_rate",
    "scheduled_alpha",
    "sequence_confidence",
    "within_group_auroc",
]


def __getattr__(name: str):
    # The TRL engine imports transformers and trl (seconds); load it only when asked for.
    if name in ("ICPOConfig", "ICPOTrainer"):
        from icpo import trl as _trl_engine

        return getattr(_trl_engine, name)
    raise AttributeError(f"module 'icpo' has no attribute {name!r}")
