"""Peak memory of ``icpo eval``'s sampler against the bare ``model.generate`` call it wraps.

Each measurement runs in a fresh Python process (peak resident memory only grows within a process): load the
model, sample ``--prompts`` completions of up to ``--max-new-tokens`` tokens, report the process's peak RSS
and how many tokens were generated. The bare call is the baseline measured in the same run; the difference
is what the confidences cost in memory.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_eval_memory.py --model smollm2-135m-instruct \\
        --prompts 16 --max-new-tokens 256 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

from icpo.runfolder import write_json_atomically

PROMPT = "Write a long story about a {a}-year-old sailor and the number {b}. Do not stop early."
VARIANTS = ("with confidences (icpo eval)", "bare generate")


def measure(variant: str, model: str, prompts: int, max_new_tokens: int, seed: int) -> dict[str, float]:
    """In this process: one batched sampling call of ``variant``; peak RSS (MiB) and tokens generated (up to
    each row's first EOS). The bare call is bench_eval_throughput's: the same tokens, no confidences."""
    import torch
    from bench_eval_throughput import bare_generate
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icpo.eval.generation import SamplingSettings, TransformersGenerator
    from icpo.models import resolve_model

    torch.set_num_threads(1)
    folder = resolve_model(model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    policy = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    generator = TransformersGenerator(model=policy, tokenizer=tokenizer)
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": PROMPT.format(a=20 + i, b=7 * i)}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for i in range(prompts)
    ]
    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=1.0)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if variant == VARIANTS[0]:
        tokens = sum(g.num_tokens for g in generator.generate(texts, settings, seed))
    else:
        tokens = bare_generate(generator, texts, settings, seed)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_mib": peak, "after_load_mib": loaded, "tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a preset or model folder")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.model, args.prompts, args.max_new_tokens, args.seed)))
        return

    runs: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for repeat in range(args.repeats):
        for name in VARIANTS if repeat % 2 == 0 else reversed(VARIANTS):
            command = [
                sys.executable, __file__, "--child", name, "--seed", str(repeat), "--model", args.model,
                "--prompts", str(args.prompts), "--max-new-tokens", str(args.max_new_tokens),
            ]  # fmt: skip
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            runs[name].append(result)
            print(
                f"repeat {repeat + 1}: {name}: peak {result['peak_mib']:.0f} MiB "
                f"({result['peak_mib'] - result['after_load_mib']:+.0f} MiB over the loaded model), "
                f"{result['tokens']} tokens",
                flush=True,
            )
    growth = {n: statistics.median(r["peak_mib"] - r["after_load_mib"] for r in runs[n]) for n in VARIANTS}
    for name in VARIANTS:
        print(f"{name}: median peak {statistics.median(r['peak_mib'] for r in runs[name]):.0f} MiB, "
              f"median growth while sampling {growth[name]:.0f} MiB")  # fmt: skip
    print(f"confidences cost {growth[VARIANTS[0]] - growth[VARIANTS[1]]:+.0f} MiB (median growth difference)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(args.json, {"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs})


if __name__ == "__main__":
    main()
