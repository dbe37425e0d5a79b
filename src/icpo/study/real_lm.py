"""The study on a real LM: every method x seed from one pretrained start, on a chat task
(``icpo.study.chat_tasks``), resumable.

``run_real_lm_study(plan)`` trains, for each seed and each method, ``ICPOTrainer`` on the fast path
(``icpo_sampler="static"``, bf16 where the CPU has bf16 arithmetic, no activation checkpointing, the top
``trainable_layers`` layers trained) and evaluates with ``icpo.study.heldout.evaluate_prompts`` on the
regime's held-out problems, in the chat prompt the policy trained with: greedy accuracy every
``eval_every`` steps (the curve), and at the end greedy accuracy, avg@k and pass@j from k samples at the
training temperature, the overconfident-error rate and within-group AUROC. The start policy is evaluated
once the same way (``start.json``; the evaluator's random numbers are fixed), so every comparison shows
GRPO's own gain.

Layout of ``--out``::

    start.json                          the start policy's held-out metrics (the same evaluator)
    runs/{method}-seed{S}/result.json   written atomically, last; metrics.jsonl, TensorBoard events

A run whose result.json exists is never redone; a run folder without it is cleared and run again.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from icpo.study.engine import recorded_as
from icpo.study.methods import Method
from icpo.study.rl_run import RESULT, heldout_metrics, mean_of_last_steps, run_config_kwargs, train_with_curve

PRECISIONS = ("auto", "float32")


@dataclass(frozen=True)
class RealLMSettings:
    """Everything a real-LM run depends on besides its method and seed."""

    model: str = "smollm2-135m-instruct"
    regime: str = "single-digit"
    steps: int = 100
    prompts_per_step: int = 4
    num_generations: int = 8
    max_new_tokens: int = 32
    temperature: float = 0.7
    learning_rate: float = 5e-5
    num_iterations: int = 1  # optimiser passes per batch; 1 is on-policy (the PPO ratio is exactly 1)
    trainable_layers: int = 4
    num_test: int = 64
    eval_every: int = 25
    avg_k: int = 16
    split_seed: int = 0
    # "auto": bf16 for training and sampling where the hardware computes it (icpo.static_sampler.
    # preferred_dtype), else float32; "float32": float32 everywhere (the numerics check's reference).
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}.")

    def dtype(self):
        """The compute dtype of this run's training and sampling."""
        import torch

        from icpo.static_sampler import preferred_dtype

        return preferred_dtype("cpu") if self.precision == "auto" else torch.float32


