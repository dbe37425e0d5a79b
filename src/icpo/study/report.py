"""The study report: curves averaged across seeds, a summary table, paired differences, CSV and JSON.

Input: the run results written by ``icpo.study.rl_run.run_rl`` (one dict per (variant, seed)). Output, in
the study folder, all written atomically:

- ``{name}.md``: the summary table (mean over seeds of each final metric), the paired difference of each
  variant against the baseline with its 95% confidence interval, and the plots;
- ``{name}-{metric}.png``: held-out accuracy, policy entropy, overconfident-error rate and reward against
  step, one line per variant (mean over seeds) and, with several seeds, each variant's paired difference
  from the baseline at every step with its 95% CI band;
- ``{name}.csv``: one row per run with its final metrics; ``{name}.json``: the summary.

Paired difference over seeds s = 1..n: d_s = metric(variant, s) - metric(baseline, s);
mean d +- t_{0.975, n-1} * sd(d) / sqrt(n), the Student-t quantile from scipy.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from icpo.runfolder import write_atomically

CURVES = (
    ("accuracy", "held-out greedy accuracy", "eval_curve"),
    ("entropy", "policy entropy (nats/token)", "history"),
    ("icpo/overconfident_error_rate", "overconfident-error rate (train)", "history"),
    ("reward", "mean reward (train)", "history"),
)


# What each final metric measures and which direction is better (the report says so under its tables).
METRIC_MEANINGS = {
    "greedy_accuracy": "share of held-out prompts answered right by greedy decoding; higher is better",
    "heldout_overconfident_error_rate": "share of wrong held-out samples more confident than every right "
    "sample of their prompt (prompts with both); lower is better",
    "heldout_within_group_auroc": "how often a right sample is more confident than a wrong one to the same "
    "prompt (0.5: confidence says nothing); higher is better",
    "entropy_end": "policy entropy over the last training steps (nats per token); falling towards 0 is the "
    "entropy collapse ICPO claims to prevent",
    "train_overconfident_error_rate_end": "the overconfident-error rate of the training samples, last steps; "
    "lower is better",
    "mixed_group_share": "share of training groups holding both a right and a wrong answer (where GRPO has a "
    "signal)",
    "reward_end": "mean training reward over the last steps; higher is better",
}


def metric_meaning(metric: str) -> str | None:
    """What ``metric`` measures (``METRIC_MEANINGS``, and avg@k / pass@k for any k)."""
    if metric.startswith("avg_at_"):
        return f"mean accuracy of {metric[7:]} samples per held-out prompt at temperature 1; higher is better"
    if metric.startswith("pass_at_"):
        return f"share of held-out prompts with a right answer among {metric[8:]} samples; higher is better"
    return METRIC_MEANINGS.get(metric)


def paired_difference(differences: list[float]) -> tuple[float, float, float]:
    """Mean of paired differences and its 95% t interval (low, high); the interval is NaN for n < 2."""
    n = len(differences)
    mean = sum(differences) / n
    if n < 2:
        return mean, math.nan, math.nan
    from scipy.stats import t

    sd = math.sqrt(sum((d - mean) ** 2 for d in differences) / (n - 1))
    half = float(t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def _by_variant(results: list[dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    grouped: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for result in results:
        grouped[result["variant"]][result["seed"]] = result
    return grouped


def summarise(results: list[dict[str, Any]], baseline: str) -> dict[str, Any]:
    """Mean final metrics per variant, and each variant's paired difference against ``baseline``."""
    grouped = _by_variant(results)
    metrics = list(results[0]["final"])
    summary: dict[str, Any] = {"baseline": baseline, "metrics": metrics, "variants": {}}
    for variant, runs in grouped.items():
        entry: dict[str, Any] = {"seeds": sorted(runs), "mean": {}, "vs_baseline": {}}
        for metric in metrics:
            values = [runs[s]["final"][metric] for s in sorted(runs)]
            entry["mean"][metric] = sum(values) / len(values)
            paired = [s for s in sorted(runs) if s in grouped.get(baseline, {})]
            if variant != baseline and paired:
                diffs = [runs[s]["final"][metric] - grouped[baseline][s]["final"][metric] for s in paired]
                mean, low, high = paired_difference(diffs)
                entry["vs_baseline"][metric] = {"mean": mean, "ci95": [low, high], "n": len(paired)}
        summary["variants"][variant] = entry
    return summary


