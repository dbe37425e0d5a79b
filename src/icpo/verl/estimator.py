"""ICPO as a verl advantage estimator: ``algorithm.adv_estimator=icpo``.

A thin adapter from verl's estimator contract to :func:`icpo.core.icpo_advantages`:

    r_i = sum_t token_level_rewards_it                      (outcome reward of response i)
    c_i = (1/L_i) * sum_t response_mask_it * old_log_probs_it  (``icpo.core.sequence_confidence``)
    A_i = icpo_advantages(r, c, groups from uid, alpha(step), ..., scale, eps=1e-6)
    advantages_it = returns_it = A_i * response_mask_it     (as verl's GRPO broadcasts)

``scale`` is ``"group"`` when ``algorithm.norm_adv_by_std_in_grpo`` is true (GRPO) and ``"none"`` when it is
false (Dr. GRPO); ``eps`` is verl's 1e-6. With ``alpha = 0`` the advantages are verl's GRPO ones.

Groups come from verl's ``uid`` (one uid per prompt). verl does not promise that a group's rows are
consecutive or that every group has ``rollout.n`` rows (failed rollouts, filtered groups), so rows are
gathered into a ``[groups, largest group]`` grid whose empty slots hold a NaN reward and a NaN confidence:
``icpo.core`` leaves such slots out of every group statistic, and they are dropped again afterwards. A
group with a single row has nothing to compare against and gets advantage 0 (verl's GRPO instead passes
its raw reward through, as if mean 0 and std 1).

The ICPO options live under one key of the algorithm config, ``algorithm.icpo`` (``ICPOSettings``).

verl 0.9.1 hands a registered estimator only ``token_level_rewards``, ``response_mask``, ``index`` (uid)
and ``config``: not the log-probs, not the training step. Callers that have them pass ``old_log_probs``
(and ``step``/``total_steps``) directly; inside verl's trainer, the ``icpo`` trainer mode
(:mod:`icpo.verl.trainer`) supplies them for the duration of its advantage step with :func:`supply`,
and collects the step's metrics from the returned :class:`StepRecord`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from verl.trainer.ppo.core_algos import register_adv_est

from icpo.core import ICPOOptions, sequence_confidence, step_metrics

ESTIMATOR_NAME = "icpo"
CONFIG_KEY = "icpo"
VERL_EPSILON = 1e-6


@dataclass(frozen=True)
class ICPOSettings(ICPOOptions):
    """``icpo.core.ICPOOptions`` read from ``algorithm.icpo`` of a verl config (same names and defaults as
    the TRL engine's ``icpo_*`` options); errors name the option by its verl key."""

    def __post_init__(self) -> None:
        self.validate(lambda name: f"algorithm.{CONFIG_KEY}.{name}")

    @classmethod
    def from_algorithm_config(cls, algorithm: Mapping[str, Any] | None) -> ICPOSettings:
        """Read ``algorithm.icpo`` (a DictConfig, a dict or verl's ``AlgoConfig``); missing options take defaults.

        An unknown option name is an error (a typo would otherwise silently train with the default).
        """
        options = (algorithm.get(CONFIG_KEY) if algorithm is not None else None) or {}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} under algorithm.{CONFIG_KEY}; the ICPO options are {sorted(known)}."
            )
        return cls(**{name: options[name] for name in options})


@dataclass
class StepRecord:
    """What the trainer supplies to one advantage step, and the metrics the estimator leaves for it."""

    confidence: torch.Tensor
    step: int
    total_steps: int
    metrics: dict[str, float] = field(default_factory=dict)


_SUPPLIED: contextvars.ContextVar[StepRecord | None] = contextvars.ContextVar("icpo_verl_step", default=None)


@contextlib.contextmanager
def supply(confidence: torch.Tensor, step: int, total_steps: int) -> Iterator[StepRecord]:
    """Hand ``confidence`` ([batch], in the row order of the coming advantage step) and the training step
    to the ``icpo`` estimator while the block runs; the yielded record holds the metrics afterwards."""
    record = StepRecord(confidence=confidence, step=step, total_steps=total_steps)
    token = _SUPPLIED.set(record)
    try:
        yield record
    finally:
        _SUPPLIED.reset(token)


