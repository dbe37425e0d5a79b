"""The map of where ICPO helps or hurts (issue 10): GRPO and four ICPO variants, paired by seed, over
reward noise x starting accuracy, on the offline addition task. docs/results.md reports it.

    .venv/bin/python benchmarks/study_grid.py --out runs/grid --seeds 8

Resumable: a run whose result.json exists (with the same settings) is skipped, so a killed grid goes on
where it stopped. Seeds are the outermost loop, so at any moment every cell has the same number of
finished seeds (give or take the seed in progress). Each call appends its command and wall time to
``{out}/grid-calls.jsonl``; ``--report`` only (re)writes the tables and heat maps from what finished.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from icpo.rl_run import GRPO, RESULT, StudySettings, Variant, run_rl
from icpo.study import load_finished, run_folder_name, warm_start_for

NOISES = (0.0, 0.2, 0.4)
STARTS = (0.1, 0.4)  # target held-out greedy accuracy of the warm start: sparse and denser rewards
VARIANTS = {
    "grpo": GRPO,
    "advantage": Variant(alpha=0.5, combine="advantage"),  # the default
    "reward": Variant(alpha=0.5, combine="reward"),  # the paper's reading
    "linear": Variant(alpha=0.5, combine="advantage", schedule="linear"),  # alpha decays to 0
    "fallback": Variant(alpha=0.5, combine="fallback"),  # ours: preference only in all-equal groups
}
BASE = StudySettings(avg_k=32)


def cells() -> list[StudySettings]:
    return [replace(BASE, start_accuracy=start, reward_noise=noise) for start in STARTS for noise in NOISES]


def run_grid(out: Path, seeds: list[int]) -> None:
    import torch
    from tqdm.auto import tqdm

    torch.set_num_threads(1)
    plan = [
        (seed, settings, variant) for seed in seeds for settings in cells() for variant in VARIANTS.values()
    ]
    # Every finished run is read (and its settings checked) before any training starts.
    todo = [
        (seed, settings, variant)
        for seed, settings, variant in plan
        if load_finished(out / "runs" / run_folder_name(variant, settings, seed), settings, variant) is None
    ]
    print(f"{len(plan) - len(todo)} of {len(plan)} runs already finished", flush=True)
    for seed, settings, variant in tqdm(todo, desc="grid", unit="run"):
        warm_start, train, test = warm_start_for(out, settings, seed)
        run_rl(
            warm_start,
            settings,
            variant,
            seed,
            out / "runs" / run_folder_name(variant, settings, seed),
            train,
            test,
        )


def finished_results(out: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted((out / "runs").glob(f"*/{RESULT}"))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/grid")
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0..N-1")
    parser.add_argument("--report", action="store_true", help="only write the report from finished runs")
    parser.add_argument("--docs", default="docs", help="where the report's markdown and PNGs go")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report:
        started = time.time()
        run_grid(out, list(range(args.seeds)))
        with (out / "grid-calls.jsonl").open("a") as log:
            log.write(
                json.dumps({"argv": argv, "started": started, "wall_seconds": time.time() - started}) + "\n"
            )
    from icpo.report import write_grid_report

    print(write_grid_report(Path(args.docs), finished_results(out), VARIANTS))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
