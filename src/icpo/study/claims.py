"""The claim map: each claim of the ICPO paper, the cell that tests it, GRPO's own change, each method's
paired difference from GRPO with its 95% interval, and a verdict.

A record (one per testbed, cell, method and metric; ``docs/claims.json``)::

    testbed, cell, method, metric, claim, better ("higher"/"lower"), n_seeds,
    grpo_start, grpo_end, grpo_gain, delta, ci_low, ci_high, verdict

Verdicts, in this order:

- ``untestable here``: GRPO's own gain in held-out greedy accuracy in the cell is below ``HEADROOM``
  (0.05): a method that claims to make RL learn better cannot be judged where RL does not learn;
- ``inconclusive``: fewer than ``MIN_SEEDS`` (3) seeds, or an interval that includes 0. With two seeds a
  quantised metric (greedy accuracy moves in steps of 1/64 on 64 problems) often gives two equal
  differences and so a zero-width interval that would exclude 0 by construction;
- ``supported`` / ``contradicted``: the interval excludes 0 in the claimed direction / the other one.

For the peer methods (``unlikeliness``, ``clip-higher``) the same rule reads as better / worse than GRPO;
the record's ``claim`` then names what that method is known for.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from icpo.study.report import paired_difference, plot_curves

HEADROOM = 0.05
MIN_SEEDS = 3  # see the module docstring: two seeds can give a zero-width interval
HEADLINE = "greedy_accuracy"

# metric -> (the claim it tests, which direction is better)
CLAIMS: dict[str, tuple[str, str]] = {
    "greedy_accuracy": ("steadily boosts reasoning (held-out greedy accuracy)", "higher"),
    "avg_at_16": ("steadily boosts reasoning (held-out sampled accuracy, avg@16)", "higher"),
    "pass_at_16": ("less overfitting to one strategy (pass@16)", "higher"),
    "heldout_overconfident_error_rate": ("fewer overconfident errors", "lower"),
    "heldout_within_group_auroc": ("confidence ranks right above wrong (within-group AUROC)", "higher"),
    "entropy_end": ("no entropy collapse (policy entropy at the end of the run)", "higher"),
}


def _mean(values: list[float]) -> float:
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if finite else math.nan


def verdict(grpo_gain: float, n_seeds: int, ci_low: float, ci_high: float, better: str) -> str:
    """The verdict of one record (see the module docstring)."""
    if not grpo_gain >= HEADROOM:
        return "untestable here"
    if n_seeds < MIN_SEEDS or not (ci_low == ci_low and ci_high == ci_high):
        return "inconclusive"
    if ci_low <= 0 <= ci_high:
        return "inconclusive"
    return "supported" if (ci_low > 0) == (better == "higher") else "contradicted"


def _start_of_training(grpo: dict[int, dict[str, float]], seeds: list[int], metric: str) -> float:
    """A training metric's value at the start, which the start policy's evaluation cannot give: GRPO's mean
    over its first steps (``entropy_start`` for ``entropy_end``); NaN for other metrics."""
    if metric != "entropy_end":
        return math.nan
    return _mean([grpo[s].get("entropy_start", math.nan) for s in seeds])


def claim_records(
    testbed: str, cell: str, start: dict[str, float], results: list[dict[str, Any]], baseline: str = "grpo"
) -> list[dict[str, Any]]:
    """The records of one cell: ``start`` the start policy's final-style metrics, ``results`` the runs'
    result.json contents (``variant``, ``seed``, ``final``), paired with ``baseline`` by seed."""
    by_method: dict[str, dict[int, dict[str, float]]] = {}
    for result in results:
        by_method.setdefault(result["variant"], {})[result["seed"]] = result["final"]
    grpo = by_method.get(baseline, {})
    grpo_gain = _mean([run[HEADLINE] for run in grpo.values()]) - start.get(HEADLINE, math.nan)
    records = []
    for method, runs in by_method.items():
        if method == baseline:
            continue
        seeds = sorted(set(runs) & set(grpo))
        for metric, (claim, better) in CLAIMS.items():
            pairs = [(runs[s].get(metric, math.nan), grpo[s].get(metric, math.nan)) for s in seeds]
            differences = [a - b for a, b in pairs if a == a and b == b]
            delta, low, high = paired_difference(differences) if differences else (math.nan,) * 3
            records.append(
                {
                    "testbed": testbed,
                    "cell": cell,
                    "method": method,
                    "metric": metric,
                    "claim": claim,
                    "better": better,
                    "n_seeds": len(differences),
                    "grpo_start": start.get(metric, _start_of_training(grpo, seeds, metric)),
                    "grpo_end": _mean([grpo[s].get(metric, math.nan) for s in seeds]),
                    "grpo_gain": grpo_gain,
                    "delta": delta,
                    "ci_low": low,
                    "ci_high": high,
                    "verdict": verdict(grpo_gain, len(differences), low, high, better),
                }
            )
    return records


def _number(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:+.{digits}f}" if value < 0 else f"{value:.{digits}f}"


def _difference(record: dict[str, Any]) -> str:
    """A record's method - GRPO difference with its 95% interval, or the seed count where there is none."""
    if record["ci_low"] != record["ci_low"]:
        return f"{_number(record['delta'])} (no interval: n = {record['n_seeds']})"
    return f"{_number(record['delta'])} [{_number(record['ci_low'])}, {_number(record['ci_high'])}]"


