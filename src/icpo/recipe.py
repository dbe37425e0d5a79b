"""``icpo train --config FILE.yaml``: one ICPO run described by a YAML recipe in TRL's style.

Every key of ``ICPOConfig`` (hence of ``GRPOConfig`` and ``TrainingArguments``) is accepted with its own
meaning, plus these keys of the recipe itself:

- ``model``: a Hugging Face folder holding a causal LM and its tokenizer, or ``tiny``: the tiny offline
  policy warmed up on ``task`` (cached in ``{output_dir}/warmup``);
- ``task`` (+ ``difficulty``, ``num_train``, ``seed`` from the config): a synthetic task of
  ``icpo.tasks``; or ``dataset``: a JSONL file with a ``prompt`` field and an answer field
  (``answer_field``, default ``answer``);
- ``reward_funcs``: names of reward functions (``{task}_correct``); default: the task's own;
- ``reward_noise``: flip each reward with this probability (0 by default).

Everything is checked before any training starts; a problem raises ``ValueError`` naming it.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

RECIPE_KEYS = (
    "model",
    "task",
    "difficulty",
    "num_train",
    "dataset",
    "answer_field",
    "reward_funcs",
    "reward_noise",
)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


@dataclass
class Recipe:
    model: str
    config: Any  # ICPOConfig
    rows: list[dict[str, str]]
    reward_names: list[str]
    reward_noise: float = 0.0
    task: str | None = None
    difficulty: int = 2


def reward_registry() -> dict[str, Any]:
    """Reward functions a recipe may name: ``{task}_correct`` for every synthetic task."""
    from icpo.tasks import TASKS, make_reward_function

    return {f"{name}_correct": make_reward_function(name) for name in TASKS}


def _unknown_key_message(key: str, known: list[str], path: Path) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; see ICPOConfig's fields or the keys in recipes/."
    return f"{path}: unknown key {key!r} (not an ICPOConfig option nor a recipe key){hint}"


def check_model_folder(model: str) -> None:
    """Raise a ValueError unless ``model`` is a folder holding a tokenizer (what from_pretrained needs)."""
    folder = Path(model)
    if folder.is_file():
        raise ValueError(f"model {model!r} is a file; give the model's folder (the one holding config.json).")
    if not folder.is_dir():
        raise ValueError(f"model folder {model!r} does not exist; give a Hugging Face model folder.")
    if not any((folder / name).exists() for name in TOKENIZER_FILES):
        raise ValueError(
            f"model folder {model!r} has no tokenizer ({' or '.join(TOKENIZER_FILES)}); "
            "save one there with tokenizer.save_pretrained(folder)."
        )


def read_dataset_rows(path: Path, answer_field: str) -> list[dict[str, str]]:
    """Rows of a JSONL file as {prompt, answer}; raises naming the first row that lacks a field."""
    if not path.is_file():
        raise ValueError(f"dataset file {str(path)!r} does not exist.")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        for name in ("prompt", answer_field):
            if name not in row:
                raise ValueError(
                    f"{path} row {number} has no {name!r} field (fields: {sorted(row)}); "
                    f"set answer_field to the field holding the gold answer."
                )
        rows.append({"prompt": str(row["prompt"]), "answer": str(row[answer_field])})
    if not rows:
        raise ValueError(f"dataset file {path} holds no rows.")
    return rows


def load_recipe(path: Path) -> Recipe:
    """Parse and check a YAML recipe; nothing is trained or built here."""
    import yaml

    from icpo.tasks import check_difficulty, get_task, rl_rows, train_test_problems
    from icpo.trl import ICPOConfig

    if not path.is_file():
        raise ValueError(f"recipe file {str(path)!r} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe is a mapping of keys to values, got {type(raw).__name__}.")
    config_keys = [f.name for f in fields(ICPOConfig) if f.init]
    for key in raw:
        if key not in config_keys and key not in RECIPE_KEYS:
            raise ValueError(_unknown_key_message(key, [*config_keys, *RECIPE_KEYS], path))
    if "model" not in raw:
        raise ValueError(f"{path}: missing key 'model' (a Hugging Face folder, or 'tiny').")
    if ("task" in raw) == ("dataset" in raw):
        raise ValueError(f"{path}: give exactly one of 'task' (synthetic) or 'dataset' (a JSONL file).")

    task, difficulty = raw.get("task"), int(raw.get("difficulty", 2))
    seed = int(raw.get("seed", 0))
    if task is not None:
        check_difficulty(get_task(task), difficulty)
        train, _ = train_test_problems(task, int(raw.get("num_train", 2000)), 1, seed, difficulty)
        rows = rl_rows(train)
    else:
        rows = read_dataset_rows(Path(raw["dataset"]), raw.get("answer_field", "answer"))

    if raw["model"] == "tiny":
        if task is None:
            raise ValueError(f"{path}: model 'tiny' is warmed up on a synthetic task; add a 'task' key.")
    else:
        check_model_folder(str(raw["model"]))

    registry = reward_registry()
    reward_names = raw.get("reward_funcs") or ([f"{task}_correct"] if task else [])
    if not reward_names:
        raise ValueError(
            f"{path}: a dataset recipe needs 'reward_funcs' (one or more of {sorted(registry)})."
        )
    for name in reward_names:
        if name not in registry:
            raise ValueError(f"{path}: unknown reward function {name!r}; choose from {sorted(registry)}.")

    config = ICPOConfig(**{k: v for k, v in raw.items() if k in config_keys})
    return Recipe(
        model=str(raw["model"]),
        config=config,
        rows=rows,
        reward_names=list(reward_names),
        reward_noise=float(raw.get("reward_noise", 0.0)),
        task=task,
        difficulty=difficulty,
    )


def run_recipe(recipe: Recipe) -> dict[str, Any]:
    """Train as the recipe says, save the policy to ``output_dir``; return the final logged metrics."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icpo.tasks import generate_problems, with_reward_noise
    from icpo.trl import ICPOTrainer
    from icpo.warmup import WarmupSettings, warm_up

    output_dir = Path(recipe.config.output_dir)
    model_path = Path(recipe.model)
    if recipe.model == "tiny":
        problems = generate_problems(recipe.task, len(recipe.rows), recipe.config.seed, recipe.difficulty)
        settings = WarmupSettings(
            task=recipe.task,
            difficulty=recipe.difficulty,
            num_examples=len(problems),
            seed=recipe.config.seed,
        )
        model_path = warm_up(output_dir / "warmup", settings, problems)
    registry = reward_registry()
    rewards = [
        with_reward_noise(registry[name], recipe.reward_noise, recipe.config.seed + index)
        for index, name in enumerate(recipe.reward_names)
    ]
    trainer = ICPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_path),
        reward_funcs=rewards,
        args=recipe.config,
        train_dataset=Dataset.from_list(recipe.rows),
        processing_class=AutoTokenizer.from_pretrained(model_path),
    )
    trainer.train()
    trainer.save_model(str(output_dir))
    step_logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    return step_logs[-1] if step_logs else {}