def mean_curve(runs: list[dict[str, Any]], metric: str, source: str) -> tuple[list[int], list[float]]:
    """Steps present in every run, and the mean of ``metric`` across runs at each."""
    per_run = [{e["step"]: e[metric] for e in run[source] if metric in e} for run in runs]
    steps = sorted(set.intersection(*(set(c) for c in per_run)))
    return steps, [sum(c[s] for c in per_run) / len(per_run) for s in steps]


def paired_curve(
    runs: dict[int, dict[str, Any]], baseline: dict[int, dict[str, Any]], metric: str, source: str
) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps, and the mean and 95% CI (low, high) of ``runs`` minus ``baseline`` at each step, paired by seed."""
    seeds = sorted(set(runs) & set(baseline))
    per_seed = [
        ({e["step"]: e[metric] for e in runs[s][source] if metric in e},
         {e["step"]: e[metric] for e in baseline[s][source] if metric in e})
        for s in seeds
    ]  # fmt: skip
    steps = sorted(set.intersection(*(set(a) & set(b) for a, b in per_seed)))
    intervals = [paired_difference([a[step] - b[step] for a, b in per_seed]) for step in steps]
    return steps, [i[0] for i in intervals], [i[1] for i in intervals], [i[2] for i in intervals]


def smoothed(values: list[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` points (fewer at the start); NaNs are skipped."""
    out = []
    for index in range(len(values)):
        kept = [v for v in values[max(0, index - window + 1) : index + 1] if v == v]
        out.append(sum(kept) / len(kept) if kept else float("nan"))
    return out


def display_name(variant: str, results: list[dict[str, Any]]) -> str:
    """A legend label a reader understands: a shipped method's label (``icpo.study.methods``), or the ICPO
    options that differ from the defaults."""
    from icpo.study.methods import METHODS

    if variant in METHODS:
        return METHODS[variant].label
    options = next((r.get("variant_options") for r in results if r["variant"] == variant), None)
    if not options:
        return variant
    return f"ICPO alpha={options['alpha']:g}, {options['combine']}" + (
        f", {options['schedule']} schedule" if options.get("schedule", "constant") != "constant" else ""
    )


