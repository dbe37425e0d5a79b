"""The map of where ICPO helps or hurts: GRPO, ICPO variants and the peer methods (unlikeliness,
clip-higher), paired by seed, over reward noise x starting accuracy, on the offline addition task, in the
study's default settings (300 steps of 32 prompts x 8 samples, where GRPO learns). docs/results.md reports it.

    .venv/bin/python benchmarks/study_grid.py --out runs/grid-headroom --seeds 8 --noises 0 0.2 \
        --methods grpo advantage reward unlikeliness --name results-grid-headroom

clip-higher changes only the PPO clip, which acts only when a batch is used for more than one update, so
it is compared with GRPO in a grid of its own with ``--num-iterations 2`` (every method there makes two
optimiser passes per batch):

    .venv/bin/python benchmarks/study_grid.py --out runs/grid-offpolicy --seeds 4 --noises 0 \
        --num-iterations 2 --methods grpo clip-higher --name results-grid-offpolicy

Flags narrow or stretch the grid (``--starts``, ``--noises``, ``--methods``, ``--steps``, ``--num-generations``,
``--learning-rate``, ``--mistake-rate``); a grid of
another shape needs its own ``--out`` folder and ``--name`` for its report, e.g. the longer sparse run:

    .venv/bin/python benchmarks/study_grid.py --out runs/grid-long --steps 600 --starts 0.1 --noises 0 \
        --methods grpo advantage fallback --name results-grid-long --curves

Resumable: a run whose result.json exists (with the same settings) is skipped, so a killed grid goes on
where it stopped. Seeds are the outermost loop, so at any moment every cell has the same number of
finished seeds (give or take the seed in progress). A seed whose warm-up cannot reach a cell's start
accuracy is left out of the cells of that start, the report says so, and the next seed takes its place.
Each call appends its command and wall time to ``{out}/grid-calls.jsonl``; ``--report`` only (re)writes
the tables and heat maps from what finished. ``{out}`` is locked while the script runs
(``icpo.runfolder.locked_folder``), so a second call on the same folder exits at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from icpo.core import ICPOOptions
from icpo.runfolder import FolderInUse, locked_folder, write_atomically
from icpo.study.engine import (
    load_finished,
    recorded_as,
    run_folder_name,
    start_missed,
    trained_as,
    warm_start_for,
)
from icpo.study.methods import METHODS, Method, needs_off_policy_updates, options_method
from icpo.study.rl_run import RESULT, StudySettings, run_rl

DOCS = Path(__file__).resolve().parents[1] / "docs"
NOISES = (0.0, 0.2, 0.4)  # share of rewards flipped at random
STARTS = (0.1, 0.4)  # target held-out greedy accuracy of the warm start: sparse and denser rewards
VARIANTS: dict[str, Method] = {
    "grpo": METHODS["grpo"],
    "advantage": options_method(ICPOOptions(alpha=0.5, combine="advantage")),  # the default
    "reward": options_method(ICPOOptions(alpha=0.5, combine="reward")),  # the paper's reading
    "linear": options_method(ICPOOptions(alpha=0.5, combine="advantage", schedule="linear")),  # alpha -> 0
    "fallback": options_method(ICPOOptions(alpha=0.5, combine="fallback")),  # ours: only all-equal groups
    "unlikeliness": METHODS["unlikeliness"],  # He et al. 2025
    "clip-higher": METHODS["clip-higher"],  # DAPO
}
BASE = StudySettings(avg_k=32)
EXTRA_SEEDS = 8  # seeds tried beyond --seeds to replace those whose warm-up cannot reach a target
# The paper's claims, the metric and cells that test each, and the sign of the difference it predicts.
CLAIMS = (
    # Only the clean sparse cell is sparse: reward noise mixes almost every group (docs/results.md).
    ("sparse rewards: helps where groups carry no signal", "greedy_accuracy", [(0.1, 0.0)], +1),
    ("sparse rewards (sampled accuracy)", "avg_at_32", [(0.1, 0.0)], +1),
    ("noisy rewards: more robust", "greedy_accuracy", [(0.1, 0.2), (0.1, 0.4), (0.4, 0.2), (0.4, 0.4)], +1),
    ("noisy rewards (sampled accuracy)", "avg_at_32", [(0.1, 0.2), (0.1, 0.4), (0.4, 0.2), (0.4, 0.4)], +1),
    ("fewer overconfident errors", "heldout_overconfident_error_rate", None, -1),
    ("confidence ranks right above wrong", "heldout_within_group_auroc", None, +1),
    ("no entropy collapse", "entropy_end", None, +1),
    ("less overfitting to one strategy (pass@32)", "pass_at_32", None, +1),
    ("less overfitting to one strategy (pass@4)", "pass_at_4", None, +1),
)


def claim_evidence(summary: dict, compared: list[str]) -> str:
    """Markdown: for each claim and each cell that tests it (None = every cell), each variant's paired
    difference from GRPO and a mark: + (CI excludes 0 in the claimed direction), - (CI excludes 0 in the
    opposite direction), ~ (CI includes 0, or fewer than 3 seeds: with 2, equal differences give a
    zero-width interval)."""
    from icpo.study.report import format_difference

    def mark(diff: dict, sign: int) -> str:
        low, high = sorted(sign * bound for bound in diff["ci95"])
        if diff["n"] < 3 or low != low:
            return "~"
        return "+" if low > 0 else "-" if high < 0 else "~"

    lines = ["| claim | metric | start | noise | seeds | " + " | ".join(compared) + " |"]
    lines.append("|---|---|---|---|---|" + "---|" * len(compared))
    by_cell = {(c["start_target"], c["reward_noise"]): c for c in summary["cells"]}
    for claim, metric, tested, sign in CLAIMS:
        for key in tested or sorted(by_cell):
            cell = by_cell.get(key)
            if cell is None:
                continue
            entries = []
            for variant in compared:
                diff = cell["vs_baseline"].get(variant, {}).get(metric)
                entries.append("—" if diff is None else f"{format_difference(diff)} {mark(diff, sign)}")
            lines.append(
                f"| {claim} | {metric} | {key[0]:g} | {key[1]:g} | {len(cell['seeds'])} | "
                + " | ".join(entries)
                + " |"
            )
    return "\n".join(lines) + "\n"


def cells(starts: list[float], noises: list[float], **fixed: Any) -> list[StudySettings]:
    """One ``StudySettings`` per (start, noise), with ``fixed`` (steps, learning rate, ...) in every cell."""
    return [
        replace(BASE, start_accuracy=start, reward_noise=noise, **fixed)
        for start in starts
        for noise in noises
    ]


def by_start(grid: list[StudySettings]) -> dict[float, list[StudySettings]]:
    """The grid's cells grouped by warm-start target: the cells of one target share each seed's warm-up."""
    groups: dict[float, list[StudySettings]] = defaultdict(list)
    for settings in grid:
        groups[settings.start_accuracy].append(settings)
    return groups


def run_grid(out: Path, seeds_per_cell: int, grid: list[StudySettings], variants: list[Method]) -> None:
    """Seeds 0, 1, ... until every cell has ``seeds_per_cell`` seeds whose warm-up reached its target; a
    seed whose warm-up stalls below a target is left out of that target's cells (``start_missed``) and the
    next seed takes its place, at most ``EXTRA_SEEDS`` times."""
    import torch
    from tqdm.auto import tqdm

    torch.set_num_threads(1)
    tried = range(seeds_per_cell + EXTRA_SEEDS)
    starts = by_start(grid)
    # Every finished run is read (and its settings checked) before any training starts.
    finished = {
        run_dir
        for seed in tried
        for settings in grid
        for variant in variants
        for run_dir in [out / "runs" / run_folder_name(variant, settings, seed)]
        if load_finished(run_dir, settings, variant) is not None
    }
    kept = dict.fromkeys(starts, 0)
    with tqdm(total=seeds_per_cell * len(grid) * len(variants), desc="grid", unit="run") as progress:
        for seed in tried:
            for start, start_cells in starts.items():
                if kept[start] == seeds_per_cell:
                    continue
                warm_start, train, test = warm_start_for(out, start_cells[0], seed)
                if (why := start_missed(out, start_cells[0], seed)) is not None:
                    progress.write(why)
                    continue
                kept[start] += 1
                for settings in start_cells:
                    for variant in variants:
                        run_dir = out / "runs" / run_folder_name(variant, settings, seed)
                        if run_dir not in finished:
                            run_rl(warm_start, settings, variant, seed, run_dir, train, test)
                        progress.update()
    for start, count in kept.items():
        if count < seeds_per_cell:
            print(f"start {start:g}: only {count} of {len(tried)} seeds reached it", flush=True)


def finished_results(
    out: Path, seeds_per_cell: int, grid: list[StudySettings], variants: list[Method]
) -> tuple[list[dict], list[str]]:
    """The finished runs of the grid's cells and variants from, per warm-start target, the first
    ``seeds_per_cell`` seeds whose warm-up reached it (other runs in the folder are left out), and a line
    for each seed left out because its warm-up missed the target."""
    results = [json.loads(path.read_text()) for path in sorted((out / "runs").glob(f"*/{RESULT}"))]

    results = [
        r
        for r in results
        if any(recorded_as(cell, r["settings"]) for cell in grid) and any(trained_as(m, r) for m in variants)
    ]
    kept: dict[float, list[int]] = {}
    notes = []
    for start, start_cells in by_start(grid).items():
        seeds = {r["seed"] for r in results if r["settings"]["start_accuracy"] == start}
        kept[start] = []
        # Seeds without runs count too: a seed whose warm-up missed the target has none.
        for seed in range(max(seeds, default=-1) + 1):
            if (why := start_missed(out, start_cells[0], seed)) is not None:
                notes.append(f"start {start:g}: {why}")
            elif seed in seeds and len(kept[start]) < seeds_per_cell:
                kept[start].append(seed)
    return [r for r in results if r["seed"] in kept[r["settings"]["start_accuracy"]]], notes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="runs/grid")
    parser.add_argument(
        "--seeds",
        type=int,
        default=8,
        help="seeds per cell (to run, or to report on): the first N whose warm-up reaches the cell's start",
    )
    parser.add_argument("--report", action="store_true", help="only write the report from finished runs")
    parser.add_argument(
        "--docs", default=str(DOCS), help="where the report's markdown and PNGs go (this repository's docs/)"
    )
    parser.add_argument("--name", default="results-grid", help="file name of the report (without suffix)")
    parser.add_argument("--steps", type=int, default=BASE.steps, help="RL steps of every run")
    parser.add_argument(
        "--num-iterations",
        type=int,
        default=1,
        help="optimiser passes per batch (clip-higher needs 2 or more)",
    )
    parser.add_argument(
        "--num-generations", type=int, default=BASE.num_generations, help="samples per prompt (group size)"
    )
    parser.add_argument("--learning-rate", type=float, default=BASE.learning_rate, help="RL learning rate")
    parser.add_argument(
        "--mistake-rate",
        type=float,
        default=BASE.mistake_rate,
        help="share of the warm-up's SFT targets that are the task's systematic slip (a dropped carry)",
    )
    parser.add_argument("--starts", type=float, nargs="+", default=STARTS, help="warm-start targets")
    parser.add_argument("--noises", type=float, nargs="+", default=NOISES, help="reward flip probabilities")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=list(VARIANTS),
        default=None,
        help="grpo is always included (default: every method; clip-higher only with --num-iterations 2+)",
    )
    parser.add_argument(
        "--curves", action="store_true", help="also plot each cell's curves ({name}-start{a}-noise{p}-*.png)"
    )
    args = parser.parse_args(argv)
    if min(args.steps, args.seeds, args.num_iterations) < 1 or args.num_generations < 2:
        parser.error("--steps, --seeds and --num-iterations must be at least 1, --num-generations at least 2")
    if not args.learning_rate > 0 or not 0 <= args.mistake_rate <= 1:
        parser.error("--learning-rate must be positive and --mistake-rate in [0, 1]")
    if not all(0 < s < 1 for s in args.starts) or not all(0 <= p < 1 for p in args.noises):
        parser.error("--starts must lie in (0, 1) and --noises in [0, 1)")
    if args.methods is None:  # every method that can differ from GRPO at this --num-iterations
        args.methods = [
            m
            for m, method in VARIANTS.items()
            if args.num_iterations > 1 or not needs_off_policy_updates(method)
        ]
    variants = {label: VARIANTS[label] for label in ["grpo", *(m for m in args.methods if m != "grpo")]}
    clipped = [label for label, method in variants.items() if needs_off_policy_updates(method)]
    if clipped and args.num_iterations == 1:
        parser.error(
            f"{', '.join(clipped)} with --num-iterations 1 is GRPO bit for bit (on-policy, no clip acts)"
        )
    grid = cells(
        args.starts,
        args.noises,
        steps=args.steps,
        num_iterations=args.num_iterations,
        num_generations=args.num_generations,
        learning_rate=args.learning_rate,
        mistake_rate=args.mistake_rate,
    )
    out = Path(args.out)
    try:
        with locked_folder(out):
            return run_and_report(out, args, grid, variants, argv)
    except (FolderInUse, ValueError) as error:  # in use; finished runs of other settings; nothing to report
        parser.exit(2, f"{error}\n")


def run_and_report(out: Path, args, grid: list[StudySettings], variants: dict[str, Method], argv) -> int:
    """Run what is missing (unless ``--report``), then write the report, claims first."""
    if not args.report:
        started = time.time()
        run_grid(out, args.seeds, grid, list(variants.values()))
        with (out / "grid-calls.jsonl").open("a") as log:
            log.write(
                json.dumps({"argv": argv, "started": started, "wall_seconds": time.time() - started}) + "\n"
            )
    from icpo.study.report import grid_summary, plot_curves, write_grid_report

    results, left_out = finished_results(out, args.seeds, grid, list(variants.values()))
    report = write_grid_report(Path(args.docs), results, variants, args.name)
    summary = grid_summary(results, {v.name: label for label, v in variants.items()})
    compared = list(variants)[1:]
    claims = "#### Claims, cell by cell\n\n" + claim_evidence(summary, compared) + "\n" if compared else ""
    if left_out:
        claims = "".join(f"**Left out:** {why}.\n\n" for why in left_out) + claims
    write_atomically(report, claims + report.read_text())
    if args.curves:
        for settings in grid:
            cell = [r for r in results if recorded_as(settings, r["settings"])]
            name = f"{args.name}-start{settings.start_accuracy:g}-noise{settings.reward_noise:g}"
            if cell:
                plot_curves(cell, Path(args.docs), name, baseline="grpo")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
