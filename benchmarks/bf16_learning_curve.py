"""Does bf16 change what GRPO learns? The same GRPO run on SmolLM2 from the same seed in bf16 and in float32.

    .venv/bin/python benchmarks/bf16_learning_curve.py --out runs/bf16-curve --steps 30

Two real-LM study runs (``icpo.study.real_lm``, method ``grpo``, seed 0) that differ only in
``RealLMSettings.precision``: "auto" (bf16 training and sampling on a CPU with bf16 arithmetic) and
"float32". Each has its own start evaluation (start.json, in its own precision). Writes OUT/bf16-curve.json
(per step: reward and entropy of both; held-out greedy accuracy at every evaluation; the final held-out
metrics and wall times) and OUT/bf16-curve.png. Resumable: a finished run is read back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from icpo.runfolder import locked_folder, write_json_atomically
from icpo.static_sampler import cpu_info
from icpo.study.methods import METHODS
from icpo.study.real_lm import RealLMSettings, run_real_lm_study


def curves(result: dict) -> dict:
    steps = result["history"]
    return {
        "step": [e["step"] for e in steps],
        "reward": [e.get("reward") for e in steps],
        "entropy": [e.get("entropy") for e in steps],
        "step_time": [e.get("step_time") for e in steps],
        "heldout_greedy": result["eval_curve"],
        "final": result["final"],
        "train_seconds": result["train_seconds"],
    }


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for precision, run in summary["runs"].items():
        style = {"linestyle": "--" if precision == "float32" else "-", "label": precision}
        axes[0].plot(run["step"], run["reward"], **style)
        axes[1].plot(run["step"], run["entropy"], **style)
        curve = [{"step": 0, "accuracy": run["start"]["greedy_accuracy"]}, *run["heldout_greedy"]]
        axes[2].plot([c["step"] for c in curve], [c["accuracy"] for c in curve], marker="o", **style)
    for axis, title in zip(
        axes,
        ("training reward (mean of the batch)", "policy entropy", "held-out greedy (step 0: the start)"),
        strict=True,
    ):
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("step")
        axis.legend(fontsize=8)
    figure.suptitle(f"GRPO on SmolLM2, {summary['regime']}, seed 0: bf16 against float32 ({summary['cpu']})")
    figure.tight_layout()
    figure.savefig(path.with_suffix(".tmp.png"), dpi=110)
    plt.close(figure)
    os.replace(path.with_suffix(".tmp.png"), path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bf16-curve"))
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--regime", default="single-digit")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--num-test", type=int, default=64)
    parser.add_argument("--avg-k", type=int, default=4, help="samples per held-out problem at the end")
    parser.add_argument("--trainable-layers", type=int, default=RealLMSettings.trainable_layers)
    args = parser.parse_args(argv)
    for name in ("steps", "eval_every", "num_test", "avg_k", "trainable_layers"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    base = RealLMSettings(
        model=args.model,
        regime=args.regime,
        steps=args.steps,
        eval_every=args.eval_every,
        num_test=args.num_test,
        avg_k=args.avg_k,
        trainable_layers=args.trainable_layers,
    )
    import torch

    if base.dtype() != torch.bfloat16:
        parser.exit(2, "this CPU has no bf16 arithmetic: every run here is float32, nothing to compare.\n")
    summary = {"cpu": cpu_info("model name"), "regime": args.regime, "runs": {}}
    with locked_folder(args.out):
        for precision in ("auto", "float32"):
            settings = replace(base, precision=precision)
            (result,) = run_real_lm_study(args.out / precision, settings, [METHODS["grpo"]], [0])
            start = json.loads((args.out / precision / "start.json").read_text())["final"]
            summary["runs"]["bf16" if precision == "auto" else "float32"] = curves(result) | {"start": start}
        write_json_atomically(args.out / "bf16-curve.json", summary)
        plot(summary, args.out / "bf16-curve.png")
    print(json.dumps({name: run["final"] for name, run in summary["runs"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