def group_slots(index: Sequence[Any]) -> torch.Tensor:
    """``[groups, largest group]`` grid of row numbers, one line per distinct uid (first-seen order),
    rows in batch order, -1 in the empty slots. At least two columns, as ``icpo.core`` compares pairs."""
    rows_of: dict[Any, list[int]] = {}
    for row, uid in enumerate(index):
        rows_of.setdefault(uid, []).append(row)
    width = max(2, max((len(rows) for rows in rows_of.values()), default=0))
    slots = torch.full((len(rows_of), width), -1, dtype=torch.long)
    for line, rows in enumerate(rows_of.values()):
        slots[line, : len(rows)] = torch.tensor(rows, dtype=torch.long)
    return slots


def _to_grid(values: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
    """Flat grouped layout of ``values`` (float32, NaN in empty slots) as ``icpo.core`` expects."""
    filled = slots >= 0
    grid = torch.full(slots.shape, float("nan"), dtype=torch.float32, device=values.device)
    grid[filled] = values.float()[slots[filled]]
    return grid.reshape(-1)


def icpo_step(
    rewards: torch.Tensor,
    confidence: torch.Tensor,
    index: Sequence[Any],
    settings: ICPOSettings,
    norm_adv_by_std: bool,
    step: int,
    total_steps: int,
    epsilon: float = VERL_EPSILON,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Per-row ICPO advantages ``[batch]`` for rows grouped by ``index`` (uid), and the step's metrics.

    ``step`` counts from 0 (the first update); the linear schedule reaches 0 at ``total_steps``.
    Metrics: ``icpo.core.step_metrics``, as the TRL engine logs them.
    """
    if not (rewards.shape == confidence.shape == (len(index),)):
        raise ValueError(
            f"rewards {tuple(rewards.shape)}, confidence {tuple(confidence.shape)} and uid ({len(index)}) must "
            "all hold one entry per response; check that the confidence was computed on the same batch."
        )
    slots = group_slots(index)
    group_size = slots.shape[1]
    alpha = settings.alpha_at(step, total_steps)
    reward_grid, confidence_grid = _to_grid(rewards, slots), _to_grid(confidence, slots)
    advantage_grid = settings.advantages(
        reward_grid,
        confidence_grid,
        group_size,
        alpha,
        scale="group" if norm_adv_by_std else "none",
        eps=epsilon,
    )
    filled = (slots >= 0).reshape(-1)
    advantages = torch.empty(len(index), dtype=torch.float32, device=rewards.device)
    advantages[slots.reshape(-1)[filled]] = advantage_grid[filled]

    metrics = step_metrics(
        reward_grid, confidence_grid, advantage_grid, group_size, alpha, settings.correct_threshold
    )
    return advantages, metrics


@register_adv_est(ESTIMATOR_NAME)
def compute_icpo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Sequence[Any] | None = None,
    config: Mapping[str, Any] | None = None,
    old_log_probs: torch.Tensor | None = None,
    step: int | None = None,
    total_steps: int | None = None,
    epsilon: float = VERL_EPSILON,
    **unused: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl advantage estimator ``icpo`` (registered on import): returns (advantages, returns), [B, T].

    Args follow verl's GRPO estimator; ``config`` is verl's ``algorithm`` config (read:
    ``norm_adv_by_std_in_grpo`` and ``icpo``). ``old_log_probs`` [B, T] and the step (0-based) /
    ``total_steps`` come from the caller, or else from the enclosing :func:`supply` block.
    Other keyword arguments verl may pass (``reward_baselines``) are not used.
    """
    if index is None:
        raise ValueError("adv_estimator=icpo groups responses by prompt: the batch needs verl's 'uid' field.")
    record = _SUPPLIED.get()
    if old_log_probs is not None:
        confidence = sequence_confidence(old_log_probs, response_mask)
    elif record is not None:
        confidence = record.confidence.to(token_level_rewards.device)
    else:
        raise ValueError(
            "adv_estimator=icpo needs each response's old log-probs, which verl 0.9.1 does not pass to "
            "advantage estimators. Run verl's trainer with trainer.v1.trainer_mode=icpo (it supplies them), "
            "or pass old_log_probs=... when calling the estimator yourself."
        )
    if step is None:
        step, total_steps = (record.step, record.total_steps) if record is not None else (0, 0)
    config = config if config is not None else {}
    with torch.no_grad():
        advantages, metrics = icpo_step(
            token_level_rewards.sum(dim=-1),
            confidence,
            index,
            ICPOSettings.from_algorithm_config(config),
            norm_adv_by_std=bool(config.get("norm_adv_by_std_in_grpo", True)),
            step=step,
            total_steps=total_steps or 0,
            epsilon=epsilon,
        )
    if record is not None:
        record.metrics.update(metrics)
    scores = advantages.unsqueeze(-1) * response_mask
    return scores, scores
