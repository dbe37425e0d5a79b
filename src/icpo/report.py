"""The study report: curves averaged across seeds, a summary table, paired differences, CSV and JSON.

Input: the run results written by ``icpo.experiment.run_rl`` (one dict per (variant, seed)). Output, in
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
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

CURVES = (
    ("accuracy", "held-out greedy accuracy", "eval_curve"),
    ("entropy", "policy entropy (nats/token)", "history"),
    ("icpo/overconfident_error_rate", "overconfident-error rate (train)", "history"),
    ("reward", "mean reward (train)", "history"),
)


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


def _write_atomically(path: Path, data: bytes) -> None:
    staging = path.with_name(path.name + ".tmp")
    staging.write_bytes(data)
    os.replace(staging, path)


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


def plot_curves(results: list[dict[str, Any]], out: Path, name: str, baseline: str) -> list[Path]:
    """One PNG per curve in ``CURVES``: left, one line per variant (mean across seeds); right, with
    several seeds, each variant minus the baseline, paired by seed, with its 95% CI band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = _by_variant(results)
    paired = len(grouped.get(baseline, {})) > 1 and len(grouped) > 1
    paths = []
    for metric, label, source in CURVES:
        figure, axes = plt.subplots(1, 2 if paired else 1, figsize=(11 if paired else 6, 3.6), squeeze=False)
        for index, (variant, runs) in enumerate(grouped.items()):
            steps, mean = mean_curve(list(runs.values()), metric, source)
            axes[0, 0].plot(steps, mean, color=f"C{index}", label=f"{variant} (n={len(runs)})")
            if paired and variant != baseline:
                steps, diff, low, high = paired_curve(runs, grouped[baseline], metric, source)
                axes[0, 1].plot(steps, diff, color=f"C{index}", label=variant)
                axes[0, 1].fill_between(steps, low, high, color=f"C{index}", alpha=0.2)
        axes[0, 0].set_ylabel(label)
        axes[0, 0].set_title("mean over seeds", fontsize=9)
        if paired:
            axes[0, 1].axhline(0.0, color="black", linewidth=0.8)
            axes[0, 1].set_ylabel("difference")
            axes[0, 1].set_title(f"minus {baseline}, paired by seed (95% CI)", fontsize=9)
        for axis in axes[0]:
            axis.set_xlabel("RL step")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110)
        plt.close(figure)
        path = out / f"{name}-{metric.split('/')[-1]}.png"
        _write_atomically(path, buffer.getvalue())
        paths.append(path)
    return paths


def _format(value: float) -> str:
    return "n/a" if value != value else f"{value:.3f}"


def render_markdown(summary: dict[str, Any], results: list[dict[str, Any]], plots: list[Path]) -> str:
    settings = results[0]["settings"]
    metrics = summary["metrics"]
    lines = [
        "# GRPO vs ICPO",
        "",
        f"Task `{settings['task']}` (difficulty {settings['difficulty']}), {settings['steps']} RL steps, "
        f"{settings['prompts_per_step']} prompts x {settings['num_generations']} samples per step, "
        f"reward noise {settings['reward_noise']:g}, held-out set of {settings['num_test']} prompts.",
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
    lines += [
        "",
        "## Curves (left: mean across seeds; right: paired difference from the baseline, 95% CI)",
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


def write_report(out: Path, name: str, results: list[dict[str, Any]], baseline: str) -> Path:
    """Write the markdown report, plots, CSV and JSON for ``results``; return the markdown path."""
    if not results:
        raise ValueError("no run results to report on.")
    summary = summarise(results, baseline)
    plots = plot_curves(results, out, name, baseline)
    _write_atomically(out / f"{name}.csv", write_csv(results))
    _write_atomically(out / f"{name}.json", json.dumps(summary, indent=1).encode())
    report = out / f"{name}.md"
    _write_atomically(report, render_markdown(summary, results, plots).encode())
    return report
