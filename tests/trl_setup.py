"""A tiny, fully offline GRPO/ICPO set-up shared by the TRL engine tests and the multi-process script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset

PROMPTS = [f"{a}+{b}=" for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (2, 9), (4, 4), (6, 1), (8, 3)]]


def length_reward(completions: list[str], **_: Any) -> list[float | None]:
    """Varied, deterministic rewards: the completion's length modulo 4 (None for every 7th row)."""
    return [None if index % 7 == 3 else float(len(text) % 4) for index, text in enumerate(completions)]


def digit_reward(completions: list[str], **_: Any) -> list[float]:
    """1 when the completion contains a digit: a 0/1 reward with mixed groups."""
    return [float(any(ch.isdigit() for ch in text)) for text in completions]


def prompt_dataset(repeats: int = 4) -> Dataset:
    return Dataset.from_dict({"prompt": PROMPTS * repeats})


def config_kwargs(output_dir: Path | str, **overrides: Any) -> dict[str, Any]:
    """GRPOConfig/ICPOConfig arguments for a seconds-long CPU run."""
    kwargs: dict[str, Any] = dict(
        output_dir=str(output_dir),
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        max_steps=3,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        data_seed=0,
        disable_tqdm=True,
    )
    kwargs.update(overrides)
    return kwargs


def summed_rewards(rewards_per_func: torch.Tensor) -> torch.Tensor:
    """Each row's reward as TRL sums it (unit weights), NaN where every reward function returned None."""
    rewards = rewards_per_func.nansum(dim=1)
    rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
    return rewards


def launch_two_processes(*program: str) -> subprocess.CompletedProcess:
    """Run ``program`` (a script, or ``-m`` and a module, and its arguments) as ``accelerate launch
    --multi_gpu --num_processes 2`` does, on CPU with gloo; stdout and stderr captured."""
    repo = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", *program,
    ]  # fmt: skip
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
