"""GRPO vs ICPO on SmolLM2-135M-Instruct and real word problems, from the two recipes in recipes/.

    python benchmarks/smollm2_wordproblems.py --seeds 1 --out runs/smollm2-wordproblems

For each seed, trains ``recipes/smollm2_wordproblems_grpo.yaml`` and ``..._icpo.yaml`` (identical but for
``icpo_alpha``) with ``seed`` set, and evaluates the start model (once) and each trained policy on the first
``--held-out`` problems of the recipes' held-out split: greedy accuracy, avg@k at temperature 1, the share of
completions cut at the token limit, and the overconfident-error rate / within-group AUROC of the k samples.
Each run writes ``runs/{variant}-seed{S}/result.json`` atomically when done, so a killed comparison resumes at
the first unfinished run. The report (``icpo.study.report``: table, paired differences, PNG curves) is rewritten
after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECIPES = {
    "grpo": REPO / "recipes" / "smollm2_wordproblems_grpo.yaml",
    "icpo": REPO / "recipes" / "smollm2_wordproblems_icpo.yaml",
}


def evaluate_held_out(
    model_dir: str, rows: list[dict[str, Any]], max_new_tokens: int, k: int
) -> dict[str, float]:
    """Greedy accuracy, avg@k (temperature 1), truncated share, and the confidence metrics of the k samples."""
    import torch

    from icpo.core import overconfident_error_rate, within_group_auroc
    from icpo.eval.generation import SamplingSettings, TransformersGenerator
    from icpo.rewards import grade_many

    generator = TransformersGenerator(model_dir, device="cpu")
    prompts = [
        generator.tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        for row in rows
    ]
    golds = [row["answer"] for row in rows]

    def run(settings: SamplingSettings, repeat: int) -> tuple[list[bool], list[Any]]:
        generations = []
        for start in range(0, len(prompts), 8):
            batch = [p for p in prompts[start : start + 8] for _ in range(repeat)]
            generations += generator.generate(batch, settings, seed=start)
        verdicts = grade_many(
            "number", [g.text for g in generations], [g for g in golds for _ in range(repeat)]
        )
        return [bool(v.correct) for v in verdicts], generations

    greedy, greedy_generations = run(SamplingSettings(max_new_tokens, 0.0, 1.0), 1)
    sampled, generations = run(SamplingSettings(max_new_tokens, 1.0, 1.0), k)
    confidence = torch.tensor([g.confidence for g in generations])
    correct = torch.tensor(sampled)
    truncated = [g.num_tokens >= max_new_tokens for g in greedy_generations + generations]
    return {
        "accuracy": sum(greedy) / len(greedy),
        f"avg@{k}": sum(sampled) / len(sampled),
        "truncated_share": sum(truncated) / len(truncated),
        "overconfident_error_rate": float(overconfident_error_rate(confidence, correct, k)),
        "within_group_auroc": float(within_group_auroc(confidence, correct, k)),
    }


def main() -> None:
    import torch

    from icpo.models import resolve_model
    from icpo.recipe import METRICS_FILE, load_recipe, run_recipe
    from icpo.runfolder import write_json_atomically
    from icpo.study.report import write_report

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1")
    parser.add_argument("--out", default="runs/smollm2-wordproblems")
    parser.add_argument("--held-out", type=int, default=48, help="held-out problems evaluated")
    parser.add_argument("--k", type=int, default=4, help="samples per held-out problem for avg@k")
    parser.add_argument("--max-steps", type=int, default=None, help="override the recipes' max_steps")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out)
    (out / "runs").mkdir(parents=True, exist_ok=True)

    probe = load_recipe(RECIPES["grpo"])
    held_out = probe.held_out[: args.held_out]
    tokens = probe.config.max_completion_length
    start_file = out / "eval-start.json"
    if not start_file.exists():
        began = time.time()
        start = evaluate_held_out(resolve_model(probe.model), held_out, tokens, args.k)
        write_json_atomically(start_file, {**start, "wall_seconds": time.time() - began})
    start = json.loads(start_file.read_text())

    results = []
    for seed in range(args.seeds):
        for variant, recipe_path in RECIPES.items():
            run_dir = out / "runs" / f"{variant}-seed{seed}"
            result_file = run_dir / "result.json"
            if not result_file.exists():
                overrides: dict[str, Any] = {"seed": seed, "output_dir": str(run_dir / "policy")}
                if args.max_steps is not None:
                    overrides["max_steps"] = args.max_steps
                recipe = load_recipe(recipe_path, overrides)
                began = time.time()
                run_recipe(recipe)
                train_seconds = time.time() - began
                final = evaluate_held_out(str(run_dir / "policy"), held_out, tokens, args.k)
                history = [
                    json.loads(line) for line in (run_dir / "policy" / METRICS_FILE).read_text().splitlines()
                ]
                write_json_atomically(
                    result_file,
                    {
                        "variant": variant,
                        "seed": seed,
                        "settings": {
                            "task": "wordproblems (MAWPS+SVAMP+ASDiv)",
                            "difficulty": "-",
                            "steps": recipe.config.max_steps,
                            "prompts_per_step": recipe.config.per_device_train_batch_size
                            // recipe.config.num_generations,
                            "num_generations": recipe.config.num_generations,
                            "reward_noise": recipe.reward_noise,
                            "num_test": len(held_out),
                        },
                        "start": start,
                        "final": final,
                        "history": history,
                        "eval_curve": [
                            {"step": 0, "accuracy": start["accuracy"]},
                            {"step": recipe.config.max_steps, "accuracy": final["accuracy"]},
                        ],
                        "train_seconds": train_seconds,
                        "wall_seconds": time.time() - began,
                    },
                )
            result = json.loads(result_file.read_text())
            for entry in result["history"]:  # an undefined metric is stored as null; the curves want NaN
                entry.update({key: float("nan") for key, value in entry.items() if value is None})
            results.append(result)
            print(f"{variant} seed {seed}: {results[-1]['final']}", flush=True)
            write_report(out, "report", results, baseline="grpo")


if __name__ == "__main__":
    main()