def render_claims(records: list[dict[str, Any]]) -> str:
    """A markdown table of ``records``, one row per (cell, method, metric)."""
    lines = [
        "| testbed / cell | method | claim (metric, better) | seeds | GRPO start -> end | method - GRPO [95% CI] "
        "| verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['testbed']} / {r['cell']} | {r['method']} | {r['claim']} ({r['metric']}, {r['better']}) "
            f"| {r['n_seeds']} | {_number(r['grpo_start'])} -> {_number(r['grpo_end'])} | {_difference(r)} "
            f"| {r['verdict']} |"
        )
    return "\n".join(lines) + "\n"


def render_claim_blocks(records: list[dict[str, Any]]) -> str:
    """Markdown, one block per (testbed, cell): GRPO's own change in held-out greedy accuracy, then a table
    with a row per claim metric and a column per method: its difference from GRPO [95% CI] and verdict."""
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        cells.setdefault((record["testbed"], record["cell"]), []).append(record)
    blocks = []
    for (testbed, cell), rows in cells.items():
        methods = list(dict.fromkeys(r["method"] for r in rows))
        headline = next((r for r in rows if r["metric"] == HEADLINE), rows[0])
        seeds = max(r["n_seeds"] for r in rows)
        lines = [
            f"**{testbed} / {cell}** ({seeds} seed{'' if seeds == 1 else 's'}): GRPO's own change in held-out greedy accuracy "
            f"{_number(headline['grpo_gain'])} ({'headroom' if headline['grpo_gain'] >= HEADROOM else 'no headroom'})",
            "",
            "| claim (metric, better) | GRPO start -> end | " + " | ".join(methods) + " |",
            "|---|---|" + "---|" * len(methods),
        ]
        for metric in dict.fromkeys(r["metric"] for r in rows):
            by_method = {r["method"]: r for r in rows if r["metric"] == metric}
            first = next(iter(by_method.values()))
            entries = [
                f"{_difference(by_method[m])} {by_method[m]['verdict']}" if m in by_method else "-"
                for m in methods
            ]
            lines.append(
                f"| {first['claim']} ({metric}, {first['better']}) | {_number(first['grpo_start'])} -> "
                f"{_number(first['grpo_end'])} | " + " | ".join(entries) + " |"
            )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render_finals(start: dict[str, float], results: list[dict[str, Any]]) -> str:
    """A markdown table: the start policy and each method's mean over seeds of every claim metric."""
    methods: dict[str, list[dict[str, float]]] = {}
    for result in results:
        methods.setdefault(result["variant"], []).append(result["final"])
    metrics = [m for m in CLAIMS if any(m in r["final"] for r in results)]
    lines = [
        "| policy | seeds | " + " | ".join(metrics) + " | wall (min) |",
        "|---|---|" + "---|" * (len(metrics) + 1),
        "| start | - | " + " | ".join(_number(start.get(m, math.nan)) for m in metrics) + " | - |",
    ]
    for method, finals in methods.items():
        wall = sum(r["wall_seconds"] for r in results if r["variant"] == method) / 60
        row = " | ".join(_number(_mean([f.get(m, math.nan) for f in finals])) for m in metrics)
        lines.append(f"| {method} | {len(finals)} | {row} | {wall:.0f} |")
    return "\n".join(lines) + "\n"


def write_real_lm_report(out: Path, results: list[dict[str, Any]]) -> Path:
    """``out/claims.json`` and ``out/report.md`` of a real-LM study folder (``icpo.study.real_lm``)."""
    from icpo.runfolder import write_atomically, write_json_atomically

    start = json.loads((out / "start.json").read_text())
    # The runs' own settings: start.json is reused across training settings (icpo.study.real_lm.START_FIELDS).
    settings = results[0]["settings"] if results else start["settings"]
    passes = settings.get("num_iterations", 1)
    cell = settings["regime"] + (f", {passes} optimiser passes per batch" if passes > 1 else "")
    records = claim_records(settings["model"], cell, start["final"], results)
    write_json_atomically(out / "claims.json", records)
    plots = plot_curves(results, out, "curves", baseline="grpo")
    grpo = [r for r in results if r["variant"] == "grpo"]
    gain = _mean([r["final"][HEADLINE] for r in grpo]) - start["final"][HEADLINE]
    text = (
        f"# {settings['model']} on {settings['regime']}: GRPO against ICPO and its peers\n\n"
        f"{settings['steps']} steps of {settings['prompts_per_step']} prompts x {settings['num_generations']} "
        f"samples; held-out: {settings['num_test']} problems never trained on, in the training prompt. "
        f"Start policy greedy accuracy {start['final'][HEADLINE]:.3f}; GRPO's own change {gain:+.3f} "
        f"({'no headroom: verdicts untestable here' if not gain >= HEADROOM else 'headroom'}). "
        f"Runs: {len(results)}, wall {sum(r['wall_seconds'] for r in results) / 60:.0f} min.\n\n"
        "Held-out metrics, mean over seeds (entropy: nats per token over the last 10 steps):\n\n"
        + render_finals(start["final"], results)
        + "\nDifferences are method - GRPO, paired by seed; the interval is a 95% t interval over seeds.\n\n"
        + render_claims(records)
        + "\nCurves (mean over seeds; right: each method minus GRPO, paired by seed):\n\n"
        + "".join(f"![{path.stem}]({path.name})\n" for path in plots)
    )
    write_atomically(out / "report.md", text)
    return out / "report.md"
