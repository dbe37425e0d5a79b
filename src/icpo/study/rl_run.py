"""One RL run of the study: ``ICPOTrainer`` from a warm start on a synthetic task.

``run_rl`` trains one ``icpo.study.methods.Method`` (its ICPO and trainer options) for one seed with the
``StudySettings``, measures held-out greedy accuracy every ``eval_every`` steps and, at the end, the
metrics of ``icpo.study.heldout.evaluate``; it writes metrics.jsonl and TensorBoard events as it goes and
``result.json`` (atomically, last) when done.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from icpo.runfolder import write_json_atomically
from icpo.study.heldout import evaluate, max_completion_chars
from icpo.study.methods import Method
from icpo.warmup import read_start

RESULT = "result.json"


@dataclass(frozen=True)
class StudySettings:
    """Everything a run depends on besides its method and seed."""

    task: str = "addition"
    difficulty: int = 2
    num_train: int = 2000
    num_test: int = 200
    mistake_rate: float = 0.5
    # Where GRPO learns (measured, seed 0: held-out greedy 0.05 -> 0.26 from the sparse start, 0.30 -> 0.47
    # from the dense one); 150 steps of 8 prompts at 1e-4 gained 0.02 and 0.09 (docs/results.md).
    steps: int = 300
    prompts_per_step: int = 32
    num_generations: int = 8
    learning_rate: float = 3e-4
    temperature: float = 1.0
    reward_noise: float = 0.0
    eval_every: int = 15
    avg_k: int = 8
    num_iterations: int = (
        1  # optimiser passes per generated batch; 1 is on-policy (the PPO ratio is exactly 1)
    )
    start_accuracy: float | None = None  # warm up to this held-out greedy accuracy (None: fixed epochs)


def _recorder_callback(jsonl_path: Path, on_step, eval_every: int):
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        """Appends every log entry to metrics.jsonl and runs ``on_step(step)`` every ``eval_every`` steps."""

        def __init__(self):
            self.history: list[dict[str, float]] = []

        def on_train_begin(self, args, state, control, **kwargs):
            on_step(0)

        def on_log(self, args, state, control, logs=None, **kwargs):
            entry = {"step": state.global_step, **{k: v for k, v in (logs or {}).items() if _is_number(v)}}
            self.history.append(entry)
            with jsonl_path.open("a") as handle:
                handle.write(json.dumps(entry) + "\n")

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % eval_every == 0 or state.global_step == state.max_steps:
                on_step(state.global_step)

    return Recorder()


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mean_of_last_steps(steps: list[dict[str, float]], key: str, count: int) -> float:
    """Mean over the last ``count`` training steps of ``key`` where it is defined (NaN if nowhere)."""
    values = [v for entry in steps[-count:] if (v := entry.get(key, math.nan)) == v]
    return sum(values) / len(values) if values else math.nan


def heldout_metrics(result, k: int) -> dict[str, float]:
    """The final held-out metrics of an ``icpo.study.heldout.EvalResult`` as result.json stores them."""
    return {
        "greedy_accuracy": result.greedy_accuracy,
        f"avg_at_{k}": result.avg_at_k,
        **{f"pass_at_{j}": value for j, value in result.pass_at.items()},
        "heldout_overconfident_error_rate": result.overconfident_error_rate,
        "heldout_within_group_auroc": result.within_group_auroc,
    }


def run_config_kwargs(run_dir: Path, settings: Any, seed: int, max_new_tokens: int) -> dict[str, Any]:
    """The ``ICPOConfig`` options every study run shares: one run of ``settings.steps`` steps of
    ``prompts_per_step`` x ``num_generations`` samples at a constant learning rate, ``num_iterations``
    optimiser passes per batch, no KL term, every step logged, no checkpoints, CPU, TensorBoard events in run_dir/runs/."""
    return dict(
        output_dir=str(run_dir),
        report_to=["tensorboard"],
        max_steps=settings.steps,
        per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
        num_generations=settings.num_generations,
        max_completion_length=max_new_tokens,
        temperature=settings.temperature,
        learning_rate=settings.learning_rate,
        num_iterations=settings.num_iterations,
        lr_scheduler_type="constant",
        beta=0.0,
        logging_steps=1,
        save_strategy="no",
        seed=seed,
        use_cpu=True,
        activation_checkpointing=False,  # the study's models fit; recomputing only costs time
        disable_tqdm=False,
    )


def train_with_curve(
    model, tokenizer, config, reward, rows, run_dir: Path, curve_point, eval_every: int, label: str
) -> tuple[list[dict[str, float]], list[dict[str, float]], float]:
    """Train ``ICPOTrainer`` on ``rows`` with ``config``, appending each logged step to run_dir/metrics.jsonl;
    ``curve_point(step)`` (a greedy accuracy, or None to skip the step) at the start and every
    ``eval_every`` steps. Returns the curve, the training steps' metrics and the training seconds."""
    from datasets import Dataset

    from icpo.console import step_bar
    from icpo.trl import ICPOTrainer

    curve: list[dict[str, float]] = []

    def evaluate_now(step: int) -> None:
        accuracy = curve_point(step)
        if accuracy is not None:
            curve.append({"step": step, "accuracy": accuracy})

    recorder = _recorder_callback(run_dir / "metrics.jsonl", evaluate_now, eval_every)
    trainer = ICPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    step_bar(trainer, label)
    started = time.perf_counter()
    trainer.train()
    steps = [entry for entry in recorder.history if "entropy" in entry]
    return curve, steps, time.perf_counter() - started


def run_rl(
    warm_start: Path, settings: StudySettings, method: Method, seed: int, run_dir: Path, train, test
) -> dict[str, Any]:
    """Train ``method`` from ``warm_start`` and return (and write atomically) its result."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icpo.tasks import make_reward_function, rl_rows, with_reward_noise
    from icpo.trl import ICPOConfig

    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(warm_start)
    model = AutoModelForCausalLM.from_pretrained(warm_start)
    max_new_tokens = max_completion_chars(train)
    reward = with_reward_noise(make_reward_function(settings.task), settings.reward_noise, seed)
    config = ICPOConfig(
        **method.config_kwargs(),
        **run_config_kwargs(run_dir, settings, seed, max_new_tokens),
        bf16=False,
    )
    started = time.perf_counter()
    curve, training_steps, _ = train_with_curve(
        model,
        tokenizer,
        config,
        reward,
        rl_rows(train),
        run_dir,
        lambda step: evaluate(model, tokenizer, settings.task, test, max_new_tokens).greedy_accuracy,
        settings.eval_every,
        f"{method.name} seed {seed}",
    )
    final = evaluate(model, tokenizer, settings.task, test, max_new_tokens, k=settings.avg_k)

    def last(key: str, count: int = 5) -> float:
        return mean_of_last_steps(training_steps, key, count)

    result = {
        "variant": method.name,
        "variant_options": asdict(method.options),
        "trainer": method.trainer,
        "seed": seed,
        "settings": asdict(settings),
        "history": training_steps,
        "eval_curve": curve,
        "final": heldout_metrics(final, settings.avg_k)
        | {
            "entropy_end": last("entropy"),
            "train_overconfident_error_rate_end": last("icpo/overconfident_error_rate"),
            "train_within_group_auroc_end": last("icpo/within_group_auroc"),
            "mixed_group_share": last("icpo/mixed_group_share", len(training_steps)),
            "reward_end": last("reward"),
        },
        "warm_start": {"heldout_accuracy": curve[0]["accuracy"], **(read_start(warm_start) or {})},
        "wall_seconds": time.perf_counter() - started,
    }
    write_json_atomically(run_dir / RESULT, result)
    return result
