"""The SmolLM2 RL step as a user runs it: ``icpo train`` on the shipped word-problem recipe, before and
after the fast path, each set-up a real ``icpo train`` process; the step time is TRL's own ``step_time``
in metrics.jsonl (generation, scoring, backward and optimiser step), median over the steps after the first.

Set-ups (the issue's shape: 4 prompts x 8 completions, at most 48 new tokens, T 0.7, top 4 layers trained):

- ``as shipped before``: activation checkpointing on (TRL's default), fp32, TRL's generate;
- ``no checkpointing, fp32`` and ``no checkpointing, bf16``: TRL's generate;
- ``fast path ICPO`` / ``fast path GRPO``: the recipe as shipped now (bf16 where the CPU has bf16 arithmetic,
  ``icpo_sampler: static``, no checkpointing), with ``icpo_alpha`` 0.5 and 0: their ratio is ICPO's cost.

    .venv/bin/python benchmarks/bench_rl_step.py --steps 5 --json docs/bench/rl_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from icpo.static_sampler import cpu_info

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "smollm2_wordproblems_icpo.yaml"
SHAPE = [
    "--per_device_train_batch_size", "32", "--num_generations", "8", "--temperature", "0.7",
    "--max_completion_length", "48", "--report_to", "[]",
]  # fmt: skip
SETUPS = {
    "as shipped before": ["--activation_checkpointing", "true", "--bf16", "false", "--icpo_sampler", "trl"],
    "no checkpointing, fp32": ["--bf16", "false", "--icpo_sampler", "trl"],
    "no checkpointing, bf16": ["--bf16", "true", "--icpo_sampler", "trl"],
    "fast path ICPO": [],
    "fast path GRPO": ["--icpo_alpha", "0"],
}


def run_setup(name: str, steps: int, workdir: Path) -> dict:
    """One ``icpo train`` process; its per-step metrics."""
    out = workdir / name.replace(" ", "-").replace(",", "")
    command = [
        sys.executable, "-m", "icpo.cli", "train", "--config", str(RECIPE), "--max_steps", str(steps),
        "--output_dir", str(out), *SHAPE, *SETUPS[name],
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(
        command, check=True, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    wall = time.perf_counter() - started
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    history = [entry for entry in history if "step_time" in entry]
    return {
        "step_time": [entry["step_time"] for entry in history],
        "mean_length": [entry.get("completions/mean_length") for entry in history],
        "clipped_ratio": [entry.get("completions/clipped_ratio") for entry in history],
        "process_wall_seconds": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-rl-step-") as workdir:
        for name in args.setups:
            load_before = os.getloadavg()[0]
            results[name] = run_setup(name, args.steps, Path(workdir)) | {"load_before": load_before}
            kept = results[name]["step_time"][1:]
            results[name]["median_step_seconds"] = statistics.median(kept)
            print(
                f"{name:26s} median step {results[name]['median_step_seconds']:.2f} s  steps {kept}",
                flush=True,
            )
    summary = {"cpu": cpu_info("model name") or "cpu", "steps": args.steps, "setups": results}
    if "fast path ICPO" in results and "fast path GRPO" in results:
        summary["icpo_over_grpo"] = (
            results["fast path ICPO"]["median_step_seconds"]
            / results["fast path GRPO"]["median_step_seconds"]
        )
        print(f"ICPO/GRPO step ratio on the fast path: {summary['icpo_over_grpo']:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
