"""Runs and studies: ``icpo demo``, ``icpo compare`` and ``icpo train``.

One RL run (``run_rl``) = ICPOTrainer from a warm start on a synthetic task, with the held-out greedy
accuracy measured every ``eval_every`` steps and, at the end, greedy accuracy, sampled avg@k and the
held-out overconfident-error rate. A study (``run_study``) = that run for every (variant, seed), all
variants of one seed starting from the same cached warm-up, then the report (``icpo.report``).

Layout of a study folder (``--out``)::

    warmup-seed{S}/                     the SFT warm start of seed S (a Hugging Face folder), reused
    runs/{variant}-noise{p}-seed{S}/    result.json (written atomically, last), metrics.jsonl, tensorboard
    {report}.md, {report}.csv, {report}.json, {report}-*.png

A run whose result.json exists is never redone, so a killed study resumes where it stopped; a run folder
without it is cleared and run again. Several ``compare`` calls may share one folder: warm-ups and runs
with the same settings (e.g. the GRPO baseline) are reused, and a run folder made with other settings is
an error rather than a silent mix.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from icpo.cli import checked_command
from icpo.core import ICPOOptions

RESULT = "result.json"
# The longest a warm-up to a target accuracy may train (it stops at the target): on the shared machine
# seed 1 needed about 1500 SFT steps (77 epochs of 2000 prompts) to reach 0.4 (docs/results.md).
TARGETED_WARMUP_EPOCHS = 100.0


@dataclass(frozen=True)
class Variant:
    """The RL method: ICPO's options; ``alpha == 0`` is the GRPO baseline."""

    alpha: float = 0.0
    method: str = ICPOOptions.method
    tau: float = ICPOOptions.tau
    combine: str = ICPOOptions.combine
    direction: str = ICPOOptions.direction
    schedule: str = ICPOOptions.schedule

    @property
    def name(self) -> str:
        if self.alpha == 0:
            return "grpo"
        name = f"icpo-a{self.alpha:g}-{self.method}-t{self.tau:g}-{self.combine}-{self.direction}"
        return name if self.schedule == "constant" else f"{name}-{self.schedule}"

    def config_kwargs(self) -> dict[str, Any]:
        return {
            "icpo_alpha": self.alpha,
            "icpo_method": self.method,
            "icpo_tau": self.tau,
            "icpo_combine": self.combine,
            "icpo_direction": self.direction,
            "icpo_alpha_schedule": self.schedule,
        }


@dataclass(frozen=True)
class StudySettings:
    """Everything a run depends on besides its variant and seed."""

    task: str = "addition"
    difficulty: int = 2
    num_train: int = 2000
    num_test: int = 200
    mistake_rate: float = 0.5
    steps: int = 150
    prompts_per_step: int = 8
    num_generations: int = 8
    learning_rate: float = 1e-4
    temperature: float = 1.0
    reward_noise: float = 0.0
    eval_every: int = 15
    avg_k: int = 8
    start_accuracy: float | None = None  # warm up to this held-out greedy accuracy (None: fixed epochs)


@dataclass
class EvalResult:
    greedy_accuracy: float
    avg_at_k: float
    overconfident_error_rate: float
    within_group_auroc: float = float("nan")
    pass_at: dict[int, float] = field(default_factory=dict)


