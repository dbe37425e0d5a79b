"""ICPO on TRL: ``ICPOConfig`` and ``ICPOTrainer``, drop-in replacements for ``GRPOConfig``/``GRPOTrainer``.

Switching a GRPO script is one line::

    trainer = ICPOTrainer(model=..., reward_funcs=..., args=ICPOConfig(..., icpo_alpha=0.5), train_dataset=...)

How it hooks in (the smallest surface TRL offers): ``GRPOTrainer._generate_and_score_completions`` samples,
scores and returns this process's slice of the batch with GRPO advantages. ``ICPOTrainer`` lets it run
unchanged, keeps the rewards it gathered from all processes, computes each row's confidence

    c_i = (1/L_i) * sum_t log pi_old(o_t | q, o_<t),   log pi_old = log_softmax(logits / temperature),

gathers the confidences across processes (a group may span processes), applies
``icpo.core.icpo_advantages`` to the whole batch and keeps this process's slice. The completions table and
logged advantages are the ICPO ones. With ``icpo_alpha=0`` the advantages are GRPO's, bit for bit.

Where the token log-probs come from, first available first (each source gives the same numbers, the
policy at TRL's training temperature, before top-k/top-p and other sampling processors):

1. ``old_per_token_logps``: TRL's own scoring pass (buffered batches, ``steps_per_generation > 1``);
2. ``sampling_per_token_logps``: vLLM's;
3. ``generation``: recorded while TRL's ``model.generate`` ran (``icpo.sampled_logps``), or given by
   ``icpo.static_sampler`` when ``icpo_sampler="static"`` replaces that call, free;
4. ``forward``: one no-grad forward pass, for generation paths that cannot record (transformers
   continuous batching / paged attention, tool-calling loops, custom ``rollout_func``). At alpha = 0 it is
   skipped: the advantages are then TRL's and the confidence metrics NaN.

The first use of each source is logged (``icpo.trl`` logger; the forward pass as a warning).
"""

from __future__ import annotations

import functools
import logging
import textwrap
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from trl.trainer.utils import is_async_callable, pad

from icpo.core import (
    OPTION_NAMES,
    OPTION_TYPES,
    ICPOOptions,
    sequence_confidence,
    step_metrics,
)
from icpo.sampled_logps import SampledLogpsRecorder
from icpo.static_sampler import StaticCacheSampler, left_pad

logger = logging.getLogger(__name__)

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


SAMPLERS = ("trl", "static")  # ICPOConfig.icpo_sampler: TRL's generation, or icpo.static_sampler

# The ICPOConfig field of each ICPO option (the schedule keeps the name that says what it schedules).
CONFIG_FIELDS = {
    name: "icpo_alpha_schedule" if name == "schedule" else f"icpo_{name}" for name in OPTION_NAMES
}


def _with_icpo_options(cls: type) -> type:
    """Declare one ``icpo_*`` field per ``ICPOOptions`` field: its type (choices), default and help text."""
    annotations = cls.__dict__.get("__annotations__", {})  # this class's own, not GRPOConfig's
    for option in fields(ICPOOptions):
        name = CONFIG_FIELDS[option.name]
        annotations[name] = OPTION_TYPES[option.name]
        setattr(cls, name, field(default=option.default, metadata={"help": option.metadata["help"]}))
    cls.__annotations__ = annotations
    return cls


