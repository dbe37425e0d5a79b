"""Supervised warm-up (TRL's SFTTrainer) of the tiny policy on generated examples, cached on disk.

RL needs groups with mixed rewards, so the warm start must solve part of the task, not all of it. The
warm-up is deliberately imperfect: for a fraction ``mistake_rate`` of the problems where the task has a
systematic slip (``Task.mistake``: a dropped carry, a swapped operator), the SFT target is the slip, not
the solution. The model learns those slips as confident habits: the overconfident errors ICPO is meant to
push down.

A settable start: with ``target_accuracy`` the warm-up checks the greedy accuracy on a held-out dev set
every ``check_every`` SFT steps and stops at the first check at or above ``target - tolerance``; it keeps
whichever of that check and the one before it is closer to the target (the closest one seen, when
training ends first). ``start.json`` records every check and the chosen one; ``read_start`` says whether
the target was reached at all: a policy whose initialisation stalls below it is a start of another regime,
and a study leaves that seed out rather than mixing it in.

The result is an ordinary Hugging Face folder, written to a temporary folder and moved into place with
``os.replace`` only when complete, so a killed warm-up leaves nothing half-written and a finished one is
reused (``warmup.json`` records the settings that produced it).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from icpo.runfolder import follow_umask, read_json
from icpo.tasks import Problem, get_task

MARKER = "warmup.json"
START = "start.json"


@dataclass(frozen=True)
class WarmupSettings:
    task: str
    difficulty: int
    num_examples: int = 2000
    mistake_rate: float = 0.5
    epochs: float = 40.0
    learning_rate: float = 3e-3
    batch_size: int = 64
    seed: int = 0
    hidden_size: int = 64
    num_layers: int = 2
    target_accuracy: float | None = None
    tolerance: float = 0.03
    check_every: int = 20

    def reaches_target(self, dev_accuracy: float) -> bool:
        """Whether a check at ``dev_accuracy`` ends the warm-up: at or above ``target - tolerance``."""
        return dev_accuracy >= self.target_accuracy - self.tolerance


def _stop_at_target(settings: WarmupSettings, dev_accuracy: Callable[[object], float]):
    """A TrainerCallback that checks ``dev_accuracy(model)`` every ``check_every`` steps, keeps a copy of
    the weights closest to the target, and stops training once the target is reached (see module doc)."""
    from transformers import TrainerCallback

    class StopAtTarget(TrainerCallback):
        def __init__(self):
            self.best: dict | None = None  # {"step", "dev_accuracy", "weights"}
            self.checks: list[dict[str, float]] = []

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % settings.check_every != 0 and state.global_step != state.max_steps:
                return
            accuracy = dev_accuracy(model)
            self.checks.append({"step": state.global_step, "dev_accuracy": accuracy})
            gap = abs(accuracy - settings.target_accuracy)
            if self.best is None or gap < abs(self.best["dev_accuracy"] - settings.target_accuracy):
                weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
                self.best = {"step": state.global_step, "dev_accuracy": accuracy, "weights": weights}
            if settings.reaches_target(accuracy):
                control.should_training_stop = True

    return StopAtTarget()


def read_start(folder: str | Path) -> dict[str, Any] | None:
    """The start a warm-up with a target accuracy chose: ``target``, ``sft_step``, ``dev_accuracy`` and
    ``reached`` (some check came to ``target - tolerance`` or above); None for a warm-up without a target."""
    path = Path(folder) / START
    if not path.exists():
        return None
    fix = f"delete {folder} to warm up again."
    record, recorded = read_json(path, fix), read_json(Path(folder) / MARKER, fix)
    try:
        settings = WarmupSettings(**recorded)
        return {
            "target": record["target_accuracy"],
            "sft_step": record["step"],
            "dev_accuracy": record["dev_accuracy"],
            "reached": any(settings.reaches_target(check["dev_accuracy"]) for check in record["checks"]),
        }
    except (TypeError, KeyError):
        raise ValueError(f"{path} or its {MARKER} lacks what a warm-up writes; {fix}") from None


def sft_rows(task_name: str, problems: list[Problem], mistake_rate: float, seed: int) -> list[dict[str, str]]:
    """Prompt-completion rows; where the task's slip applies, it replaces the solution with probability
    ``mistake_rate`` (reproducibly from ``seed``)."""
    if not 0.0 <= mistake_rate <= 1.0:
        raise ValueError(f"mistake_rate must be in [0, 1], got {mistake_rate!r}.")
    task, rng = get_task(task_name), random.Random(seed)
    rows = []
    for problem in problems:
        slip = task.mistake(problem, rng)
        use_slip = slip is not None and rng.random() < mistake_rate
        rows.append({"prompt": problem.prompt, "completion": slip if use_slip else problem.solution})
    return rows


def check_reusable(output_dir: str | Path, settings: WarmupSettings) -> bool:
    """True if ``output_dir`` holds a finished warm-up made with ``settings``, False if it holds none; a
    ValueError if it holds one made with other settings. Reads only."""
    marker = Path(output_dir) / MARKER
    if not marker.exists():
        return False
    recorded = read_json(marker, f"delete {output_dir} to warm up again.")
    if recorded != asdict(settings):
        raise ValueError(
            f"{output_dir} holds a warm-up made with other settings ({recorded}); "
            "delete that folder or choose another run folder."
        )
    return True


def warm_up(
    output_dir: str | Path,
    settings: WarmupSettings,
    problems: list[Problem],
    dev_accuracy: Callable[[object], float] | None = None,
) -> Path:
    """Build the tiny policy and fine-tune it on ``problems``; return the saved folder.

    With ``settings.target_accuracy``, ``dev_accuracy(model)`` (greedy accuracy on prompts outside the
    train and test sets) decides where to stop, and ``start.json`` records the choice. Reuses
    ``output_dir`` when it already holds a warm-up made with the same settings; raises if it holds one
    made with different settings (delete the folder to redo it).
    """
    target = settings.target_accuracy
    if target is not None and not 0 < target <= 1:
        raise ValueError(f"target_accuracy must be in (0, 1], got {target!r}.")
    if target is not None and dev_accuracy is None:
        raise ValueError("a warm-up with target_accuracy needs dev_accuracy(model) to measure it.")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from icpo.console import step_bar
    from icpo.tiny import build_tiny_policy

    output_dir = Path(output_dir)
    if check_reusable(output_dir, settings):
        return output_dir

    staging = output_dir.with_name(output_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    build_tiny_policy(
        staging, seed=settings.seed, hidden_size=settings.hidden_size, num_layers=settings.num_layers
    )
    tokenizer = AutoTokenizer.from_pretrained(staging)
    model = AutoModelForCausalLM.from_pretrained(staging)
    rows = sft_rows(settings.task, problems, settings.mistake_rate, settings.seed)
    config = SFTConfig(
        output_dir=str(staging / "trainer"),
        num_train_epochs=settings.epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=10,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
        seed=settings.seed,
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,  # 130k parameters: nothing to save (and TRL's alias warns)
        max_length=64,
        completion_only_loss=True,
        dataloader_num_workers=0,
    )
    stopper = None if target is None else _stop_at_target(settings, dev_accuracy)
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        callbacks=[] if stopper is None else [stopper],
    )
    step_bar(trainer, f"warm-up seed {settings.seed}")
    trainer.train()
    if stopper is not None:
        model.load_state_dict(stopper.best["weights"])
        start = {key: stopper.best[key] for key in ("step", "dev_accuracy")}
        start.update(target_accuracy=target, checks=stopper.checks)
        (staging / START).write_text(json.dumps(start, indent=1))
    trainer.save_model(str(staging))
    follow_umask(*staging.glob("*.safetensors"))  # safetensors writes them 0600
    tokenizer.save_pretrained(staging)
    shutil.rmtree(staging / "trainer", ignore_errors=True)
    (staging / MARKER).write_text(json.dumps(asdict(settings), indent=2))
    shutil.rmtree(output_dir, ignore_errors=True)
    os.replace(staging, output_dir)
    return output_dir