# --- evaluation ------------------------------------------------------------------------------------


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n - c, k) / C(n, k) (Chen et al. 2021)."""
    if not 1 <= k <= num_samples:
        raise ValueError(f"pass@k needs 1 <= k <= n samples, got k={k}, n={num_samples}.")
    return 1.0 - math.comb(num_samples - num_correct, k) / math.comb(num_samples, k)


def evaluate(model, tokenizer, task_name: str, problems, max_new_tokens: int, k: int = 0) -> EvalResult:
    """Greedy accuracy on ``problems``; with ``k > 0`` also, from k samples per prompt at temperature 1:
    avg@k (their mean accuracy), pass@j for j = 1, 2, 4, ... <= k (mean over prompts), and the
    overconfident-error rate and within-group AUROC of their confidence (groups of k per prompt)."""
    import torch

    from icpo.core import overconfident_error_rate, sequence_confidence, within_group_auroc
    from icpo.tasks import correctness

    was_training = model.training
    model.eval()
    encoded = tokenizer([p.prompt for p in problems], return_tensors="pt", padding=True)
    prompt_length = encoded.input_ids.shape[1]
    common = {"max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    with torch.no_grad():
        greedy = model.generate(**encoded, do_sample=False, **common)
        texts = tokenizer.batch_decode(greedy[:, prompt_length:], skip_special_tokens=True)
        greedy_accuracy = sum(correctness(task_name, problems, texts)) / len(problems)
        avg_at_k = overconfident = auroc = float("nan")
        pass_at: dict[int, float] = {}
        if k > 0:
            sampled = model.generate(
                **encoded,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                num_return_sequences=k,
                output_scores=True,
                return_dict_in_generate=True,
                **common,
            )
            completion_ids = sampled.sequences[:, prompt_length:]
            token_logps = model.compute_transition_scores(
                sampled.sequences, sampled.scores, normalize_logits=True
            )
            mask = _completion_mask(completion_ids, tokenizer.eos_token_id, tokenizer.pad_token_id)
            confidence = sequence_confidence(token_logps, mask)
            texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
            repeated = [problem for problem in problems for _ in range(k)]
            correct = torch.tensor(correctness(task_name, repeated, texts))
            avg_at_k = correct.float().mean().item()
            overconfident = overconfident_error_rate(confidence, correct, k)
            auroc = within_group_auroc(confidence, correct, k)
            per_prompt = correct.reshape(len(problems), k).sum(dim=1).tolist()
            for j in (2**e for e in range(k.bit_length()) if 2**e <= k):
                pass_at[j] = sum(pass_at_k(k, c, j) for c in per_prompt) / len(problems)
    model.train(was_training)
    return EvalResult(greedy_accuracy, avg_at_k, overconfident, auroc, pass_at)


def _completion_mask(completion_ids, eos_token_id: int, pad_token_id: int):
    """1 for generated tokens up to and including the first EOS, 0 for the padding after it."""
    import torch

    is_end = (completion_ids == eos_token_id) | (completion_ids == pad_token_id)
    ended_before = torch.cumsum(is_end.int(), dim=1) - is_end.int()
    return ((ended_before == 0) & (completion_ids != pad_token_id)).int()


def max_completion_chars(problems) -> int:
    """Room for the longest solution plus a few characters and the EOS token."""
    return max(len(p.solution) for p in problems) + 4


# --- one RL run ------------------------------------------------------------------------------------


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


def _quiet_progress_bar(trainer) -> None:
    """Keep the trainer's step progress bar but stop it printing every log dict (metrics.jsonl has them)."""
    from transformers.trainer_callback import ProgressCallback

    class StepBar(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(StepBar())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def run_rl(
    warm_start: Path, settings: StudySettings, variant: Variant, seed: int, run_dir: Path, train, test
) -> dict[str, Any]:
    """Train ``variant`` from ``warm_start`` and return (and write atomically) its result."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icpo.tasks import make_reward_function, rl_rows, with_reward_noise
    from icpo.trl import ICPOConfig, ICPOTrainer

    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(warm_start)
    model = AutoModelForCausalLM.from_pretrained(warm_start)
    max_new_tokens = max_completion_chars(train)
    reward = with_reward_noise(make_reward_function(settings.task), settings.reward_noise, seed)
    config = ICPOConfig(
        output_dir=str(run_dir),  # tensorboard events land in run_dir/runs/
        report_to=["tensorboard"],
        max_steps=settings.steps,
        per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
        num_generations=settings.num_generations,
        max_completion_length=max_new_tokens,
        temperature=settings.temperature,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="constant",
        beta=0.0,
        logging_steps=1,
        save_strategy="no",
        seed=seed,
        use_cpu=True,
        bf16=False,
        disable_tqdm=False,
        **variant.config_kwargs(),
    )
    curve: list[dict[str, float]] = []

    def evaluate_now(step: int) -> None:
        result = evaluate(model, tokenizer, settings.task, test, max_new_tokens)
        curve.append({"step": step, "accuracy": result.greedy_accuracy})

    recorder = _recorder_callback(run_dir / "metrics.jsonl", evaluate_now, settings.eval_every)
    trainer = ICPOTrainer(
        model=model,
        reward_funcs=reward,
        args=config,
        train_dataset=Dataset.from_list(rl_rows(train)),
        processing_class=tokenizer,
        callbacks=[recorder],
    )
    _quiet_progress_bar(trainer)
    started = time.perf_counter()
    trainer.train()
    final = evaluate(model, tokenizer, settings.task, test, max_new_tokens, k=settings.avg_k)
    training_steps = [entry for entry in recorder.history if "entropy" in entry]

    def mean_of_last_steps(key: str, count: int = 5) -> float:
        """Mean over the last ``count`` steps of the steps where ``key`` is defined (NaN if none)."""
        values = [v for entry in training_steps[-count:] if (v := entry.get(key, math.nan)) == v]
        return sum(values) / len(values) if values else math.nan

    def mean_over_steps(key: str) -> float:
        return mean_of_last_steps(key, count=len(training_steps))

    result = {
        "variant": variant.name,
        "variant_options": asdict(variant),
        "seed": seed,
        "settings": asdict(settings),
        "history": training_steps,
        "eval_curve": curve,
        "final": {
            "greedy_accuracy": final.greedy_accuracy,
            f"avg_at_{settings.avg_k}": final.avg_at_k,
            **{f"pass_at_{j}": value for j, value in final.pass_at.items()},
            "heldout_overconfident_error_rate": final.overconfident_error_rate,
            "heldout_within_group_auroc": final.within_group_auroc,
            "entropy_end": mean_of_last_steps("entropy"),
            "train_overconfident_error_rate_end": mean_of_last_steps("icpo/overconfident_error_rate"),
            "train_within_group_auroc_end": mean_of_last_steps("icpo/within_group_auroc"),
            "mixed_group_share": mean_over_steps("icpo/mixed_group_share"),
            "reward_end": mean_of_last_steps("reward"),
        },
        "warm_start": {"heldout_accuracy": curve[0]["accuracy"], **warm_start_record(warm_start)},
        "wall_seconds": time.perf_counter() - started,
    }
    write_json_atomically(run_dir / RESULT, result)
    return result


def write_json_atomically(path: Path, payload: Any) -> None:
    """Write to a temporary sibling, then ``os.replace``: readers see the old file or the whole new one."""
    staging = path.with_name(path.name + ".tmp")
    staging.write_text(json.dumps(payload, indent=1))
    os.replace(staging, path)


# --- a study: variants x seeds ---------------------------------------------------------------------


def run_folder_name(variant: Variant, settings: StudySettings, seed: int) -> str:
    start = "" if settings.start_accuracy is None else f"-start{settings.start_accuracy:g}"
    return f"{variant.name}-noise{settings.reward_noise:g}{start}-seed{seed}"


def warm_start_for(out: Path, settings: StudySettings, seed: int):
    """The seed's train/test problems and its cached warm-up folder (built on first use).

    With ``settings.start_accuracy`` the warm-up stops at that greedy accuracy measured on a dev set of
    ``num_test`` prompts from another seed, disjoint from train and test (the test set is not used to
    choose the start); the folder is then ``warmup-seed{S}-start{target}``."""
    from icpo.tasks import generate_problems, train_test_problems
    from icpo.tiny import build_char_tokenizer
    from icpo.warmup import WarmupSettings, warm_up

    train, test = train_test_problems(
        settings.task, settings.num_train, settings.num_test, seed, settings.difficulty
    )
    warm_settings = WarmupSettings(
        task=settings.task,
        difficulty=settings.difficulty,
        num_examples=settings.num_train,
        mistake_rate=settings.mistake_rate,
        seed=seed,
        target_accuracy=settings.start_accuracy,
        epochs=WarmupSettings.epochs if settings.start_accuracy is None else TARGETED_WARMUP_EPOCHS,
    )
    if settings.start_accuracy is None:
        return warm_up(out / f"warmup-seed{seed}", warm_settings, train), train, test
    seen = {p.prompt for p in train + test}
    dev = generate_problems(settings.task, settings.num_test, seed + 2_000_003, settings.difficulty, seen)
    tokenizer, max_new_tokens = build_char_tokenizer(), max_completion_chars(train)

    def dev_accuracy(model) -> float:
        return evaluate(model, tokenizer, settings.task, dev, max_new_tokens).greedy_accuracy

    folder = out / f"warmup-seed{seed}-start{settings.start_accuracy:g}"
    return warm_up(folder, warm_settings, train, dev_accuracy), train, test


def warm_start_record(warm_start: Path) -> dict[str, Any]:
    """The warm-up's record of its chosen start (target, SFT step, dev accuracy); {} without a target."""
    from icpo.warmup import START

    path = Path(warm_start) / START
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    return {
        "target": record["target_accuracy"],
        "sft_step": record["step"],
        "dev_accuracy": record["dev_accuracy"],
    }


def load_finished(run_dir: Path, settings: StudySettings, variant: Variant) -> dict[str, Any] | None:
    """The run's result if it finished with these settings; raises if it finished with others."""
    path = run_dir / RESULT
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    if result["settings"] != asdict(settings) or result["variant_options"] != asdict(variant):
        raise ValueError(
            f"{run_dir} holds a finished run made with other settings; use another --out folder or delete it."
        )
    return result


def run_study(
    out: Path, settings: StudySettings, variants: list[Variant], seeds: list[int], report_name: str
) -> Path:
    """Every (seed, variant) run, skipping finished ones, then the report; returns the report path."""
    import torch
    from tqdm.auto import tqdm

    from icpo.report import write_report

    # The policy is tiny: one intra-op thread is faster than two fighting over a busy CPU.
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    plan = [
        (seed, variant, out / "runs" / run_folder_name(variant, settings, seed))
        for seed in seeds
        for variant in variants
    ]
    # Every finished run is read (and its settings checked) before any training starts.
    finished = {run_dir: load_finished(run_dir, settings, variant) for _, variant, run_dir in plan}
    results = []
    with tqdm(plan, desc="runs", unit="run", position=0) as progress:
        for seed, variant, run_dir in progress:
            progress.set_postfix_str(run_dir.name)
            result = finished[run_dir]
            if result is None:
                warm_start, train, test = warm_start_for(out, settings, seed)
                result = run_rl(warm_start, settings, variant, seed, run_dir, train, test)
            results.append(result)
    return write_report(out, report_name, results, baseline=variants[0].name)


# --- command line ----------------------------------------------------------------------------------


def _add_study_arguments(parser: argparse.ArgumentParser, defaults: StudySettings) -> None:
    parser.add_argument("--task", default=defaults.task, help="task family (addition, countdown)")
    parser.add_argument("--difficulty", type=int, default=defaults.difficulty)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="RL steps per run")
    parser.add_argument(
        "--num-train", type=int, default=defaults.num_train, help="train prompts (and SFT rows)"
    )
    parser.add_argument("--num-test", type=int, default=defaults.num_test, help="held-out prompts")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every, help="held-out eval interval")
    parser.add_argument("--reward-noise", type=float, default=defaults.reward_noise, help="reward flip prob.")
    parser.add_argument(
        "--start-accuracy",
        type=float,
        default=defaults.start_accuracy,
        help="warm up to this greedy accuracy on a dev set (default: a fixed 40-epoch warm-up)",
    )
    parser.add_argument(
        "--alpha", type=float, default=ICPOOptions.alpha, help="ICPO alpha of the compared variant"
    )
    parser.add_argument("--method", default=ICPOOptions.method, help="ICPO preference score: bt or rank")
    parser.add_argument("--tau", type=float, default=ICPOOptions.tau)
    parser.add_argument("--combine", default=ICPOOptions.combine, help="advantage, reward or fallback (ours)")
    parser.add_argument(
        "--direction", default=ICPOOptions.direction, help="low (the paper) or high (control)"
    )
    parser.add_argument("--schedule", default=ICPOOptions.schedule, help="alpha schedule: constant or linear")