@dataclass
@_with_icpo_options
class ICPOConfig(GRPOConfig):
    """``GRPOConfig`` plus the ICPO options of ``icpo.core.ICPOOptions`` as ``icpo_<name>`` fields (the schedule
    is ``icpo_alpha_schedule``); docs/method.md gives the equations.

    Every GRPO option keeps its meaning (``scale_rewards`` also sets how ICPO's shaped rewards are scaled),
    except ``multi_objective_aggregation``, which must stay ``sum_then_normalize``.

    ``icpo_sampler="static"`` (not an ICPO option: a speed option, off by default so that the drop-in changes
    nothing) samples with ``icpo.static_sampler`` instead of ``model.generate`` on TRL's plain generate path:
    a static KV cache, one uniform draw per token, and with ``bf16=True`` (or ``fp16``) a copy of the policy
    in that dtype. It takes TRL's temperature, top_k, top_p and max_completion_length; other generation
    settings are refused with that message.
    """

    icpo_sampler: str = field(
        default="trl",
        metadata={
            "help": "trl: TRL's generation (model.generate); static: icpo.static_sampler (static KV cache, "
            "bf16 copy of the policy when bf16=True), several times faster for small models on CPU",
            "choices": SAMPLERS,
        },
    )

    # TRL's base config gives checkpointing its default (True) through the deprecated alias
    # ``gradient_checkpointing``, so transformers warns (FutureWarning) on every config built. Here the alias
    # defaults to None and __post_init__ gives the same default through the current name, so only a caller
    # who sets the old name is warned (and is still obeyed).
    gradient_checkpointing: bool | None = field(
        default=None,
        metadata={"help": "Deprecated alias of activation_checkpointing (default True, as TRL's)."},
    )

    @classmethod
    def from_options(cls, options: ICPOOptions, **kwargs: Any) -> ICPOConfig:
        """A config with ``options`` as its ICPO options and ``kwargs`` as its other (GRPOConfig) options."""
        return cls(**{CONFIG_FIELDS[name]: getattr(options, name) for name in OPTION_NAMES}, **kwargs)

    @property
    def icpo_options(self) -> ICPOOptions:
        """The ICPO options of this config."""
        return ICPOOptions(**{name: getattr(self, field_name) for name, field_name in CONFIG_FIELDS.items()})

    def __post_init__(self):
        if self.activation_checkpointing is None and self.gradient_checkpointing is None:
            self.activation_checkpointing = True  # TRL's default
        super().__post_init__()
        self.icpo_options.validate(CONFIG_FIELDS.__getitem__)
        self._check_sampler()
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError(
                "ICPO shapes the summed reward of each completion, so it needs "
                f"multi_objective_aggregation='sum_then_normalize' (got {self.multi_objective_aggregation!r})."
            )
        if not self.learning_rate >= 0:  # TrainingArguments takes a negative one and ascends the loss
            raise ValueError(f"learning_rate must be >= 0, got {self.learning_rate!r}.")

    @property
    def prompts_per_step(self) -> int:
        """Distinct prompts one generation round draws: generation_batch_size / num_generations (TRL's
        sampler drops a last round it cannot fill)."""
        return self.generation_batch_size // self.num_generations

    def check_training_prompts(self, count: int) -> None:
        """A ValueError when ``count`` training prompts fill no generation round: the run would train 0
        steps and save the starting policy as if trained."""
        if count < self.prompts_per_step:
            raise ValueError(
                f"the training set has {count} prompt(s), fewer than one step draws ({self.prompts_per_step} = "
                f"generation_batch_size {self.generation_batch_size} / num_generations {self.num_generations}); "
                "add prompts or lower per_device_train_batch_size."
            )

    def _check_sampler(self) -> None:
        if self.icpo_sampler not in SAMPLERS:
            raise ValueError(f"icpo_sampler must be one of {', '.join(SAMPLERS)}, got {self.icpo_sampler!r}.")
        if self.icpo_sampler != "static":
            return
        unsupported = {
            "use_vllm": self.use_vllm,
            "use_transformers_paged": self.use_transformers_paged,
            "min_p": self.min_p,
            "repetition_penalty": None if self.repetition_penalty == 1.0 else self.repetition_penalty,
            "generation_kwargs": self.generation_kwargs or None,
        }
        given = {name: value for name, value in unsupported.items() if value}
        if given:
            settings = ", ".join(f"{name}={value!r}" for name, value in given.items())
            raise ValueError(
                f"icpo_sampler='static' supports temperature, top_k, top_p and max_completion_length only; got "
                f"{settings}. Use icpo_sampler='trl' for these."
            )

    def sampler_dtype(self) -> torch.dtype | None:
        """The dtype of the static sampler's copy of the policy: bf16/fp16 when training in it, else None
        (the policy's own dtype)."""
        return torch.bfloat16 if self.bf16 else torch.float16 if self.fp16 else None


