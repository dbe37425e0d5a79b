"""Generation speed: ``transformers``' ``generate`` against ``icpo.static_sampler`` (static KV cache,
inverse-CDF sampling, free log-probs), each with float32 weights and with bf16 weights, on the same
left-padded chat prompts, interleaved round by round in one process (the order alternating).

Every row is made to run the full ``--max-new-tokens`` (no EOS) so that each variant does the same work;
the figure is the median wall time of ``--repeats`` rounds, with the arithmetic limit of the decode
(2 * non-embedding parameters * tokens + the output head, at the bf16 matmul rate measured in the same run).

    .venv/bin/python benchmarks/bench_generation.py --model smollm2-135m-instruct --rows 32 \\
        --max-new-tokens 48 --repeats 5 --json runs/bench/generation.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from icpo.models import resolve_model
from icpo.static_sampler import StaticCacheSampler, cpu_has_bf16_arithmetic, cpu_info, left_pad

QUESTION = "What is {a} + {b}? Answer briefly and end with the final number."


def matmul_rate(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """Median FLOP/s of a size^3 matmul in ``dtype``."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times)


def prompts(tokenizer, rows: int, distinct: int = 4) -> list[list[int]]:
    chats = [
        [{"role": "user", "content": QUESTION.format(a=3 + 7 * i, b=11 + 5 * i)}] for i in range(distinct)
    ]
    encoded = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True) for c in chats]
    encoded = [list(e["input_ids"]) if hasattr(e, "keys") else list(e) for e in encoded]
    return [encoded[row % distinct] for row in range(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a preset or a model folder")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    folder = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    model_bf16 = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    input_ids, attention_mask = left_pad(prompts(tokenizer, args.rows), pad)
    never = [-1]  # no EOS: every variant generates the full length

    def hf_generate(m):
        m.generate(
            input_ids=input_ids,
            attention_mask=attention_mask,
            max_new_tokens=args.max_new_tokens,
            min_new_tokens=args.max_new_tokens,
            do_sample=True,
            temperature=args.temperature,
            top_k=0,
            top_p=1.0,
            pad_token_id=pad,
        )

    def static(sampler):
        sampler.sample(
            input_ids,
            attention_mask,
            max_new_tokens=args.max_new_tokens,
            eos_token_ids=never,
            pad_token_id=pad,
            temperature=args.temperature,
        )

    sampler_fp32, sampler_bf16 = StaticCacheSampler(model), StaticCacheSampler(model, torch.bfloat16)
    variants = {
        "generate fp32": lambda: hf_generate(model),
        "generate bf16": lambda: hf_generate(model_bf16),
        "static sampler fp32": lambda: static(sampler_fp32),
        "static sampler bf16 copy": lambda: static(sampler_bf16),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.no_grad():
        for run in variants.values():  # warm-up: first-call allocation, the bf16 copy
            run()
        for repeat in range(args.repeats):
            for name in list(variants) if repeat % 2 == 0 else list(reversed(variants)):
                torch.manual_seed(repeat)
                started = time.perf_counter()
                variants[name]()
                times[name].append(time.perf_counter() - started)
                print(f"round {repeat + 1}: {name}: {times[name][-1]:.2f} s", flush=True)

    non_embedding = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    head = model.config.vocab_size * model.config.hidden_size
    flops = 2 * args.rows * args.max_new_tokens * (non_embedding + head)
    rate = matmul_rate(torch.bfloat16)
    medians = {name: statistics.median(values) for name, values in times.items()}
    summary = {
        "cpu": cpu_info("model name") or "cpu",
        "bf16_arithmetic": cpu_has_bf16_arithmetic(),
        "threads": torch.get_num_threads(),
        "rows": args.rows,
        "max_new_tokens": args.max_new_tokens,
        "median_seconds": medians,
        "tokens_per_second": {name: args.rows * args.max_new_tokens / s for name, s in medians.items()},
        "decode_flop": flops,
        "bf16_matmul_flops_per_second": rate,
        "arithmetic_limit_seconds": flops / rate,
        "times": times,
    }
    print(f"{summary['cpu']} (bf16 arithmetic: {summary['bf16_arithmetic']}), {summary['threads']} threads")
    for name, seconds in medians.items():
        print(f"{name:26s} median {seconds:.2f} s  ({summary['tokens_per_second'][name]:.0f} tokens/s)")
    print(f"arithmetic limit at the bf16 matmul rate ({rate / 1e9:.0f} GFLOP/s): {flops / rate:.2f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
