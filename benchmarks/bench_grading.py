"""Grading cost, two measurements:

1. all 500 MATH-500 gold solutions: icpo.rewards (bounded worker pool) against calling math-verify
   directly in this process (no time bound), the same answers, median of several runs. math-verify
   caches parsed LaTeX (an lru_cache) in each process, so runs after the first are partly cached for
   both; the first run's time is printed too;
2. a stalling batch: 21 power towers (7 each of 9^9^9^9^9, 10^10^10, 2^2^100, boxed) plus the first 43
   MATH-500 solutions in one ``math_reward`` call, repeated: wall time per call, how many solutions
   graded right, how many towers came back unscorable (None).

    .venv/bin/python benchmarks/bench_grading.py --data-dir ../shared/benchmarks --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from icpo.rewards import grade_many, math_reward, math_verifier

POWER_TOWERS = [r"\boxed{9^{9^{9^{9^{9}}}}}", r"\boxed{10^{10^{10}}}", r"\boxed{2^{2^{100}}}"] * 7


def direct_math_verify(solutions: list[str], golds: list[str]) -> int:
    from math_verify import parse, verify

    return sum(
        verify(parse(f"${gold}$"), parse(solution)) for solution, gold in zip(solutions, golds, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/benchmarks")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [json.loads(line) for line in (Path(args.data_dir) / "math500.jsonl").open()]
    solutions, golds = [r["solution"] for r in rows], [r["answer"] for r in rows]
    math_verifier().check([("1", "1")])  # start the worker outside the timed region

    timings: dict[str, list[float]] = {"icpo.rewards.grade_many": [], "math_verify in-process": []}
    for _ in range(args.repeats):
        started = time.perf_counter()
        correct_ours = sum(v.correct is True for v in grade_many("math", solutions, golds))
        timings["icpo.rewards.grade_many"].append(time.perf_counter() - started)
        started = time.perf_counter()
        correct_direct = direct_math_verify(solutions, golds)
        timings["math_verify in-process"].append(time.perf_counter() - started)
    for name, values in timings.items():
        median = statistics.median(values)
        runs = f"{len(values)} runs of {len(rows)} solutions"
        print(f"{name:26s} median {median:.2f} s over {runs} (first run {values[0]:.2f} s)")
    ours, direct = (statistics.median(values) for values in timings.values())
    print(f"graded correct: icpo {correct_ours}/{len(rows)}, direct {correct_direct}/{len(rows)}")
    print(f"time ratio icpo / direct: {ours / direct:.2f}")
    stalling_batch(rows[:43], args.repeats)


def stalling_batch(rows: list[dict], repeats: int) -> None:
    completions = [r["solution"] for r in rows] + [f"So the answer is {tower}." for tower in POWER_TOWERS]
    golds = [r["answer"] for r in rows] + ["1"] * len(POWER_TOWERS)
    budget = math_verifier().budget_s(len(completions))
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        rewards = math_reward(["q"] * len(completions), completions, answer=golds)
        durations.append(time.perf_counter() - started)
        right = sum(reward == 1.0 for reward in rewards[: len(rows)])
        unscorable = sum(reward is None for reward in rewards[len(rows) :])
        print(
            f"{len(POWER_TOWERS)} towers + {len(rows)} solutions: {durations[-1]:.2f} s "
            f"(budget {budget:.2f} s), solutions right {right}/{len(rows)}, towers None {unscorable}/{len(POWER_TOWERS)}"
        )
    print(
        f"stalling batch: median {statistics.median(durations):.2f} s, max {max(durations):.2f} s over {repeats} calls"
    )


if __name__ == "__main__":
    main()
