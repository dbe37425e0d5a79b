"""docs/claims.json and the claim table of docs/results.md, from the studies' own result files.

Sources (each read, none re-run):

- each tiny grid given with ``--grid`` (``benchmarks/study_grid.py``'s ``docs/{name}.json``): per cell,
  GRPO's mean, the warm start's mean held-out greedy accuracy, and each variant's paired difference with its
  95% interval (the testbed is named after the file: ``tiny, results-grid-headroom``);
- every real-LM study folder given with ``--real-lm`` (``icpo compare --model ...``): its ``claims.json``.

Every record goes through ``icpo.study.claims.verdict``, so a cell where GRPO gains less than 0.05 in
held-out greedy accuracy reads "untestable here".

    .venv/bin/python benchmarks/claims_table.py --grid docs/results-grid-headroom.json \
        docs/results-grid-offpolicy.json docs/results-grid.json --real-lm docs/results-smollm2-*
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from icpo.runfolder import write_atomically, write_json_atomically
from icpo.study.claims import CLAIMS, HEADLINE, render_claim_blocks, verdict

DOCS = Path(__file__).resolve().parents[1] / "docs"
# The grid's variant names -> the study's method names (the grid predates the methods registry).
GRID_METHODS = {
    "advantage": "icpo",
    "reward": "icpo-reward",
    "linear": "icpo-linear",
    "fallback": "icpo-fallback",
}
GRID_METRICS = {"avg_at_32": "avg_at_16", "pass_at_32": "pass_at_16"}  # the grid samples 32 per prompt


def grid_records(grid: dict, testbed: str) -> list[dict]:
    records = []
    for cell in grid["cells"]:
        grpo = cell["mean"][grid["baseline"]]
        start = cell["start_actual"][1]  # mean over seeds of the warm start's held-out greedy accuracy
        gain = grpo[HEADLINE] - start
        name = f"start {cell['start_target']:g}, noise {cell['reward_noise']:g}"
        for variant, metrics in cell["vs_baseline"].items():
            for metric, difference in metrics.items():
                claim_metric = GRID_METRICS.get(metric, metric)
                if claim_metric not in CLAIMS:
                    continue
                claim, better = CLAIMS[claim_metric]
                low, high = difference["ci95"]
                records.append(
                    {
                        "testbed": testbed,
                        "cell": name,
                        "method": GRID_METHODS.get(variant, variant),
                        "metric": metric,
                        "claim": claim,
                        "better": better,
                        "n_seeds": difference["n"],
                        "grpo_start": start if metric == HEADLINE else math.nan,
                        "grpo_end": grpo.get(metric, math.nan),
                        "grpo_gain": gain,
                        "delta": difference["mean"],
                        "ci_low": low,
                        "ci_high": high,
                        "verdict": verdict(gain, difference["n"], low, high, better),
                    }
                )
    return records


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--grid", type=Path, nargs="*", default=[DOCS / "results-grid.json"], help="grid reports"
    )
    parser.add_argument("--real-lm", type=Path, nargs="*", default=[], help="real-LM study folders")
    parser.add_argument("--json", type=Path, default=DOCS / "claims.json")
    parser.add_argument("--markdown", type=Path, default=DOCS / "claims.md")
    args = parser.parse_args()
    records = [r for folder in args.real_lm for r in json.loads((folder / "claims.json").read_text())]
    for grid in args.grid:
        records += grid_records(json.loads(grid.read_text()), f"tiny, {grid.stem}")
    write_json_atomically(args.json, records)
    write_atomically(args.markdown, render_claim_blocks(records))
    print(f"{len(records)} records -> {args.json}, {args.markdown}")


if __name__ == "__main__":
    main()