def _settings_and_variants(args) -> tuple[StudySettings, list[Variant]]:
    """Validate the arguments before any work starts; ValueError names what is wrong."""
    from icpo.tasks import check_difficulty, get_task

    check_difficulty(get_task(args.task), args.difficulty)
    ICPOOptions(
        alpha=args.alpha,
        schedule=args.schedule,
        method=args.method,
        tau=args.tau,
        combine=args.combine,
        direction=args.direction,
    ).validate(lambda name: f"--{name}")
    if not 0 <= args.reward_noise <= 1:
        raise ValueError(f"--reward-noise must be a probability in [0, 1], got {args.reward_noise}.")
    if args.start_accuracy is not None and not 0 < args.start_accuracy <= 1:
        raise ValueError(f"--start-accuracy must be in (0, 1], got {args.start_accuracy}.")
    if args.alpha <= 0:
        raise ValueError(
            f"--alpha must be > 0 for the ICPO variant (the GRPO baseline is alpha 0), got {args.alpha}."
        )
    for name in ("steps", "num_train", "num_test", "eval_every"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}.")
    settings = replace(
        StudySettings(),
        task=args.task,
        difficulty=args.difficulty,
        steps=args.steps,
        num_train=args.num_train,
        num_test=args.num_test,
        eval_every=args.eval_every,
        reward_noise=args.reward_noise,
        start_accuracy=args.start_accuracy,
    )
    icpo = Variant(args.alpha, args.method, args.tau, args.combine, args.direction, args.schedule)
    return settings, [Variant(), icpo]


