"""The premise, measured: does a model's own confidence track the correctness of its answers?

    ./.venv/bin/python benchmarks/premise.py --out runs/premise        # resumable; rerun after a kill

For each model, dataset and temperature: G samples per problem (icpo.eval.generation.sample_with_confidence),
graded, then per problem group the within-group AUROC of confidence for correctness (icpo.core.group_auroc;
mixed groups only) with a bootstrap 95% CI over problems, the overconfident-error rate, the shares of
all-wrong / mixed / all-correct groups and the truncated share.

Raising ``--problems`` on a rerun extends the study (the first problems' samples are reused, they do not
depend on the count); every other setting is fixed per folder.

Models: SmolLM2-135M-Instruct on real word problems (the ``icpo eval`` harness and presets, so every
sample is a line of OUT/smollm2/{dataset}-t{T}/samples.jsonl), and the tiny policy on held-out two-digit
additions at its warm start and after GRPO and after ICPO training (``icpo train --config``, recipes
written to OUT/tiny/). Writes OUT/premise.json, OUT/premise.md and OUT/premise.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from icpo.core import group_auroc, group_outcome_shares, overconfident_error_rate
from icpo.runfolder import locked_folder, write_atomically, write_json_atomically

GROUP_SIZE = 8
TEMPERATURES = (0.7, 1.0)
DATASETS = ("mawps", "svamp", "asdiv")
BOOTSTRAP = 2000
MIN_MIXED_FOR_CI = 3  # a bootstrap over one or two mixed problems is no interval
# SmolLM2 prompt styles: folder -> instruction replacing the presets' step-by-step one (None: keep it).
# "brief" is the instruction of icpo.wordproblems, the prompt icpo trains SmolLM2 with.
PROMPTS = {"smollm2": None, "smollm2-brief": "brief"}
TINY_RECIPE = """model: tiny
task: addition
difficulty: 2
num_train: 2000
reward_funcs: [addition_correct]
output_dir: {output_dir}
max_steps: 150
per_device_train_batch_size: 64
num_generations: 8
max_completion_length: 8
learning_rate: 1.0e-4
lr_scheduler_type: constant
beta: 0.0
temperature: 1.0
logging_steps: 1
save_strategy: "no"
report_to: []
use_cpu: true
bf16: false
seed: 0
icpo_alpha: {alpha}
"""


def smollm2() -> tuple[Any, Any]:
    """SmolLM2-135M-Instruct (the ``smollm2-135m-instruct`` model preset) on the CPU, in the fast path's
    dtype (``icpo.static_sampler.preferred_dtype``: bf16 where the CPU computes it in hardware)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icpo.models import resolve_model
    from icpo.static_sampler import preferred_dtype

    folder = resolve_model("smollm2-135m-instruct")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=preferred_dtype("cpu"))
    return model, AutoTokenizer.from_pretrained(folder)


def run_smollm2(out: Path, problems: dict[str, int], max_new_tokens: int) -> None:
    """Every (temperature, dataset) cell through the eval harness; finished cells are skipped by it."""
    from icpo.eval.generation import SamplingSettings, TransformersGenerator
    from icpo.eval.harness import evaluate

    model, tokenizer = smollm2()
    generator = TransformersGenerator(model=model, tokenizer=tokenizer)
    for folder, style in PROMPTS.items():
        for temperature in TEMPERATURES:
            for name in DATASETS:
                evaluate(
                    generator,
                    {name: word_problems(name, problems[folder], style)},
                    out / folder / f"{name}-t{temperature:g}",
                    samples=GROUP_SIZE,
                    settings=SamplingSettings(max_new_tokens, temperature),
                    batch_size=2 * GROUP_SIZE,  # two problems per chunk: the first N problems' samples
                    seed=0,  # do not depend on N (for even N): a rerun with a larger --problems extends
                    # the dtype changes what is sampled: a folder made in another one is not resumed
                    run_config={"model": "smollm2-135m-instruct", "dtype": str(model.dtype)},
                )


def word_problems(name: str, problems: int, style: str | None) -> list:
    """The first ``problems`` of preset ``name``; with style "brief", in the "brief" prompt template (the
    recipes' training prompt: short answers ending with the number), else in the default one."""
    from icpo.eval.benchmarks import DEFAULT_TEMPLATE, load_benchmark

    return load_benchmark(name, limit=problems, template=style or DEFAULT_TEMPLATE)


