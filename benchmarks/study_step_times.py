"""Step time of each method in finished study runs: TRL's ``step_time`` from every result.json's history.

    .venv/bin/python benchmarks/study_step_times.py docs/results-smollm2-two-digit-add-it2

Per method: the mean step time (steps alternate between generating and reusing a batch when it is used
twice, so the mean, not the median, is the throughput), the median completion length, and the ratio of
each run's mean step to GRPO's of the same seed (paired: same problems drawn, same machine and load
pattern; the ratio also carries which completions each method sampled, so it bounds ICPO's own cost from
above rather than measuring it). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path


def step_and_length(result: dict) -> tuple[float, float]:
    """A run's mean step time and median completion length (over the steps that logged each: with two
    optimiser passes per batch, only a step that generated logs completion lengths)."""

    def median(key: str) -> float:
        values = [e[key] for e in result["history"] if e.get(key) is not None]
        return statistics.median(values) if values else float("nan")

    times = [e["step_time"] for e in result["history"] if e.get("step_time") is not None]
    return statistics.fmean(times), median("completions/mean_length")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", type=Path, nargs="+", help="study folders holding runs/*/result.json")
    args = parser.parse_args(argv)
    for folder in args.folders:
        runs = [json.loads(p.read_text()) for p in sorted(folder.glob("runs/*/result.json"))]
        if not runs:
            parser.exit(2, f"{folder}: no finished runs (runs/*/result.json).\n")
        by_method: dict[str, dict[int, tuple[float, float]]] = {}
        for run in runs:
            by_method.setdefault(run["variant"], {})[run["seed"]] = step_and_length(run)
        grpo = by_method.get("grpo", {})
        print(
            f"{folder}\n\n| method | runs | mean step (s) | median completion tokens | step / GRPO's, per seed |"
        )
        print("|---|---|---|---|---|")
        for method, seeds in by_method.items():
            ratios = [f"{seeds[s][0] / grpo[s][0]:.2f}" for s in sorted(seeds) if s in grpo]
            step = statistics.fmean(v[0] for v in seeds.values())
            length = statistics.median(v[1] for v in seeds.values())
            print(f"| {method} | {len(seeds)} | {step:.1f} | {length:.1f} | {', '.join(ratios) or '-'} |")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
