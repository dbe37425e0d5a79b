"""Time ``icpo_advantages`` on a large flat batch against a per-group Python loop.

Workload: 4096 groups x 16 rows (65,536 responses), 0/1 rewards, confidences uniform in [-3, 0],
alpha = 0.5, combine="reward", scale="group", for method "bt" and "rank".

    vectorised  one call of icpo_advantages on the whole batch;
    loop        the baseline: a Python loop over the 4096 groups, each calling icpo_advantages on its own
                16 rows (the same torch code, one group per call). With scale="group" every group is
                independent, so both give the same advantages; the script checks that before timing.

Each figure is the median of timed calls (``--runs`` of the vectorised call, ``--loop-runs`` of the
loop, which takes about a second per call) after ``--warmup`` untimed calls of each. The two are timed
interleaved in the same process (one loop call, then its share of vectorised calls, round after round),
so a change in machine load hits both alike and the ratio compares like with like.

    .venv/bin/python benchmarks/bench_core.py [--runs 20] [--loop-runs 5] [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm import tqdm

from icpo.core import METHODS, icpo_advantages
from icpo.static_sampler import cpu_info

ALPHA = 0.5


def make_batch(num_groups: int, group_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    rewards = torch.randint(0, 2, (num_groups * group_size,), generator=generator).float()
    confidence = -3 * torch.rand(num_groups * group_size, generator=generator)
    return rewards, confidence


def vectorised(rewards: torch.Tensor, confidence: torch.Tensor, group_size: int, method: str) -> torch.Tensor:
    return icpo_advantages(rewards, confidence, group_size, ALPHA, method=method, combine="reward")


def per_group_loop(
    rewards: torch.Tensor, confidence: torch.Tensor, group_size: int, method: str
) -> torch.Tensor:
    return torch.cat(
        [
            vectorised(
                rewards[start : start + group_size],
                confidence[start : start + group_size],
                group_size,
                method,
            )
            for start in range(0, rewards.numel(), group_size)
        ]
    )


def interleaved_medians_ms(
    calls: dict[str, tuple[Callable[[], torch.Tensor], int]], warmup: int
) -> dict[str, float]:
    """Median wall time in ms of each named call, given as (call, timed runs).

    The timed runs are spread over as many rounds as the smallest run count; each round times every
    call its share of times, so all calls are measured under the same conditions.
    """
    for call, _ in calls.values():
        for _ in range(warmup):
            call()
    rounds = min(runs for _, runs in calls.values())
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for round_index in range(rounds):
        for name, (call, runs) in calls.items():
            share = runs * (round_index + 1) // rounds - runs * round_index // rounds
            for _ in range(share):
                start = time.perf_counter()
                call()
                timings[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(values) for name, values in timings.items()}


def cpu_model() -> str:
    return cpu_info("model name") or platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=4096)
    parser.add_argument("--group-size", type=int, default=16)
    parser.add_argument("--runs", type=int, default=20, help="timed calls per figure (median reported)")
    parser.add_argument("--loop-runs", type=int, default=5, help="timed calls of the loop baseline")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls of each before timing")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    rewards, confidence = make_batch(args.groups, args.group_size)
    results = []
    for method in tqdm(METHODS, desc="methods"):
        fast = vectorised(rewards, confidence, args.group_size, method)
        torch.testing.assert_close(per_group_loop(rewards, confidence, args.group_size, method), fast)
        medians = interleaved_medians_ms(
            {
                "vectorised_ms": (
                    lambda m=method: vectorised(rewards, confidence, args.group_size, m),
                    args.runs,
                ),
                "loop_ms": (
                    lambda m=method: per_group_loop(rewards, confidence, args.group_size, m),
                    args.loop_runs,
                ),
            },
            args.warmup,
        )
        results.append(
            {"method": method, **medians, "speedup": medians["loop_ms"] / medians["vectorised_ms"]}
        )

    setup = {
        "groups": args.groups,
        "group_size": args.group_size,
        "runs": args.runs,
        "loop_runs": args.loop_runs,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "load_average_at_end": os.getloadavg(),
    }
    print(
        f"icpo_advantages, {args.groups} groups x {args.group_size} rows, combine=reward, scale=group; "
        f"median of {args.runs} runs (loop: {args.loop_runs}); "
        f"torch {setup['torch']}, {setup['threads']} threads, {setup['cpu']}\n"
    )
    print("| method | vectorised (ms) | per-group loop (ms) | speedup |")
    print("|---|---:|---:|---:|")
    for row in results:
        print(
            f"| {row['method']} | {row['vectorised_ms']:.2f} | {row['loop_ms']:.1f} | {row['speedup']:.0f}x |"
        )
    if args.json is not None:
        tmp = args.json.with_name(args.json.name + ".tmp")
        tmp.write_text(json.dumps({"setup": setup, "results": results}, indent=2) + "\n")
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
