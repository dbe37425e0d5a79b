"""Step time of ICPOTrainer against TRL's GRPOTrainer (CPU by default), on the tiny offline policy or on
SmolLM2-135M-Instruct (``--model smollm2-135m-instruct``).

Two set-ups, each measured for GRPO and ICPO in the same process, interleaved round by round (the order
alternating) so that machine load hits both alike:

- on-policy (steps_per_generation=1, TRL's default): TRL computes no old log-probs; ICPO takes the
  confidences from the log-probs recorded during generation (no extra forward pass). Any fallback forward
  pass is timed on its own ("extra forward", 0 when none ran);
- buffered (steps_per_generation=2): TRL already computes old log-probs, which ICPO reuses.

Reported: median wall time of an optimiser step (first ``--warmup`` steps of each run dropped) over all
rounds, the ratio of those medians, the median over rounds of each round's ratio (ICPO and GRPO run
back to back, so this paired figure is the one least moved by load from other processes), and where
ICPO's confidences came from. ``--device cuda --bf16
--hidden-size 768 --layers 12`` gives the ~100M-parameter GPU variant of the tiny policy.

    python benchmarks/bench_step_time.py --rounds 5 --json runs/bench/step_time.json
    python benchmarks/bench_step_time.py --model smollm2-135m-instruct --rounds 3 --steps 4 --warmup 1 \
        --batch-size 8 --group-size 4 --completion-length 24 --json runs/bench/step_time_smollm2.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from icpo.models import resolve_model
from icpo.static_sampler import cpu_info
from icpo.tiny import build_tiny_policy
from icpo.trl import ICPOConfig, ICPOTrainer


class StepTimer(TrainerCallback):
    """Wall time and this process's CPU time of each optimiser step, generation and scoring included.

    On a shared CPU machine the wall time also counts time spent waiting for a core; the CPU time (all
    threads of this process) counts only the work, so it is the steadier figure there (on a GPU use the
    wall time)."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.cpu_durations: list[float] = []
        self._start = self._cpu_start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start, self._cpu_start = time.perf_counter(), time.process_time()

    def on_step_end(self, args, state, control, **kwargs):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.durations.append(time.perf_counter() - self._start)
        self.cpu_durations.append(time.process_time() - self._cpu_start)