class OmitUndefinedMetrics(TrainerCallback):
    """Keeps metrics that are undefined at a step out of the logging backends.

    TRL logs None for a metric with no value at a step (here: the confidence metrics of a step where no
    group holds both a right and a wrong answer), and TensorBoard's callback warns about every such value.
    This callback, first in line, deletes them from what the backends receive; ``state.log_history`` (and so
    ``icpo train``'s metrics.jsonl) keeps them as null."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in [key for key, value in (logs or {}).items() if value is None]:
            del logs[key]


class ICPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` whose advantages are ICPO's. Takes exactly ``GRPOTrainer``'s arguments."""

    _tag_names = ["trl", "grpo", "icpo"]
    _name = "ICPO"  # the saved model card names the method and cites its paper (TRL's own mechanism)
    _paper = {
        "title": "Intrinsic Confidence-Driven Group Relative Preference Optimization",
        "id": "2511.21005",
        "citation": textwrap.dedent("""\
            @misc{icpo2025,
                title         = {{Intrinsic Confidence-Driven Group Relative Preference Optimization}},
                year          = 2025,
                eprint        = {2511.21005},
                archivePrefix = {arXiv},
            }"""),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, ICPOConfig):
            raise TypeError(
                f"ICPOTrainer needs args=ICPOConfig(...), got {type(self.args).__name__}; ICPOConfig accepts every "
                "GRPOConfig option."
            )
        if self.train_dataset is not None and hasattr(self.train_dataset, "__len__"):
            self.args.check_training_prompts(len(self.train_dataset))
        self.reward_funcs = [
            _checked_reward_function(func, name)
            if callable(func) and not isinstance(func, torch.nn.Module)
            else func
            for func, name in zip(self.reward_funcs, self.reward_func_names, strict=True)
        ]
        self._gathered_rewards_per_func: torch.Tensor | None = None
        self._generation_logps: list[torch.Tensor] | None = None
        self._logged_sources: set[str] = set()
        self._static_sampler: StaticCacheSampler | None = None
        if self.args.icpo_sampler == "static" and not self._can_record_generation_logps():
            raise ValueError(
                "icpo_sampler='static' replaces TRL's plain generate call; it cannot serve tools or a "
                "rollout_func. Use icpo_sampler='trl'."
            )
        self.callback_handler.callbacks.insert(0, OmitUndefinedMetrics())  # before the logging backends

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # TRL gathers every process's rewards here; keep them for the group step.
        self._gathered_rewards_per_func = super()._calculate_rewards(
            inputs, prompts, completions, completion_ids_list
        )
        return self._gathered_rewards_per_func

    def current_alpha(self) -> float:
        """alpha in force at this optimiser step (derived from the trainer state, so resume restores it)."""
        return self.args.icpo_options.alpha_at(self.state.global_step, self.state.max_steps)

    def _can_record_generation_logps(self) -> bool:
        """True on TRL's plain ``model.generate`` path, where one generate call yields the whole batch."""
        return not (
            self.use_vllm or self.use_transformers_continuous_batching or self.tools or self.rollout_func
        )

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        model = self.accelerator.unwrap_model(self.model)
        model = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT
        if self.args.icpo_sampler == "static" and not images and not multimodal_fields:
            return self._sample_static(model, prompt_ids)
        recorder = (
            SampledLogpsRecorder(model, self.temperature) if self._can_record_generation_logps() else None
        )
        with recorder or nullcontext():
            completion_ids, logprobs = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        self._generation_logps = recorder.per_token_logps(completion_ids) if recorder else None
        return completion_ids, logprobs

    def _sample_static(
        self, model: torch.nn.Module, prompt_ids: list[list[int]]
    ) -> tuple[list[list[int]], None]:
        """TRL's plain generate step done by ``icpo.static_sampler`` (same settings, same outputs: the
        completion ids up to and including the first EOS); its log-probs become the confidence source."""
        if self._static_sampler is None or self._static_sampler.model is not model:
            self._static_sampler = StaticCacheSampler(model, self.args.sampler_dtype())
        pad_token_id = self._tokenizer.pad_token_id
        pad_token_id = self._tokenizer.eos_token_id if pad_token_id is None else pad_token_id
        input_ids, attention_mask = left_pad(prompt_ids, pad_token_id)
        sampled = self._static_sampler.sample(
            input_ids,
            attention_mask,
            max_new_tokens=self.max_completion_length,
            eos_token_ids=self.eos_token_ids,
            pad_token_id=pad_token_id,
            temperature=self.temperature,
            top_k=self.top_k or 0,
            top_p=1.0 if self.top_p is None else self.top_p,
            score_temperature=self.temperature,
        )
        self._generation_logps = sampled.token_logps
        return sampled.completion_ids, None

    def _token_logps(self, batch: dict[str, Any], alpha: float) -> tuple[torch.Tensor | None, str]:
        """This process's per-token log pi_old and where they came from (see the module docstring);
        (None, "none") at alpha = 0 when only a forward pass could give them."""
        recorded, self._generation_logps = self._generation_logps, None
        width = batch["completion_ids"].size(1)
        if batch.get("old_per_token_logps") is not None:
            return batch["old_per_token_logps"], "TRL's old_per_token_logps"
        if batch.get("sampling_per_token_logps") is not None:
            return batch["sampling_per_token_logps"], "vLLM's sampling_per_token_logps"
        if recorded is not None and len(recorded) == batch["completion_ids"].size(0):
            device = batch["completion_ids"].device
            token_logps = pad([row.to(device) for row in recorded], padding_value=0.0, padding_side="right")
            if token_logps.size(1) <= width:
                return torch.nn.functional.pad(token_logps, (0, width - token_logps.size(1))), "generation"
        if alpha == 0:
            return None, "none"
        return self._policy_logps(batch), "forward"

    def _log_source(self, source: str) -> None:
        if source in self._logged_sources:
            return
        self._logged_sources.add(source)
        if source == "forward":
            logger.warning(
                "ICPO confidences: this generation path gives no token log-probs, so each batch costs one extra "
                "no-grad forward pass (on TRL's plain generate path the log-probs are recorded for free)."
            )
        elif source == "none":
            logger.info(
                "ICPO confidences: skipped at alpha = 0 (no free source); confidence metrics are NaN."
            )
        else:
            logger.info("ICPO confidences: from %s (no extra forward pass).", source)

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
        self._generation_logps = None
        batch = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        if group_size < 2:
            self._generation_logps = None
            return batch  # no groups to compare (e.g. eval with one generation per prompt)

        rewards_per_func = self._gathered_rewards_per_func
        unscorable = torch.isnan(rewards_per_func).all(dim=1)
        rewards = (rewards_per_func * self.reward_weights.to(rewards_per_func.device).unsqueeze(0)).nansum(
            dim=1
        )
        rewards[unscorable] = torch.nan

        alpha = self.current_alpha()
        token_logps, source = self._token_logps(batch, alpha)
        self._log_source(source)
        local_rows = batch["completion_ids"].size(0)
        if token_logps is None:  # alpha = 0: GRPO's advantages, which TRL computed already
            local_confidence = torch.full((local_rows,), torch.nan, device=rewards.device)
        else:
            mask = (
                batch["completion_mask"] * batch["tool_mask"]
                if "tool_mask" in batch
                else batch["completion_mask"]
            )
            local_confidence = sequence_confidence(token_logps, mask)
        confidence = self.accelerator.gather(local_confidence)
        start = self.accelerator.process_index * local_rows
        if token_logps is None:
            advantages = self.accelerator.gather(batch["advantages"])
        else:
            advantages = self.args.icpo_options.advantages(
                rewards, confidence, group_size, alpha, scale=self.scale_rewards
            )
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


def _checked_reward_function(func: Any, name: str) -> Any:
    """``func`` with its output checked: one number (or None for an unscorable row) per completion, else a
    TypeError naming the function. TRL's own message for a string or a None list names neither."""

    def check(output: Any) -> Any:
        if isinstance(output, (str, bytes)) or not hasattr(output, "__len__"):
            raise TypeError(
                f"reward function {name!r} returned {type(output).__name__} {output!r:.60}; return a list with one "
                "float (or None for a completion that cannot be scored) per completion."
            )
        for row, reward in enumerate(output):
            if reward is not None and (isinstance(reward, (str, bytes)) or not _is_number(reward)):
                raise TypeError(
                    f"reward function {name!r} returned {type(reward).__name__} {reward!r:.60} for completion {row}; "
                    "each reward must be a float, or None for a completion that cannot be scored."
                )
        return output

    if is_async_callable(func):

        @functools.wraps(func)
        async def checked_async(*args: Any, **kwargs: Any) -> Any:
            return check(await func(*args, **kwargs))

        return checked_async

    @functools.wraps(func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        return check(func(*args, **kwargs))

    return checked


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (list, tuple, dict))
