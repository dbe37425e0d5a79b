"""The GPU check: one script a session lent the ``device`` machine runs (at most 8 minutes), writing one JSON.

The device has PyTorch and transformers and no network: it needs TRL and a few pure-Python wheels carried
with the working tree (at most 64 MiB). Prepare them here, then run there:

    .venv/bin/pip download --no-deps -d shared/wheels trl==1.16.0 accelerate==1.15.0 datasets==5.2.0 \\
        math-verify==0.9.0 latex2sympy2_extended==1.11.0 dill==0.4.1 multiprocess==0.70.19 xxhash
    # on the device (command of the `run` tool, carry nothing else):
    pip install --no-index --no-deps shared/wheels/*.whl && pip install --no-deps -e . && \\
        python benchmarks/gpu_check.py --json $OUT/gpu_check.json

It builds a randomly initialised Llama-shaped model of about 0.5B parameters locally (nothing can be
downloaded there) and measures, each on the card named in the JSON:

- TRL's ``GRPOTrainer`` against ``ICPOTrainer`` (alpha 0.5), step time in bf16, median over steps after
  the first, interleaved; which confidence source ICPO used (``generation``: recorded, no extra pass);
- ``icpo_advantages`` at 65,536 x 16 and 1,048,576 x 16 rows (median of 5, synchronised);
- generation throughput of ``model.generate`` (tokens per second, batch x new tokens).

``--dry-run`` shrinks every size so that the same code runs on a CPU in seconds (the test
``tests/test_gpu_check.py`` runs it, so the script cannot rot).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(function, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        synchronize()
        started = time.perf_counter()
        function()
        synchronize()
        times.append(time.perf_counter() - started)
    return times


def build_model(folder: Path, dry_run: bool) -> Path:
    """A random Llama of about 0.5B parameters (dry run: about 1M) and the tiny char tokenizer, saved."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from icpo.tiny import build_tiny_policy

    build_tiny_policy(folder)  # the tokenizer (and a config we replace)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64 if dry_run else 1536,
        intermediate_size=128 if dry_run else 4096,
        num_hidden_layers=2 if dry_run else 16,
        num_attention_heads=4 if dry_run else 12,
        num_key_value_heads=2 if dry_run else 4,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def trainer_step_times(folder: Path, method: str, args: argparse.Namespace) -> dict:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from icpo.trl import ICPOConfig, ICPOTrainer

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_begin(self, *a, **k):
            synchronize()
            self.started = time.perf_counter()

        def on_step_end(self, *a, **k):
            synchronize()
            self.times.append(time.perf_counter() - self.started)

    on_gpu = torch.cuda.is_available()
    common = dict(
        output_dir=tempfile.mkdtemp(prefix="gpu-check-"),
        use_cpu=not on_gpu,
        bf16=on_gpu,
        per_device_train_batch_size=args.batch,
        num_generations=8,
        max_completion_length=args.new_tokens,
        generation_kwargs={"min_new_tokens": args.new_tokens},  # every method does the same work
        max_steps=args.steps,
        learning_rate=1e-6,
        logging_steps=args.steps,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=0,
    )
    prompts = Dataset.from_dict({"prompt": [f"{i}+{i + 3}=" for i in range(512)]})

    def reward(completions, **_):
        return [float(sum(c.isdigit() for c in text) % 3) for text in completions]

    if method == "grpo":
        trainer = GRPOTrainer(
            str(folder), reward_funcs=reward, args=GRPOConfig(**common), train_dataset=prompts
        )
    else:
        config = ICPOConfig(**common, icpo_alpha=0.5)
        trainer = ICPOTrainer(str(folder), reward_funcs=reward, args=config, train_dataset=prompts)
    timer = StepTimer()
    trainer.add_callback(timer)
    trainer.train()
    return {"step_seconds": timer.times, "sources": sorted(getattr(trainer, "_logged_sources", ()))}


def advantage_times(rows: int, repeats: int) -> list[float]:
    from icpo.core import icpo_advantages

    device = "cuda" if torch.cuda.is_available() else "cpu"
    rewards = torch.randint(0, 2, (rows * 16,), device=device).float()
    confidence = -torch.rand(rows * 16, device=device)
    icpo_advantages(rewards, confidence, 16, alpha=0.5)  # warm-up
    return timed(lambda: icpo_advantages(rewards, confidence, 16, alpha=0.5), repeats)


def generation_rate(folder: Path, args: argparse.Namespace) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = "left"
    batch = tokenizer([f"{i}+{i}=" for i in range(args.batch)], return_tensors="pt", padding=True).to(device)

    def generate():
        with torch.no_grad():
            model.generate(**batch, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                           do_sample=True, pad_token_id=tokenizer.pad_token_id)  # fmt: skip

    generate()
    seconds = statistics.median(timed(generate, 3))
    return {"batch": args.batch, "new_tokens": args.new_tokens, "seconds": seconds,
            "tokens_per_second": args.batch * args.new_tokens / seconds}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, any device (the CPU test)")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    args.steps, args.batch, args.new_tokens = (2, 16, 4) if args.dry_run else (6, 64, 128)
    rows = (1024, 4096) if args.dry_run else (65_536, 1_048_576)

    started = time.perf_counter()
    report = {
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "dry_run": args.dry_run,
    }
    with tempfile.TemporaryDirectory() as workdir:
        folder = build_model(Path(workdir) / "policy", args.dry_run)
        from transformers import AutoModelForCausalLM

        report["parameters"] = sum(
            p.numel() for p in AutoModelForCausalLM.from_pretrained(folder).parameters()
        )
        runs = {method: trainer_step_times(folder, method, args) for method in ("grpo", "icpo")}
        medians = {m: statistics.median(r["step_seconds"][1:] or r["step_seconds"]) for m, r in runs.items()}
        report["trainer"] = {
            "runs": runs,
            "median_step_seconds": medians,
            "icpo_over_grpo": medians["icpo"] / medians["grpo"],
        }
        report["icpo_advantages_seconds"] = {
            f"{n} x 16": statistics.median(advantage_times(n, 5)) for n in rows
        }
        report["generation"] = generation_rate(folder, args)
    report["wall_seconds"] = time.perf_counter() - started
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "trainer"} | {"trainer": medians}, indent=2))


if __name__ == "__main__":
    main()