def _demo(args, prepared) -> int:
    settings, variants = prepared
    report = run_study(Path(args.out), settings, variants, [args.seed], "report")
    print(f"report: {report}")
    return 0


def _compare(args, prepared) -> int:
    settings, variants = prepared
    report_name = args.report or f"report-{variants[1].name}-noise{settings.reward_noise:g}"
    report = run_study(Path(args.out), settings, variants, list(range(args.seeds)), report_name)
    print(f"report: {report}")
    return 0


def register(subparsers) -> None:
    demo = subparsers.add_parser(
        "demo", help="warm-up, GRPO vs ICPO from the same start, held-out evaluation, report (CPU, offline)"
    )
    _add_study_arguments(demo, StudySettings())
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(run=checked_command(_settings_and_variants, _demo))

    compare = subparsers.add_parser(
        "compare", help="GRPO vs one ICPO variant over several seeds, paired by seed"
    )
    _add_study_arguments(compare, StudySettings())
    compare.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    compare.add_argument("--out", default="runs/compare")
    compare.add_argument("--report", default=None, help="report file stem (default: from the variant)")
    compare.set_defaults(run=checked_command(_settings_and_variants, _compare))


__all__ = ["StudySettings", "Variant", "evaluate", "run_rl", "run_study", "register"]