def device_name(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    return cpu_info("model name") or "cpu"


def reward_digits(completions, **_):
    """Fraction of digit characters: cheap, varied rewards."""
    return [sum(ch.isdigit() for ch in text) / max(1, len(text)) for text in completions]


def run_once(method: str, steps_per_generation: int, model_dir: Path, args: argparse.Namespace) -> dict:
    common = dict(
        output_dir=tempfile.mkdtemp(prefix="bench-"),
        use_cpu=args.device == "cpu",
        bf16=args.bf16,
        per_device_train_batch_size=args.batch_size,
        steps_per_generation=steps_per_generation,
        num_generations=args.group_size,
        max_completion_length=args.completion_length,
        # Every completion runs to full length: step time must not depend on what each method learned to write.
        generation_kwargs={"min_new_tokens": args.completion_length},
        max_steps=args.steps,
        logging_steps=args.steps,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=0,
    )
    prompts = Dataset.from_dict({"prompt": [f"What is {i}+{i + 3}? Answer: " for i in range(256)]})
    if method == "grpo":
        trainer = GRPOTrainer(
            str(model_dir), reward_funcs=reward_digits, args=GRPOConfig(**common), train_dataset=prompts
        )
    else:
        config = ICPOConfig(**common, icpo_alpha=0.5)
        trainer = ICPOTrainer(str(model_dir), reward_funcs=reward_digits, args=config, train_dataset=prompts)
    forward_times: list[float] = []
    if method == "icpo":
        policy_logps = trainer._policy_logps

        def timed(batch):
            start = time.perf_counter()
            result = policy_logps(batch)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            forward_times.append(time.perf_counter() - start)
            return result

        trainer._policy_logps = timed
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    sources = sorted(getattr(trainer, "_logged_sources", ()))
    return {
        "steps": timer.durations[args.warmup :],
        "cpu_steps": timer.cpu_durations[args.warmup :],
        "extra_forward": forward_times[args.warmup :],
        "sources": sources,
    }


def paired_ratio(grpo_steps: list[float], icpo_steps: list[float], rounds: int) -> float:
    """Median over rounds of median(ICPO steps of the round) / median(GRPO steps of the round)."""
    per_run = len(grpo_steps) // rounds
    ratios = [
        statistics.median(icpo_steps[r * per_run : (r + 1) * per_run])
        / statistics.median(grpo_steps[r * per_run : (r + 1) * per_run])
        for r in range(rounds)
    ]
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--completion-length", type=int, default=32)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--model", choices=["tiny", "smollm2-135m-instruct"], default="tiny")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args()

    if args.model == "tiny":
        model_dir = build_tiny_policy(
            Path(tempfile.mkdtemp(prefix="bench-policy-")),
            hidden_size=args.hidden_size,
            num_layers=args.layers,
            num_heads=max(4, args.hidden_size // 64),
        )
    else:
        model_dir = resolve_model(args.model)  # the icpo.models preset (cached folder)
    parameters = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(model_dir).parameters())
    print(
        f"policy: {args.model}, {parameters / 1e6:.2f}M parameters on {device_name(args.device)}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        flush=True,
    )
    setups = {"on-policy (steps_per_generation=1)": 1, "buffered (steps_per_generation=2)": 2}
    timings = {
        (setup, method): {"steps": [], "cpu_steps": [], "extra_forward": [], "sources": []}
        for setup in setups
        for method in ("grpo", "icpo")
    }
    for round_index in range(args.rounds):
        for setup, steps_per_generation in setups.items():
            for method in ("grpo", "icpo") if round_index % 2 == 0 else ("icpo", "grpo"):
                result = run_once(method, steps_per_generation, model_dir, args)
                for key, values in result.items():
                    timings[(setup, method)][key].extend(values)
        print(f"round {round_index + 1}/{args.rounds} done", flush=True)

    print(
        "\n| set-up | clock | GRPO step (s) | ICPO step (s) | ICPO/GRPO | paired ratio | extra forward (s) "
        "| ICPO confidence source |\n|---|---|---|---|---|---|---|---|"
    )
    rows = []
    for setup in setups:
        forward = timings[(setup, "icpo")]["extra_forward"]
        forward_median = statistics.median(forward) if forward else 0.0
        sources = ", ".join(sorted(set(timings[(setup, "icpo")]["sources"])))
        for clock, key in (("wall", "steps"), ("cpu", "cpu_steps")):
            grpo_steps, icpo_steps = timings[(setup, "grpo")][key], timings[(setup, "icpo")][key]
            grpo, icpo = statistics.median(grpo_steps), statistics.median(icpo_steps)
            paired = paired_ratio(grpo_steps, icpo_steps, args.rounds)
            rows.append(
                {
                    "setup": setup,
                    "clock": clock,
                    "grpo_s": grpo,
                    "icpo_s": icpo,
                    "ratio": icpo / grpo,
                    "paired_ratio": paired,
                    "extra_forward_s": forward_median,
                    "steps_per_method": len(icpo_steps),
                    "confidence_source": sources,
                }
            )
            print(
                f"| {setup} | {clock} | {grpo:.4f} | {icpo:.4f} | {icpo / grpo:.3f} | {paired:.3f} "
                f"| {forward_median:.4f} | {sources} |"
            )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        raw = {f"{setup} / {method}": values for (setup, method), values in timings.items()}
        report = {"device": device_name(args.device), "parameters": parameters, "summary": rows, "raw": raw}
        args.json.write_text(
            json.dumps(report | {"args": {k: str(v) for k, v in vars(args).items()}}, indent=2)
        )


if __name__ == "__main__":
    main()
