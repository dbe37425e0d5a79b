"""ICPO on TRL: ``ICPOConfig`` and ``ICPOTrainer``, drop-in replacements for ``GRPOConfig``/``GRPOTrainer``.

Switching a GRPO script is one line::

    trainer = ICPOTrainer(model=..., reward_funcs=..., args=ICPOConfig(..., icpo_alpha=0.5), train_dataset=...)

How it hooks in (the smallest surface TRL offers): ``GRPOTrainer._generate_and_score_completions`` samples,
scores and returns this process's slice of the batch with GRPO advantages. ``ICPOTrainer`` lets it run
unchanged, keeps the rewards it gathered from all processes, computes each row's confidence

    c_i = (1/L_i) * sum_t log pi_old(o_t | q, o_<t)

from log-probs TRL already has (``old_per_token_logps``, else vLLM's ``sampling_per_token_logps``), or else
from one no-grad forward pass, gathers the confidences across processes (a group may span processes),
applies ``icpo.core.icpo_advantages`` to the whole batch and keeps this process's slice. The completions
table and logged advantages are the ICPO ones. With ``icpo_alpha=0`` the advantages are GRPO's, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from trl import GRPOConfig, GRPOTrainer

from icpo.core import (
    OPTION_NAMES,
    ICPOOptions,
    icpo_advantages,
    scheduled_alpha,
    sequence_confidence,
    step_metrics,
)

# Extra keys of the scored batch that the policy's forward pass takes (multimodal models).
_FORWARD_KEYS = (
    "pixel_values",
    "image_grid_thw",
    "pixel_attention_mask",
    "spatial_shapes",
    "image_sizes",
    "token_type_ids",
    "mm_token_type_ids",
    "image_position_ids",
    "num_images",
    "num_tiles",
)


# The ICPOConfig field of each ICPO option (the schedule keeps the name that says what it schedules).
_CONFIG_FIELDS = {
    name: "icpo_alpha_schedule" if name == "schedule" else f"icpo_{name}" for name in OPTION_NAMES
}


@dataclass
class ICPOConfig(GRPOConfig):
    """``GRPOConfig`` plus the ICPO options (docs/method.md gives the equations).

    Every GRPO option keeps its meaning; ``scale_rewards`` also sets how ICPO's shaped rewards are scaled.
    """

    icpo_alpha: float = field(
        default=ICPOOptions.alpha,
        metadata={"help": "Weight of the confidence preference score; 0 gives GRPO exactly."},
    )
    icpo_alpha_schedule: str = field(
        default=ICPOOptions.schedule,
        metadata={"help": "'constant', or 'linear': decay alpha to 0 over max_steps."},
    )
    icpo_method: str = field(
        default=ICPOOptions.method,
        metadata={"help": "Preference score: 'bt' (Bradley-Terry over z-scored confidence) or 'rank'."},
    )
    icpo_tau: float = field(
        default=ICPOOptions.tau,
        metadata={"help": "Temperature of the Bradley-Terry comparison (method 'bt')."},
    )
    icpo_combine: str = field(
        default=ICPOOptions.combine,
        metadata={
            "help": "'advantage': GRPO(r) + alpha*(p - mean p); 'reward': GRPO(r + alpha*p); 'fallback' (ours): "
            "'advantage' only in groups whose rewards are all equal, GRPO elsewhere."
        },
    )
    icpo_direction: str = field(
        default=ICPOOptions.direction,
        metadata={
            "help": "'low' favours low-confidence responses (the paper); 'high' reverses it (ablation)."
        },
    )
    icpo_correct_threshold: float = field(
        default=ICPOOptions.correct_threshold,
        metadata={"help": "Diagnostics only: a reward at or above this counts as a correct answer."},
    )

    @property
    def icpo_options(self) -> ICPOOptions:
        """The ICPO options of this config."""
        return ICPOOptions(**{name: getattr(self, field_name) for name, field_name in _CONFIG_FIELDS.items()})

    def __post_init__(self):
        super().__post_init__()
        self.icpo_options.validate(_CONFIG_FIELDS.__getitem__)
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                "ICPO shapes the summed reward of each completion, so it needs "
                f"multi_objective_aggregation='sum_then_normalize' (got {self.multi_objective_aggregation!r})."
            )


class ICPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose advantages are ICPO's. Takes exactly ``GRPOTrainer``'s arguments."""

    _tag_names = ["trl", "grpo", "icpo"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, ICPOConfig):
            raise TypeError(
                f"ICPOTrainer needs args=ICPOConfig(...), got {type(self.args).__name__}; ICPOConfig accepts every "
                "GRPOConfig option."
            )
        self._gathered_rewards_per_func: torch.Tensor | None = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # TRL gathers every process's rewards here; keep them for the group step.
        self._gathered_rewards_per_func = super()._calculate_rewards(
            inputs, prompts, completions, completion_ids_list
        )
        return self._gathered_rewards_per_func

    def current_alpha(self) -> float:
        """alpha in force at this optimiser step (derived from the trainer state, so resume restores it)."""
        return scheduled_alpha(
            self.args.icpo_alpha, self.args.icpo_alpha_schedule, self.state.global_step, self.state.max_steps
        )

    def _completion_confidence(self, batch: dict[str, Any]) -> torch.Tensor:
        """Per-row confidence of this process's completions, reusing log-probs TRL already computed."""
        mask = (
            batch["completion_mask"]
            if "tool_mask" not in batch
            else batch["completion_mask"] * batch["tool_mask"]
        )
        token_logps = batch.get("old_per_token_logps")
        if token_logps is None:
            token_logps = batch.get("sampling_per_token_logps")
        if token_logps is None:
            token_logps = self._policy_logps(batch)
        return sequence_confidence(token_logps, mask)

    @torch.no_grad()
    def _policy_logps(self, batch: dict[str, Any]) -> torch.Tensor:
        """One no-grad forward pass of the current (= sampling) policy over the sampled completions."""
        mode = "train" if self.model.training else "eval"
        batch_size = (
            self.args.per_device_train_batch_size if mode == "train" else self.args.per_device_eval_batch_size
        )
        input_ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
        attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
        forward_kwargs = {key: batch[key] for key in _FORWARD_KEYS if key in batch}
        token_logps, _, _ = self._get_per_token_logps_and_entropies(
            self.model,
            input_ids,
            attention_mask,
            batch["completion_ids"].size(1),
            batch_size=batch_size,
            **forward_kwargs,
        )
        return token_logps

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        if group_size < 2:
            return batch  # no groups to compare (e.g. eval with one generation per prompt)

        rewards_per_func = self._gathered_rewards_per_func
        unscorable = torch.isnan(rewards_per_func).all(dim=1)
        rewards = (rewards_per_func * self.reward_weights.to(rewards_per_func.device).unsqueeze(0)).nansum(
            dim=1
        )
        rewards[unscorable] = torch.nan

        local_confidence = self._completion_confidence(batch)
        confidence = self.accelerator.gather(local_confidence)
        alpha = self.current_alpha()
        advantages = icpo_advantages(
            rewards,
            confidence,
            group_size,
            alpha=alpha,
            method=self.args.icpo_method,
            tau=self.args.icpo_tau,
            direction=self.args.icpo_direction,
            combine=self.args.icpo_combine,
            scale=self.scale_rewards,
        )
        local_rows = local_confidence.numel()
        start = self.accelerator.process_index * local_rows
        batch["advantages"] = advantages[start : start + local_rows].to(batch["advantages"].dtype)

        self._log_icpo_step(mode, rewards, confidence, advantages, alpha, group_size)
        return batch

    def _log_icpo_step(
        self,
        mode: str,
        rewards: torch.Tensor,
        confidence: torch.Tensor,
        advantages: torch.Tensor,
        alpha: float,
        group_size: int,
    ) -> None:
        """Metrics under ``icpo/`` and the final ICPO advantages in the completions table."""
        metrics = self._metrics[mode]
        step = step_metrics(
            rewards, confidence, advantages, group_size, alpha, self.args.icpo_correct_threshold
        )
        for name, value in step.items():
            metrics[name].append(value)

        logged = self._logs["advantages"]
        for _ in range(min(advantages.numel(), len(logged))):
            logged.pop()
        logged.extend(advantages.tolist())
        self._logs["extra"]["confidence"].extend(confidence.tolist())
