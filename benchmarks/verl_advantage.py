"""Cost of verl's advantage step with the ``icpo`` estimator against verl's own GRPO estimators.

One paper-scale batch (recipes/verl: 768 prompts x 8 rollouts = 6144 responses, 3072 response tokens)
goes through ``verl.trainer.ppo.ray_trainer.compute_advantage`` for each estimator, interleaved, several
times; the table gives the median wall time of each and its ratio to verl's ``grpo``. The ``icpo`` time
includes the confidence computation the icpo trainer mode adds (``sequence_confidence`` over the batch).

    .venv-verl/bin/python benchmarks/verl_advantage.py --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from omegaconf import OmegaConf
from tqdm import tqdm
from verl import DataProto
from verl.trainer.ppo.ray_trainer import compute_advantage

from icpo.core import sequence_confidence
from icpo.verl import supply

warnings.filterwarnings("ignore", message=r".* engine is not available")


def paper_scale_batch(prompts: int, rollouts: int, tokens: int, seed: int = 0) -> DataProto:
    generator = torch.Generator().manual_seed(seed)
    rows = prompts * rollouts
    lengths = torch.randint(1, tokens + 1, (rows,), generator=generator)
    mask = (torch.arange(tokens).unsqueeze(0) < lengths.unsqueeze(1)).float()
    rewards = torch.zeros(rows, tokens)
    rewards[torch.arange(rows), lengths - 1] = torch.randint(0, 2, (rows,), generator=generator).float()
    uids = np.array([f"prompt-{row // rollouts}" for row in range(rows)], dtype=object)
    order = torch.randperm(rows, generator=generator)
    return DataProto.from_dict(
        tensors={
            "token_level_rewards": rewards[order],
            "response_mask": mask[order],
            "old_log_probs": (-3.0 * torch.rand(rows, tokens, generator=generator))[order],
        },
        non_tensors={"uid": uids[order.numpy()]},
    )


def timed_step(batch: DataProto, estimator: str, config) -> float:
    started = time.perf_counter()
    if estimator == "icpo":
        confidence = sequence_confidence(batch.batch["old_log_probs"], batch.batch["response_mask"])
        with supply(confidence, step=0, total_steps=0):
            compute_advantage(batch, adv_estimator=estimator, config=config)
    else:
        compute_advantage(batch, adv_estimator=estimator, config=config)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=768)
    parser.add_argument("--rollouts", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=3072)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    torch.set_num_threads(1)
    batch = paper_scale_batch(args.prompts, args.rollouts, args.tokens)
    config = OmegaConf.create({"norm_adv_by_std_in_grpo": True, "icpo": {"alpha": 0.5}})
    estimators = ("grpo", "grpo_vectorized", "icpo")
    times: dict[str, list[float]] = {name: [] for name in estimators}
    for _ in tqdm(range(args.repeats), desc="repeats"):
        for name in estimators:
            times[name].append(timed_step(batch, name, config))

    rows = len(batch)
    print(
        f"\n{rows} responses ({args.prompts} x {args.rollouts}), {args.tokens} tokens, torch threads 1, median of {args.repeats}"
    )
    print(f"{'estimator':<16} {'median s':>9} {'vs grpo':>8}")
    baseline = statistics.median(times["grpo"])
    for name in estimators:
        median = statistics.median(times[name])
        print(f"{name:<16} {median:>9.3f} {median / baseline:>7.2f}x")


if __name__ == "__main__":
    main()
