"""Evaluation throughput: generated tokens per second of ``icpo eval``'s generator (batched sampling that
also returns each completion's confidence: ``icpo.static_sampler``, bf16 where the CPU has bf16 arithmetic), against a
bare float32 ``model.generate`` on the same prompts and settings (what ``icpo eval`` ran before the fast
path, less its confidences), interleaved in one process.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_eval_throughput.py --model smollm2-135m-instruct \\
        --prompts 16 --max-new-tokens 64 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from icpo.eval.generation import SamplingSettings, TransformersGenerator, completion_mask, eos_token_ids
from icpo.models import resolve_model
from icpo.tiny import build_tiny_policy

PROMPT = "Question: what is {a} plus {b}? Think step by step, then give the answer.\nAnswer:"


def bare_generate(
    generator: TransformersGenerator, prompts: list[str], settings: SamplingSettings, seed: int
):
    """``generator.model.generate`` with the same settings, no confidences; the number of tokens generated
    up to each row's first EOS."""
    model, tokenizer = generator.model, generator.tokenizer
    padding_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    tokenizer.padding_side = padding_side
    torch.manual_seed(seed)
    with torch.no_grad():
        output = model.generate(
            **encoded,
            max_new_tokens=settings.max_new_tokens,
            do_sample=True,
            temperature=settings.temperature,
            top_p=settings.top_p,
            top_k=0,
            pad_token_id=tokenizer.pad_token_id,
        )
    tokens = output[:, encoded["input_ids"].shape[1] :]
    return int(completion_mask(tokens, eos_token_ids(model, tokenizer)).sum())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["tiny", "smollm2-135m-instruct"], default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    if args.model == "tiny":
        model_dir = build_tiny_policy(Path(tempfile.mkdtemp(prefix="bench-policy-")))
    else:
        model_dir = resolve_model(args.model)  # the icpo.models preset (cached folder)
    generator = TransformersGenerator(model_dir, device="cpu")
    baseline = TransformersGenerator(model_dir, device="cpu", dtype=torch.float32)
    prompts = [PROMPT.format(a=17 * i + 3, b=29 * i + 11) for i in range(args.prompts)]
    settings = SamplingSettings(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=1.0)
    print(
        f"{args.model} on cpu, {torch.get_num_threads()} threads, {args.prompts} prompts x {args.max_new_tokens} new tokens"
    )

    rates: dict[str, list[float]] = {"with confidences (icpo eval)": [], "bare fp32 generate": []}
    for repeat in range(args.repeats):
        order = list(rates) if repeat % 2 == 0 else list(reversed(rates))
        for name in order:
            started = time.perf_counter()
            if name == "bare fp32 generate":
                tokens = bare_generate(baseline, prompts, settings, seed=repeat)
            else:
                tokens = sum(g.num_tokens for g in generator.generate(prompts, settings, seed=repeat))
            seconds = time.perf_counter() - started
            rates[name].append(tokens / seconds)
            print(
                f"repeat {repeat + 1}: {name}: {tokens} tokens in {seconds:.2f} s = {tokens / seconds:.1f} tokens/s",
                flush=True,
            )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in medians.items():
        print(f"{name}: median {value:.1f} generated tokens/s over {args.repeats} runs")
    ratio = medians["with confidences (icpo eval)"] / medians["bare fp32 generate"]
    print(f"throughput ratio with/without confidences: {ratio:.3f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rates": rates}, indent=2)
        )


if __name__ == "__main__":
    main()