def plot_curves(results: list[dict[str, Any]], out: Path, name: str, baseline: str) -> list[Path]:
    """One PNG per curve in ``CURVES``: left, one line per variant (mean across seeds; per-step training
    metrics as a moving average over a tenth of the run, the raw steps faint behind it); right, with
    several seeds, each variant minus the baseline, paired by seed, with its 95% CI band (per-step metrics:
    the difference and its band under the same moving average)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = _by_variant(results)
    paired = len(grouped.get(baseline, {})) > 1 and len(grouped) > 1
    seeds = sorted({seed for runs in grouped.values() for seed in runs})
    title = f"mean over {len(seeds)} seeds" if len(seeds) > 1 else f"one seed ({seeds[0]}): no interval"
    paths = []
    for metric, label, source in CURVES:
        figure, axes = plt.subplots(1, 2 if paired else 1, figsize=(11 if paired else 6, 3.6), squeeze=False)
        for index, (variant, runs) in enumerate(grouped.items()):
            steps, mean = mean_curve(list(runs.values()), metric, source)
            # The baseline in black, dashed, drawn above the others so a method that tracks it does not hide it.
            style = (
                {"color": "black", "linestyle": "--", "zorder": 3}
                if variant == baseline
                else {"color": f"C{index}", "linestyle": "-"}
            )
            legend = display_name(variant, results)
            window = max(1, len(steps) // 10)
            if source == "history" and window > 1:
                axes[0, 0].plot(steps, mean, alpha=0.2, linewidth=0.8, color=style["color"])
                mean = smoothed(mean, window)
                legend += f" ({window}-step average)"
            axes[0, 0].plot(steps, mean, label=legend, **style)
            if paired and variant != baseline:
                steps, diff, low, high = paired_curve(runs, grouped[baseline], metric, source)
                if source == "history" and window > 1:  # the same moving average as the left panel
                    diff, low, high = (smoothed(values, window) for values in (diff, low, high))
                axes[0, 1].plot(steps, diff, color=f"C{index}", label=display_name(variant, results))
                axes[0, 1].fill_between(steps, low, high, color=f"C{index}", alpha=0.2)
        axes[0, 0].set_ylabel(label)
        axes[0, 0].set_title(title, fontsize=9)
        if paired:
            axes[0, 1].axhline(0.0, color="black", linewidth=0.8)
            axes[0, 1].set_ylabel(f"method - {display_name(baseline, results)}")
            axes[0, 1].set_title(
                f"minus {display_name(baseline, results)}, paired by seed (95% CI; above 0: higher)",
                fontsize=9,
            )
        for axis in axes[0]:
            axis.set_xlabel("RL step")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110)
        plt.close(figure)
        path = out / f"{name}-{metric.split('/')[-1]}.png"
        write_atomically(path, buffer.getvalue())
        paths.append(path)
    return paths


def _format(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"


def render_markdown(
    summary: dict[str, Any], results: list[dict[str, Any]], plots: list[Path], notes: Sequence[str] = ()
) -> str:
    settings = results[0]["settings"]
    metrics = summary["metrics"]
    lines = [
        "# GRPO vs ICPO",
        "",
        f"Task `{settings['task']}` (difficulty {settings['difficulty']}), {settings['steps']} RL steps, "
        f"{settings['prompts_per_step']} prompts x {settings['num_generations']} samples per step, "
        f"reward noise {settings['reward_noise']:g}, held-out set of {settings['num_test']} prompts.",
        *(f"\n**Note:** {note}." for note in notes),
        "",
        "## Final metrics (mean over seeds)",
        "",
        "| variant | seeds | " + " | ".join(metrics) + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for variant, entry in summary["variants"].items():
        row = " | ".join(_format(entry["mean"][m]) for m in metrics)
        lines.append(f"| {variant} | {len(entry['seeds'])} | {row} |")
    if max(len(entry["seeds"]) for entry in summary["variants"].values()) == 1:
        lines += [
            "",
            "One seed: a single paired difference, no interval. Run `icpo compare --seeds 5` (or more) before "
            "drawing conclusions; docs/results.md has the multi-seed study.",
        ]
    lines += ["", f"## Paired difference against `{summary['baseline']}` (mean, 95% CI over seeds)", ""]
    lines += ["| variant | metric | mean diff | 95% CI |", "|---|---|---|---|"]
    for variant, entry in summary["variants"].items():
        for metric, diff in entry["vs_baseline"].items():
            low, high = diff["ci95"]
            lines.append(
                f"| {variant} | {metric} | {diff['mean']:+.3f} | [{_format(low)}, {_format(high)}] |"
            )
    several = max(len(entry["seeds"]) for entry in summary["variants"].values()) > 1
    lines += [
        "",
        "## What the metrics mean",
        "",
        *(f"- `{metric}`: {meaning}" for metric in metrics if (meaning := metric_meaning(metric))),
        "",
        "## Curves (left: mean across seeds; right: paired difference from the baseline, 95% CI)"
        if several
        else "## Curves (one seed: no paired difference)",
        "",
    ]
    lines += [f"![{path.stem}]({path.name})" for path in plots]
    return "\n".join(lines) + "\n"


def write_csv(results: list[dict[str, Any]]) -> bytes:
    metrics = list(results[0]["final"])
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["variant", "seed", "reward_noise", *metrics, "wall_seconds"])
    for r in results:
        writer.writerow(
            [
                r["variant"],
                r["seed"],
                r["settings"]["reward_noise"],
                *(r["final"][m] for m in metrics),
                r["wall_seconds"],
            ]
        )
    return buffer.getvalue().encode()


def write_report(
    out: Path, name: str, results: list[dict[str, Any]], baseline: str, notes: Sequence[str] = ()
) -> Path:
    """Write the markdown report (with ``notes``, e.g. seeds left out), plots, CSV and JSON for ``results``;
    return the markdown path."""
    if not results:
        raise ValueError("no run results to report on.")
    summary = summarise(results, baseline)
    plots = plot_curves(results, out, name, baseline)
    write_atomically(out / f"{name}.csv", write_csv(results))
    write_atomically(out / f"{name}.json", json.dumps(summary, indent=1).encode())
    report = out / f"{name}.md"
    write_atomically(report, render_markdown(summary, results, plots, notes).encode())
    return report


# --- the grid: noise x starting accuracy, paired differences from GRPO ----------------------------

GRID_METRICS = (
    ("greedy_accuracy", "greedy accuracy"),
    ("avg_at_32", "avg@32 (mean accuracy of 32 samples; estimates avg@8)"),
    ("pass_at_1", "pass@1"),
    ("pass_at_4", "pass@4"),
    ("pass_at_32", "pass@32"),
    ("entropy_end", "policy entropy, last 5 steps (nats/token)"),
    ("heldout_overconfident_error_rate", "held-out overconfident-error rate (mixed groups of 32)"),
    ("heldout_within_group_auroc", "held-out within-group AUROC (mixed groups of 32)"),
    (
        "steps_to_target",
        "RL steps to reach start target + 0.05 greedy accuracy (Δ over seeds where both reach it; "
        "k/n = seeds that reach it within the run)",
    ),
)
STEPS_MARGIN = 0.05


def steps_to_target(result: dict[str, Any]) -> float:
    """First evaluated step whose held-out greedy accuracy is at least the warm-start target + STEPS_MARGIN
    (NaN when the run never gets there, or has no target)."""
    target = result["settings"].get("start_accuracy")
    if target is None:
        return math.nan
    reached = [e["step"] for e in result["eval_curve"] if e["accuracy"] >= target + STEPS_MARGIN]
    return float(min(reached)) if reached else math.nan


def _metric(result: dict[str, Any], metric: str) -> float:
    return steps_to_target(result) if metric == "steps_to_target" else result["final"].get(metric, math.nan)


def nan_paired_difference(pairs: list[tuple[float, float]]) -> dict[str, Any]:
    """Paired difference a - b over the pairs where both are defined (not NaN): mean, 95% CI, n, and how
    many pairs were left out; mean NaN when none is left."""
    kept = [a - b for a, b in pairs if a == a and b == b]
    if not kept:
        return {"mean": math.nan, "ci95": [math.nan, math.nan], "n": 0, "undefined": len(pairs)}
    mean, low, high = paired_difference(kept)
    return {"mean": mean, "ci95": [low, high], "n": len(kept), "undefined": len(pairs) - len(kept)}


def grid_summary(
    results: list[dict[str, Any]], labels: dict[str, str], baseline: str = "grpo"
) -> dict[str, Any]:
    """Per cell (start target, reward noise), over the seeds every method of the cell finished: the seeds,
    the actual warm start, GRPO's all-equal-reward group
    share, the mean of every metric per variant, and each variant's NaN-aware paired difference from
    ``baseline`` (``labels`` maps a result's variant name to its short label)."""
    cells: dict[tuple[float, float], dict[str, dict[int, dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for result in results:
        key = (result["settings"]["start_accuracy"], result["settings"]["reward_noise"])
        cells[key][labels.get(result["variant"], result["variant"])][result["seed"]] = result
    summary = []
    for (start, noise), every_run in sorted(cells.items()):
        # Only seeds that every method of the cell finished, so all its numbers share one set of seeds.
        complete = set.intersection(*(set(variant_runs) for variant_runs in every_run.values()))
        runs = {label: {s: r for s, r in rs.items() if s in complete} for label, rs in every_run.items()}
        base = runs.get(baseline, {})
        starts = [r["warm_start"]["heldout_accuracy"] for r in base.values()]
        entry: dict[str, Any] = {
            "start_target": start,
            "reward_noise": noise,
            "seeds": sorted(base),
            "start_actual": [min(starts), sum(starts) / len(starts), max(starts)] if starts else None,
            "all_equal_share": {
                label: _mean([1.0 - r["final"]["mixed_group_share"] for r in variant_runs.values()])
                for label, variant_runs in runs.items()
            },
            "entropy_first_last": {
                label: [
                    _mean([_first_steps_entropy(r) for r in variant_runs.values()]),
                    _mean([_metric(r, "entropy_end") for r in variant_runs.values()]),
                ]
                for label, variant_runs in runs.items()
            },  # fmt: skip
            "reached_target": {
                label: sum(not math.isnan(steps_to_target(r)) for r in variant_runs.values())
                for label, variant_runs in runs.items()
            },
            "greedy_by_seed": {  # seed -> [its warm start's, the run's final held-out greedy accuracy]
                label: {
                    s: [r["warm_start"]["heldout_accuracy"], r["final"]["greedy_accuracy"]]
                    for s, r in rs.items()
                }
                for label, rs in runs.items()
            },
            "mean": {},
            "vs_baseline": {},
        }
        for label, variant_runs in runs.items():
            entry["mean"][label] = {
                metric: _mean([_metric(r, metric) for r in variant_runs.values()])
                for metric, _ in GRID_METRICS
            }
            if label == baseline:
                continue
            seeds = sorted(set(variant_runs) & set(base))
            entry["vs_baseline"][label] = {
                metric: nan_paired_difference(
                    [(_metric(variant_runs[s], metric), _metric(base[s], metric)) for s in seeds]
                )
                for metric, _ in GRID_METRICS
            }
        summary.append(entry)
    return {"baseline": baseline, "cells": summary}


def _first_steps_entropy(result: dict[str, Any]) -> float:
    """Mean policy entropy of the first 5 training steps (NaN without a history)."""
    return _mean([e["entropy"] for e in result.get("history", [])[:5] if "entropy" in e])


def _mean(values: list[float]) -> float:
    """Mean of the defined (non-NaN) values; NaN when there are none."""
    kept = [v for v in values if v == v]
    return sum(kept) / len(kept) if kept else math.nan


def format_difference(diff: dict[str, Any], digits: int = 3) -> str:
    """``+0.012 [-0.010, +0.034]``; ``undefined (n=0)`` when no seed pair has the metric; ``n=k`` noted
    when some pairs were left out as undefined."""
    if diff["n"] == 0:
        return "undefined"
    low, high = diff["ci95"]
    interval = "" if low != low else f" [{low:+.{digits}f}, {high:+.{digits}f}]"
    note = f" (n={diff['n']})" if diff["undefined"] else ""
    return f"{diff['mean']:+.{digits}f}{interval}{note}"


def render_grid_markdown(summary: dict[str, Any], variants: list[str]) -> str:
    """One table per metric: a row per cell, GRPO's mean and each variant's paired difference [95% CI]."""
    baseline = summary["baseline"]
    lines = []
    for metric, title in GRID_METRICS:
        digits = 1 if metric == "steps_to_target" else 3
        lines += [f"#### {title}", ""]
        lines.append(
            "| "
            + " | ".join(["start target", "noise", "seeds", baseline, *(f"Δ {v}" for v in variants)])
            + " |"
        )
        lines.append("|---|---|---|---|" + "---|" * len(variants))
        for cell in summary["cells"]:
            base = cell["mean"].get(baseline, {}).get(metric, math.nan)
            entries = [
                "undefined" if base != base else f"{base:.{digits}f}",
                *(
                    format_difference(cell["vs_baseline"][v][metric], digits)
                    if v in cell["vs_baseline"]
                    else "—"
                    for v in variants
                ),
            ]
            if metric == "steps_to_target":
                seeds = len(cell["seeds"])
                reached = [cell["reached_target"].get(v) for v in [baseline, *variants]]
                entries = [
                    e if k is None else f"{e}; {k}/{seeds}" for e, k in zip(entries, reached, strict=True)
                ]
            lines.append(
                f"| {cell['start_target']:g} | {cell['reward_noise']:g} | {len(cell['seeds'])} | "
                + " | ".join(entries)
                + " |"
            )
        lines.append("")
    lines += [f"#### {baseline} per seed: held-out greedy accuracy, warm start -> end of the run", ""]
    lines += ["| start target | noise | seed: warm start -> end |", "|---|---|---|"]
    for cell in summary["cells"]:
        by_seed = sorted(cell["greedy_by_seed"].get(baseline, {}).items())
        lines.append(
            f"| {cell['start_target']:g} | {cell['reward_noise']:g} | "
            + "; ".join(f"{seed}: {a:.3f} -> {b:.3f}" for seed, (a, b) in by_seed)
            + " |"
        )
    lines += ["", "#### cells: actual warm start and all-equal-reward groups", ""]
    lines.append(
        "| start target | noise | seeds | held-out start min / mean / max | "
        + " | ".join(f"all-equal groups {v}" for v in [baseline, *variants])
        + f" | {baseline} entropy first 5 -> last 5 steps |"
    )
    lines.append("|---|---|---|---|" + "---|" * (len(variants) + 2))
    for cell in summary["cells"]:
        start = cell["start_actual"]
        shares = [cell["all_equal_share"].get(v, math.nan) for v in [baseline, *variants]]
        lines.append(
            f"| {cell['start_target']:g} | {cell['reward_noise']:g} | {len(cell['seeds'])} | "
            + ("—" if start is None else " / ".join(f"{x:.3f}" for x in start))
            + " | "
            + " | ".join(_format(x) for x in shares)
            + " | "
            + " -> ".join(_format(x) for x in cell["entropy_first_last"].get(baseline, [math.nan] * 2))
            + " |"
        )
    return "\n".join(lines) + "\n"


def plot_grid_heatmap(summary: dict[str, Any], variants: list[str], metric: str = "greedy_accuracy") -> bytes:
    """PNG: one panel per variant, reward noise across, start target down, colour = mean paired difference
    from the baseline; each square gives the mean, its 95% CI and the seed count (* = CI excludes 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noises = sorted({c["reward_noise"] for c in summary["cells"]})
    starts = sorted({c["start_target"] for c in summary["cells"]})
    diffs = {
        (c["start_target"], c["reward_noise"], v): c["vs_baseline"][v][metric]
        for c in summary["cells"]
        for v in c["vs_baseline"]
    }
    limit = max([abs(d["mean"]) for d in diffs.values() if d["n"]] + [0.01])
    figure, axes = plt.subplots(1, len(variants), figsize=(3.4 * len(variants), 3.2), squeeze=False)
    for axis, variant in zip(axes[0], variants, strict=True):
        grid = [[diffs.get((s, p, variant), {"mean": math.nan})["mean"] for p in noises] for s in starts]
        image = axis.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, origin="lower")
        for row, start in enumerate(starts):
            for column, noise in enumerate(noises):
                diff = diffs.get((start, noise, variant))
                if diff is None or diff["n"] == 0:
                    continue
                low, high = diff["ci95"]
                star = "*" if (low > 0 or high < 0) else ""
                interval = "" if low != low else f"\n[{low:+.3f},\n{high:+.3f}]"
                axis.text(
                    column, row, f"{diff['mean']:+.3f}{star}{interval}\nn={diff['n']}",
                    ha="center", va="center", fontsize=7,
                )  # fmt: skip
        axis.set_xticks(range(len(noises)), [f"{p:g}" for p in noises])
        axis.set_yticks(range(len(starts)), [f"{s:g}" for s in starts])
        axis.set_xlabel("reward noise")
        axis.set_title(f"{variant} - {summary['baseline']}", fontsize=9)
    axes[0, 0].set_ylabel("warm-start target accuracy")
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label=f"Δ {metric}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def write_grid_report(
    folder: Path, results: list[dict[str, Any]], variants: dict[str, Any], name: str = "results-grid"
) -> Path:
    """Write ``{name}.md``, ``{name}.json`` and, when a method is compared with GRPO, the heat map
    ``{name}-accuracy.png`` into ``folder`` (``variants``: short label -> the ``Method`` the label stands
    for; GRPO alone is a headroom probe); return the markdown path."""
    if not results:
        raise ValueError("no finished grid runs to report on.")
    folder.mkdir(parents=True, exist_ok=True)
    labels = {variant.name: label for label, variant in variants.items()}
    compared = [label for label in variants if label != "grpo"]
    summary = grid_summary(results, labels)
    write_atomically(folder / f"{name}.json", json.dumps(summary, indent=1).encode())
    if compared:
        write_atomically(folder / f"{name}-accuracy.png", plot_grid_heatmap(summary, compared))
    path = folder / f"{name}.md"
    write_atomically(path, render_grid_markdown(summary, compared).encode())
    return path
