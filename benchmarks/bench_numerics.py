"""Does bf16 change what ICPO sees? The same completions scored in float32 and in bf16.

Completions are sampled once (float32, T 0.7) on the chat-arithmetic prompts of the study; each one's
confidence (mean token log-prob, ``icpo.core.sequence_confidence``) is then computed by a float32 forward
pass and by a bf16 forward pass. Reported: the mean absolute confidence difference, how often two
completions of one prompt swap order (the within-group ranking ICPO's preference is built from), and, as a
check of the sampler, the gap between the log-probs it recorded while sampling and the float32 pass.

    .venv/bin/python benchmarks/bench_numerics.py --prompts 16 --group-size 8 --json docs/bench/numerics.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from icpo.core import sequence_confidence
from icpo.models import resolve_model
from icpo.static_sampler import StaticCacheSampler, left_pad
from icpo.study.chat_tasks import chat, split


def confidences(model, rows: list[list[int]], completions: list[list[int]]) -> torch.Tensor:
    """Mean token log-prob of each completion after its prompt, by one forward pass per row."""
    values = []
    with torch.no_grad():
        for prompt, completion in zip(rows, completions, strict=True):
            logits = model(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1 : -1].float()
            logps = torch.log_softmax(logits, -1)[torch.arange(len(completion)), completion]
            values.append(sequence_confidence(logps.unsqueeze(0), torch.ones(1, len(completion))).item())
    return torch.tensor(values)


def order_flips(a: torch.Tensor, b: torch.Tensor, group_size: int) -> float:
    """Share of same-group pairs whose confidence order differs between ``a`` and ``b``."""
    flips = pairs = 0
    for start in range(0, a.numel(), group_size):
        for i, j in itertools.combinations(range(start, start + group_size), 2):
            pairs += 1
            flips += bool(torch.sign(a[i] - a[j]) != torch.sign(b[i] - b[j]))
    return flips / pairs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--regime", default="single-digit")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    folder = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    fp32 = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    bf16 = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
    _, problems = split(args.regime, args.prompts)
    prompts = [
        tokenizer.apply_chat_template(chat(p), add_generation_prompt=True, tokenize=True) for p in problems
    ]
    prompts = [list(p["input_ids"]) if hasattr(p, "keys") else list(p) for p in prompts]
    rows = [p for p in prompts for _ in range(args.group_size)]
    input_ids, attention_mask = left_pad(rows, tokenizer.pad_token_id)
    torch.manual_seed(0)
    sampled = StaticCacheSampler(fp32).sample(
        input_ids, attention_mask, max_new_tokens=32, eos_token_ids=[tokenizer.eos_token_id],
        pad_token_id=tokenizer.pad_token_id, temperature=0.7,
    )  # fmt: skip
    recorded = torch.tensor([logps.mean().item() for logps in sampled.token_logps])
    c32 = confidences(fp32, rows, sampled.completion_ids)
    c16 = confidences(bf16, rows, sampled.completion_ids)
    summary = {
        "model": args.model,
        "completions": len(rows),
        "group_size": args.group_size,
        "mean_abs_difference_bf16_vs_fp32": (c16 - c32).abs().mean().item(),
        "max_abs_difference_bf16_vs_fp32": (c16 - c32).abs().max().item(),
        "confidence_std_fp32": c32.std().item(),
        "within_group_order_flips_bf16_vs_fp32": order_flips(c16, c32, args.group_size),
        "mean_abs_difference_recorded_fp32_vs_forward_fp32": (recorded - c32).abs().mean().item(),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