def train_tiny(out: Path) -> dict[str, Path]:
    """The tiny policy's warm start and its GRPO / ICPO (alpha 0.5, the library defaults) checkpoints,
    both trained from the one warm start (the recipes' warm-up settings are equal, so ``icpo train``
    reuses a copy of the GRPO run's warm-up instead of redoing it)."""
    checkpoints = {}
    for label, alpha in (("grpo", 0.0), ("icpo", 0.5)):
        folder = out / "tiny" / label
        shared_warmup = out / "tiny" / "grpo" / "warmup"
        if label != "grpo" and shared_warmup.exists() and not (folder / "warmup").exists():
            shutil.copytree(shared_warmup, folder / "warmup")
        if not (folder / "model.safetensors").exists():
            recipe = out / "tiny" / f"{label}.yaml"
            recipe.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(recipe, TINY_RECIPE.format(output_dir=folder, alpha=alpha))
            icpo = Path(sys.executable).with_name("icpo")
            with (out / "tiny" / f"{label}.log").open("w") as log:
                subprocess.run(
                    [str(icpo), "train", "--config", str(recipe)], check=True, stdout=log, stderr=log
                )
        checkpoints[label] = folder
    return {"warm start": out / "tiny" / "grpo" / "warmup", **checkpoints}


def run_tiny(out: Path, problems: int) -> None:
    """G samples per held-out addition at each temperature for each tiny checkpoint (one JSON each)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icpo.eval.generation import SamplingSettings, sample_with_confidence
    from icpo.tasks import correctness, train_test_problems

    _, test = train_test_problems("addition", 2000, problems, 0, 2)
    for label, folder in train_tiny(out).items():
        model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
        for temperature in TEMPERATURES:
            path = out / "tiny" / f"samples-{label.replace(' ', '-')}-t{temperature:g}.json"
            if path.exists():
                continue
            prompts = [p.prompt for p in test for _ in range(GROUP_SIZE)]
            generations = sample_with_confidence(
                model, tokenizer, prompts, SamplingSettings(8, temperature), seed=0, add_special_tokens=True
            )
            right = correctness(
                "addition", [p for p in test for _ in range(GROUP_SIZE)], [g.text for g in generations]
            )
            write_json_atomically(
                path,
                [
                    {
                        "problem": i // GROUP_SIZE,
                        "confidence": g.confidence,
                        "correct": c,
                        "finished": g.finished,
                    }
                    for i, (g, c) in enumerate(zip(generations, right, strict=True))
                ],
            )


def statistics(confidence: list[float], correct: list[bool], finished: list[bool]) -> dict[str, Any]:
    """The premise numbers of one cell (rows grouped G at a time by problem). ``*_finished``: the same
    AUROC with truncated samples left out (a non-finite confidence is unscored in icpo.core), which tells
    whether the signal is more than "cut-off answers are wrong and unconfident"."""
    c, ok = torch.tensor(confidence, dtype=torch.float64), torch.tensor(correct)
    auroc, ci, mixed = _auroc_with_interval(group_auroc(c, ok, GROUP_SIZE).numpy())
    finished_only = torch.where(torch.tensor(finished), c, torch.full_like(c, math.nan))
    auroc_finished, ci_finished, _ = _auroc_with_interval(group_auroc(finished_only, ok, GROUP_SIZE).numpy())
    shares = group_outcome_shares(ok, GROUP_SIZE)
    none_if_nan = lambda x: None if x is None or math.isnan(x) else float(x)  # noqa: E731
    return {
        "problems": len(ok) // GROUP_SIZE,
        "accuracy": float(ok.float().mean()),
        "truncated": 1 - sum(finished) / len(finished),
        "mixed_groups": mixed,
        "within_group_auroc": auroc,
        "ci95": ci,
        "within_group_auroc_finished": auroc_finished,
        "ci95_finished": ci_finished,
        "overconfident_error_rate": none_if_nan(overconfident_error_rate(c, ok, GROUP_SIZE)),
        **{f"groups_{k}": none_if_nan(v) for k, v in shares.items()},
    }


def _auroc_with_interval(per_problem: np.ndarray) -> tuple[float | None, list[float] | None, int]:
    """Mean AUROC over mixed problems (None if none), its bootstrap 95% interval over problems (None under
    MIN_MIXED_FOR_CI mixed problems), and the number of mixed problems."""
    mixed = per_problem[~np.isnan(per_problem)]
    if not len(mixed):
        return None, None, 0
    draws = np.random.default_rng(0).integers(0, len(per_problem), size=(BOOTSTRAP, len(per_problem)))
    resampled = per_problem[draws]
    means = np.nanmean(resampled[~np.isnan(resampled).all(axis=1)], axis=1)
    ci = [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
    return float(mixed.mean()), ci if len(mixed) >= MIN_MIXED_FOR_CI else None, int(len(mixed))


def smollm2_cell(folder: str, data: str, temperature: float, records: list[dict[str, Any]]) -> dict[str, Any]:
    confidence = [math.nan if r["confidence"] is None else r["confidence"] for r in records]
    correct, finished = [r["correct"] is True for r in records], [r["finished"] for r in records]
    model = "SmolLM2-135M-Instruct" + (" (brief prompt)" if PROMPTS[folder] else " (step-by-step prompt)")
    return {"model": model, "data": data, "temperature": temperature,
            **statistics(confidence, correct, finished)}  # fmt: skip


def collect(out: Path) -> list[dict[str, Any]]:
    from icpo.eval.harness import SAMPLES_FILE, read_samples

    cells = []
    for temperature in TEMPERATURES:
        for folder in PROMPTS:
            pooled: list[dict[str, Any]] = []
            for name in DATASETS:
                records = read_samples(out / folder / f"{name}-t{temperature:g}" / SAMPLES_FILE)
                records.sort(key=lambda r: (r["problem_id"], r["sample"]))
                if records and len(records) % GROUP_SIZE == 0:
                    pooled += records
                    cells.append(smollm2_cell(folder, name, temperature, records))
            if len({r["benchmark"] for r in pooled}) > 1:
                cells.append(smollm2_cell(folder, "+".join(DATASETS), temperature, pooled))
        for label in ("warm start", "grpo", "icpo"):
            path = out / "tiny" / f"samples-{label.replace(' ', '-')}-t{temperature:g}.json"
            if path.exists():
                rows = json.loads(path.read_text())
                cells.append(
                    {
                        "model": f"tiny ({label})",
                        "data": "addition",
                        "temperature": temperature,
                        **statistics(
                            [r["confidence"] for r in rows],
                            [r["correct"] for r in rows],
                            [r["finished"] for r in rows],
                        ),
                    }
                )
    return cells


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def report(out: Path, cells: list[dict[str, Any]]) -> None:
    """OUT/premise.json, a Markdown table OUT/premise.md and the plot OUT/premise.png."""
    write_json_atomically(out / "premise.json", cells)
    columns = ["model", "data", "temperature", "problems", "accuracy", "truncated", "groups_all_wrong",
               "groups_mixed", "groups_all_correct", "mixed_groups", "within_group_auroc", "ci95",
               "within_group_auroc_finished", "ci95_finished", "overconfident_error_rate"]  # fmt: skip
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for cell in cells:
        values = [cell.get(c) for c in columns]
        for interval in ("ci95", "ci95_finished"):
            ci = cell.get(interval)
            values[columns.index(interval)] = "-" if ci is None else "[{:.2f}, {:.2f}]".format(*ci)
        lines.append("| " + " | ".join(_cell(v) for v in values) + " |")
    write_atomically(out / "premise.md", "\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 0.45 * max(len(cells), 4) + 1.2))
    for row, cell in enumerate(cells):
        if cell["within_group_auroc"] is None:
            axis.text(0.5, row, "no mixed group", ha="center", va="center", fontsize=8, color="grey")
            continue
        auroc, ci = cell["within_group_auroc"], cell["ci95"]
        error = None if ci is None else [[auroc - ci[0]], [ci[1] - auroc]]
        color = "C0" if cell["model"].startswith("SmolLM2") else "C1"
        axis.errorbar(auroc, row, xerr=error, fmt="o" if ci else "x", color=color, capsize=3)
    axis.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    axis.set_yticks(range(len(cells)))
    axis.set_yticklabels(
        [
            f"{c['model'].replace('-135M-Instruct', '').replace(' prompt', '')} {c['data']} "
            f"T={c['temperature']:g} ({c['mixed_groups']} mixed)"
            for c in cells
        ],
        fontsize=8,
    )
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel("within-group AUROC (dot: bootstrap 95% CI over problems; x: under 3 mixed problems)")
    axis.set_title(
        f"Is a right answer more confident than a wrong one to its prompt? (G={GROUP_SIZE})", fontsize=10
    )
    figure.tight_layout()
    figure.savefig(out / "premise.tmp.png", dpi=120)
    plt.close(figure)
    os.replace(out / "premise.tmp.png", out / "premise.png")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/premise"), help="study folder (resumable)")
    parser.add_argument("--problems", type=int, default=4, help="SmolLM2 problems per dataset")
    parser.add_argument(
        "--brief-problems", type=int, default=None, help="SmolLM2 problems per dataset with the brief prompt"
    )
    parser.add_argument("--max-new-tokens", type=int, default=128, help="SmolLM2 completion limit")
    parser.add_argument(
        "--tiny-problems", type=int, default=200, help="held-out additions for the tiny policy"
    )
    parser.add_argument("--report-only", action="store_true", help="only rebuild the report from what exists")
    args = parser.parse_args(argv)
    brief = args.problems if args.brief_problems is None else args.brief_problems
    if (
        min(args.problems, brief) < 2
        or (args.problems | brief) % 2
        or args.max_new_tokens < 1
        or args.tiny_problems < 1
    ):
        parser.error("--problems, --brief-problems: even and >= 2; --max-new-tokens, --tiny-problems: >= 1")
    with locked_folder(args.out):
        started = time.perf_counter()
        if not args.report_only:
            run_tiny(args.out, args.tiny_problems)
            print(f"tiny done after {time.perf_counter() - started:.0f} s", flush=True)
            run_smollm2(args.out, {"smollm2": args.problems, "smollm2-brief": brief}, args.max_new_tokens)
            print(f"SmolLM2 done after {time.perf_counter() - started:.0f} s", flush=True)
        report(args.out, collect(args.out))
    print((args.out / "premise.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