def _policy(settings: RealLMSettings):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icpo.models import resolve_model, train_only_top_layers

    folder = resolve_model(settings.model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    train_only_top_layers(model, settings.trainable_layers)
    return model, tokenizer


def _evaluator(settings: RealLMSettings, tokenizer, test):
    """``evaluate(model, k)``: the held-out metrics of ``model`` on ``test`` in its training prompt."""
    import torch

    from icpo.rewards import number_reward
    from icpo.study.chat_tasks import chat
    from icpo.study.heldout import evaluate_prompts

    prompts = [
        tokenizer.apply_chat_template(chat(p), tokenize=False, add_generation_prompt=True) for p in test
    ]
    dtype = settings.dtype()

    def grade(rows: list[int], texts: list[str]) -> list[bool]:
        rewards = number_reward(
            prompts=[None] * len(texts), completions=texts, answer=[test[row].answer for row in rows]
        )
        return [reward == 1.0 for reward in rewards]

    def evaluate(model, k: int = 0):
        torch.manual_seed(0)  # every policy is evaluated on the same random numbers
        return evaluate_prompts(
            model,
            tokenizer,
            prompts,
            grade,
            settings.max_new_tokens,
            k,
            settings.temperature,
            dtype=None if dtype == torch.float32 else dtype,
        )

    return evaluate


# The settings the start policy's evaluation depends on (the others only shape training).
START_FIELDS = (
    "model",
    "regime",
    "max_new_tokens",
    "temperature",
    "num_test",
    "avg_k",
    "split_seed",
    "precision",
)


def evaluate_start(settings: RealLMSettings, path: Path) -> dict[str, Any]:
    """The start policy's held-out metrics, read back when ``path`` exists and was evaluated with the same
    ``START_FIELDS`` (a ValueError names the ones that differ: another test set or sampler would give
    GRPO's own gain against another start)."""
    from icpo.runfolder import read_json, write_json_atomically
    from icpo.study.chat_tasks import split

    if path.is_file():
        start = read_json(path, "delete it and the start policy is evaluated again.")
        try:
            recorded = RealLMSettings(**start["settings"])
        except (TypeError, KeyError, ValueError) as error:
            raise ValueError(f"{path} holds no readable study settings ({error}); delete it.") from None
        differ = [f"{f} {getattr(recorded, f)!r} (asked: {getattr(settings, f)!r})" for f in START_FIELDS
                  if getattr(recorded, f) != getattr(settings, f)]  # fmt: skip
        if differ:
            raise ValueError(
                f"{path} evaluated the start policy with other settings: {', '.join(differ)}; use another "
                "--out folder or the same settings."
            )
        return start
    model, tokenizer = _policy(settings)
    _, test = split(settings.regime, settings.num_test, settings.split_seed)
    started = time.perf_counter()
    metrics = heldout_metrics(_evaluator(settings, tokenizer, test)(model, settings.avg_k), settings.avg_k)
    start = {"settings": asdict(settings), "final": metrics, "wall_seconds": time.perf_counter() - started}
    write_json_atomically(path, start)
    return start


def run_real_lm(settings: RealLMSettings, method: Method, seed: int, run_dir: Path) -> dict[str, Any]:
    """Train ``method`` for one seed and return (and write atomically) its result."""
    import torch

    from icpo.rewards import number_reward
    from icpo.runfolder import write_json_atomically
    from icpo.study.chat_tasks import rl_rows, split
    from icpo.trl import ICPOConfig

    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    torch.manual_seed(seed)
    model, tokenizer = _policy(settings)
    train, test = split(settings.regime, settings.num_test, settings.split_seed)
    evaluate = _evaluator(settings, tokenizer, test)
    config = ICPOConfig(
        **method.config_kwargs(),
        **run_config_kwargs(run_dir, settings, seed, settings.max_new_tokens),
        bf16=settings.dtype() == torch.bfloat16,
        icpo_sampler="static",
    )
    started = time.perf_counter()
    curve, steps, trained_seconds = train_with_curve(
        model,
        tokenizer,
        config,
        number_reward,
        rl_rows(train),
        run_dir,
        lambda step: evaluate(model).greedy_accuracy if step > 0 else None,  # step 0: start.json
        settings.eval_every,
        f"{method.name} seed {seed}",
    )
    final = evaluate(model, settings.avg_k)

    def last(key: str, count: int = 10) -> float:
        return mean_of_last_steps(steps, key, count)

    result = {
        "variant": method.name,
        "method": {"name": method.name, "options": asdict(method.options), "trainer": method.trainer},
        "seed": seed,
        "settings": asdict(settings),
        "history": steps,
        "eval_curve": curve,
        "final": heldout_metrics(final, settings.avg_k)
        | {
            "entropy_start": sum(e["entropy"] for e in steps[:5]) / max(1, len(steps[:5])),
            "entropy_end": last("entropy"),
            "reward_end": last("reward"),
            "train_overconfident_error_rate_end": last("icpo/overconfident_error_rate"),
            "mixed_group_share": last("icpo/mixed_group_share", len(steps)),
        },
        "wall_seconds": time.perf_counter() - started,
        "train_seconds": trained_seconds,
    }
    write_json_atomically(run_dir / RESULT, result)
    return result


def run_real_lm_study(
    out: Path, settings: RealLMSettings, methods: list[Method], seeds: list[int]
) -> list[dict[str, Any]]:
    """Every (seed, method) run not finished yet, seed by seed (paired: the same seed for every method);
    the results of all of them, finished ones read back."""
    from tqdm.auto import tqdm

    results = []
    plan = [(seed, method) for seed in seeds for method in methods]
    out.mkdir(parents=True, exist_ok=True)
    evaluate_start(settings, out / "start.json")
    with tqdm(total=len(plan), desc="real-LM study", unit="run", position=0) as bar:
        for seed in seeds:
            for method in methods:
                run_dir = out / "runs" / f"{method.name}-seed{seed}"
                finished = run_dir / RESULT
                if finished.is_file():
                    recorded = json.loads(finished.read_text())
                    if not recorded_as(settings, recorded.get("settings", {})):
                        raise ValueError(
                            f"{finished} was made with other settings; use another --out or delete that run."
                        )
                    results.append(recorded)
                else:
                    results.append(run_real_lm(settings, method, seed, run_dir))
                bar.update(1)
    return results
