"""Batched against one-at-a-time generation on the tiny local policy (transformers, CPU, greedy):
the same prompts, the same settings, median wall time of several runs and the speed-up.

    .venv/bin/python benchmarks/bench_generation.py --prompts 32 --max-new-tokens 32 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from icpo.eval.generation import SamplingSettings, TransformersGenerator
from icpo.tiny import build_tiny_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as folder:
        generator = TransformersGenerator(build_tiny_policy(folder), device="cpu")
    prompts = [f"Problem {i}: what is {i} times {i + 7}? Think step by step." for i in range(args.prompts)]
    settings = SamplingSettings(max_new_tokens=args.max_new_tokens, temperature=0.0)

    batched, single = [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        generator.generate(prompts, settings, seed=0)
        batched.append(time.perf_counter() - started)
        started = time.perf_counter()
        for prompt in prompts:
            generator.generate([prompt], settings, seed=0)
        single.append(time.perf_counter() - started)
    b, s = statistics.median(batched), statistics.median(single)
    print(f"{args.prompts} prompts x {args.max_new_tokens} new tokens, {args.threads} CPU thread(s)")
    print(f"batched (one call)   median {b:.2f} s")
    print(f"one at a time        median {s:.2f} s")
    print(f"speed-up {s / b:.1f}x")


if __name__ == "__main__":
    main()
