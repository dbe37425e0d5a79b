"""``icpo train --config FILE.yaml [--KEY VALUE ...]``: one ICPO run described by a YAML recipe, TRL's style.

Every key of ``ICPOConfig`` (hence of ``GRPOConfig`` and ``TrainingArguments``) is accepted with its own
meaning, plus the recipe's own keys, each described in ``RECIPE_KEY_HELP`` (``icpo train --help`` lists
them). ``output_dir`` is read as TRL reads it, relative to the current folder (not to the recipe file);
the command prints its absolute path when the run ends.

``resume_from_checkpoint`` is read as TRL's scripts read it: ``true`` continues from the newest complete
``checkpoint-N`` folder of ``output_dir`` (a run leaves them with ``save_strategy: steps``; a newer one cut
short, e.g. by a full disk, is named in one line and passed over), or give the folder itself.

One output_dir holds one run: its settings are recorded in ``output_dir/icpo_recipe.json``. A rerun with
other settings is refused, and so is a rerun without ``resume_from_checkpoint`` of a finished run or of a
stopped one that left a checkpoint (pass another output_dir, or delete it, to start afresh). A resumed run keeps its recorded settings, except that
``max_steps`` (or ``num_train_epochs``) may change to train on; any other override is refused, not silently
lost to the checkpoint's optimiser and scheduler state. Keys that only change what is logged or where
(``NOT_COMPARED``) may always change.

A flag ``--KEY VALUE`` after ``--config`` overrides KEY of the file (values read as YAML: ``--report_to
[]``). Not ``HfArgumentParser``/``TrlParser``: they hand the file's values to the dataclass unchecked
(``max_steps: abc`` passes) and know nothing of the recipe's own keys.

Everything is checked before any training starts or anything is written; a problem raises
``ValueError`` naming the file, the key and the fix.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import os
import sys
import textwrap
import types
import typing
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from icpo.runfolder import (
    FolderInUse,
    follow_umask,
    locked_folder,
    numbered_jsonl,
    open_for_append,
    read_json,
    write_atomically,
    write_json_atomically,
)

RECIPE_KEY_HELP = {
    "model": "a Hugging Face model folder or hub id, a model preset (tiny, smollm2-135m-instruct), or tiny "
    "= the 130k-parameter offline policy, warmed up on `task` first (cached in {output_dir}/warmup)",
    "task": "a synthetic task of icpo.tasks (addition, countdown); give task or dataset, not both",
    "difficulty": "the task's difficulty (addition: digits; countdown: how many numbers); default 2",
    "num_train": "how many training prompts (task: generated, default 2000; dataset: the first N rows)",
    "dataset": "wordproblems (MAWPS + SVAMP + ASDiv), mawps, svamp or asdiv, split into train and "
    "held-out; or a JSONL file with a `prompt` (text or chat messages) and an answer field",
    "answer_field": "the JSONL dataset's gold-answer field (default answer)",
    "held_out_fraction": "the word-problem share held out of training, by near-duplicate group (default "
    "0.2); icpo eval --recipe evaluates it",
    "split_seed": "the seed of the train/held-out split (default 0)",
    "reward_funcs": "a list of reward names: {task}_correct, math_reward, number_reward, choice_reward, "
    "boxed_format_reward (default: the task's own)",
    "reward_noise": "flip each reward with this probability, reproducibly (default 0)",
    "trainable_layers": "train only the top N decoder layers and the final norm (default: every layer)",
}
RECIPE_KEYS = tuple(RECIPE_KEY_HELP)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
WORD_PROBLEM_DATASETS = {
    "wordproblems": ["mawps", "svamp", "asdiv"],
    "mawps": ["mawps"],
    "svamp": ["svamp"],
    "asdiv": ["asdiv"],
}
LIBRARY_REWARDS = ("math_reward", "number_reward", "choice_reward", "boxed_format_reward")


@dataclass
class Recipe:
    model: str
    config: Any  # ICPOConfig
    rows: list[dict[str, Any]]
    reward_names: list[str]
    reward_noise: float = 0.0
    task: str | None = None
    difficulty: int = 2
    held_out: list[dict[str, Any]] = field(default_factory=list)  # word-problem presets only
    trainable_layers: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # what output_dir/icpo_recipe.json records


def reward_registry() -> dict[str, Any]:
    """Reward functions a recipe may name: ``{task}_correct`` for every synthetic task, and the
    verifiable rewards of ``icpo.rewards``."""
    from icpo import rewards
    from icpo.tasks import TASKS, make_reward_function

    registry = {f"{name}_correct": make_reward_function(name) for name in TASKS}
    registry.update({name: getattr(rewards, name) for name in LIBRARY_REWARDS})
    return registry


def _unknown_key_message(key: str, known: list[str], where: str) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "; see ICPOConfig's fields or the keys in recipes/."
    return f"{where}: unknown key {key!r} (not an ICPOConfig option nor a recipe key){hint}"


def check_model_folder(model: str) -> None:
    """Raise a ValueError unless ``model`` is a folder holding a config, weights and a tokenizer (what
    from_pretrained needs), its JSON files readable and its safetensors whole."""
    from icpo.models import WEIGHT_PATTERNS, check_safetensors

    folder = Path(model)
    if folder.is_file():
        raise ValueError(f"model {model!r} is a file; give the model's folder (the one holding config.json).")
    if not folder.is_dir():
        raise ValueError(f"model folder {model!r} does not exist; give a Hugging Face model folder.")
    if not (folder / "config.json").is_file():
        raise ValueError(f"model folder {model!r} has no config.json; give a folder save_pretrained wrote.")
    if not any(any(folder.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        raise ValueError(
            f"model folder {model!r} has no weights ({', '.join(WEIGHT_PATTERNS)}); give a folder "
            "save_pretrained wrote (a checkpoint-N folder of a run holds them too)."
        )
    if not any((folder / name).exists() for name in TOKENIZER_FILES):
        raise ValueError(
            f"model folder {model!r} has no tokenizer ({' or '.join(TOKENIZER_FILES)}); "
            "save one there with tokenizer.save_pretrained(folder)."
        )
    fix = "the folder is damaged: save the model there again (or copy it whole)."
    for name in ("config.json", *TOKENIZER_FILES):
        if (folder / name).is_file() and not isinstance(read_json(folder / name, fix), dict):
            raise ValueError(f"{folder / name} is not a JSON object; {fix}")
    for weights in folder.glob("*.safetensors"):
        check_safetensors(weights)


def check_model(model: str) -> None:
    """A model is a folder that exists (``check_model_folder``), or a hub id ``org/name``: with
    HF_HUB_OFFLINE set, one found in the local hub cache. Raises a one-line ValueError otherwise."""
    path = Path(model).expanduser()
    if path.exists():
        check_model_folder(str(path))
        return
    looks_like_hub_id = model.count("/") == 1 and not model.startswith((".", "/", "~"))
    if not looks_like_hub_id:
        raise ValueError(
            f"model folder {model!r} does not exist (relative to {Path.cwd()}); give the path of a "
            "Hugging Face model folder."
        )
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise ValueError(
                f"model {model!r} is neither a folder here (relative to {Path.cwd()}) nor a hub model in "
                "the local cache, and HF_HUB_OFFLINE is set; give the path of a model folder."
            )


def _layer_count(model: str) -> int | None:
    """The decoder layer count in a model folder's config.json (None when there is no folder to read)."""
    path = Path(model).expanduser() / "config.json"
    if not path.is_file():
        return None
    config = json.loads(path.read_text(encoding="utf-8"))
    config = config.get("text_config", config)  # multimodal configs nest the language model's
    return config.get("num_hidden_layers")


def _is_chat(prompt: Any) -> bool:
    return (
        isinstance(prompt, list)
        and bool(prompt)
        and all(isinstance(m, dict) and isinstance(m.get("role"), str) and "content" in m for m in prompt)
    )


def read_dataset_rows(path: Path, answer_field: str) -> list[dict[str, Any]]:
    """Rows of a JSONL file as {prompt, answer}: a text prompt stays text, a list of chat messages
    (``{"role", "content"}``) stays a chat prompt; raises naming the file and line of the first bad row."""
    if path.is_dir():
        raise ValueError(f"dataset {str(path)!r} is a folder; give a JSONL file (one JSON object a line).")
    if not path.is_file():
        raise ValueError(f"dataset file {str(path)!r} does not exist.")
    rows = []
    for number, row in numbered_jsonl(path, keep_unterminated=True):
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number} is not a JSON object; write one {{...}} object per line.")
        for name in ("prompt", answer_field):
            if name not in row:
                raise ValueError(
                    f"{path}:{number} has no {name!r} field (fields: {sorted(row)}); "
                    f"set answer_field to the field holding the gold answer."
                )
        prompt = row["prompt"]
        if not isinstance(prompt, str) and not _is_chat(prompt):
            raise ValueError(
                f"{path}:{number}: 'prompt' is neither text nor a list of chat messages "
                '({"role": ..., "content": ...}); write one of the two.'
            )
        rows.append({"prompt": prompt, "answer": str(row[answer_field])})
    if not rows:
        raise ValueError(f"dataset file {path} holds no rows.")
    return rows


# --- value checks ----------------------------------------------------------------------------------


def _scalar(value: Any, kind: type) -> Any:
    """``value`` as ``kind`` (int, float or bool); a string is parsed; raises ValueError otherwise."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif not isinstance(value, bool):
        if kind is int and isinstance(value, int):
            return value
        if kind is float and isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return kind(value.strip())  # "1e-5" (YAML reads it as text), "12"; ValueError when not a number
    raise ValueError(value)


def _allowed_scalars(annotation: Any) -> tuple[list[type], bool]:
    """The int/float/bool members of a field's type and whether anything else (None, str, ...) is allowed."""
    members = (
        typing.get_args(annotation)
        if typing.get_origin(annotation) in (typing.Union, types.UnionType)
        else (annotation,)
    )
    scalars = [m for m in members if m in (int, float, bool)]
    return scalars, len(scalars) < len(members)


def checked_value(where: str, key: str, value: Any, annotation: Any) -> Any:
    """``value`` converted to the field's int/float/bool type; a ValueError naming ``key`` when it is not
    one. Fields of other types take the value as written (TrainingArguments checks them)."""
    scalars, others = _allowed_scalars(annotation)
    if not scalars or (value is None and others):
        return value
    for kind in scalars:
        try:
            return _scalar(value, kind)
        except ValueError:
            continue
    if others and isinstance(value, str):
        return value  # e.g. include_num_input_tokens_seen: str | bool
    wanted = " or ".join(k.__name__ for k in scalars)
    example = {"int": "8", "float": "1.0e-5", "bool": "true"}[scalars[0].__name__]
    raise ValueError(
        f"{where}: {key}: {value!r} is not {'an' if wanted[0] == 'i' else 'a'} {wanted}; write e.g. {key}: {example}."
    )


RECIPE_TYPES: dict[str, Any] = {
    "difficulty": int,
    "num_train": int,
    "held_out_fraction": float,
    "split_seed": int,
    "reward_noise": float,
    "trainable_layers": int,
}


# Bounds the libraries do not check before work (or check only mid-run, in a traceback): (low, high, what
# to write); a None bound is open. max_steps also takes -1 (train num_train_epochs instead).
RANGES: dict[str, tuple[float | None, float | None, str]] = {
    "per_device_train_batch_size": (1, None, "an integer >= 1"),
    "gradient_accumulation_steps": (1, None, "an integer >= 1"),
    "max_completion_length": (1, None, "an integer >= 1"),
    "num_train": (1, None, "an integer >= 1"),
    "num_train_epochs": (1e-9, None, "a number > 0"),
    "seed": (0, 2**32 - 1, "an integer in [0, 2**32 - 1]"),
    "temperature": (1e-9, None, "a number > 0"),
    "top_p": (1e-9, 1, "a number in (0, 1]"),
    "logging_steps": (1e-9, None, "a number > 0"),
    "save_steps": (1e-9, None, "a number > 0"),
    "beta": (0, None, "a number >= 0"),
    "epsilon": (1e-9, None, "a number > 0"),
    "warmup_ratio": (0, 1, "a number in [0, 1]"),
    "held_out_fraction": (1e-9, 1 - 1e-9, "a number in (0, 1)"),
}


def _check_range(where: str, key: str, value: Any) -> None:
    """A one-line ValueError when ``key``'s number lies outside ``RANGES`` (max_steps: -1 or >= 1)."""
    if key == "max_steps" and isinstance(value, int) and value != -1 and value < 1:
        raise ValueError(f"{where}: max_steps: {value} must be >= 1 (or -1 to train num_train_epochs).")
    if key not in RANGES or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    low, high, wanted = RANGES[key]
    if (low is not None and not value >= low) or (high is not None and not value <= high):
        raise ValueError(f"{where}: {key}: {value!r} is out of range; write {wanted}.")


def parse_overrides(tokens: list[str]) -> dict[str, Any]:
    """``["--learning_rate", "1e-5", "--report_to=[]"]`` -> ``{"learning_rate": "1e-5", "report_to": []}``
    (values read as YAML)."""
    import yaml

    overrides: dict[str, Any] = {}
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if not token.startswith("--") or len(token) == 2:
            raise ValueError(
                f"unexpected argument {token!r}; overrides are written --KEY VALUE (e.g. --max_steps 10)."
            )
        key, equals, value = token[2:].partition("=")
        if not equals:
            if position + 1 >= len(tokens) or tokens[position + 1].startswith("--"):
                raise ValueError(f"--{key} has no value; write --{key} VALUE.")
            position += 1
            value = tokens[position]
        try:
            overrides[key.replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            overrides[key.replace("-", "_")] = value
        position += 1
    return overrides


def _reward_names(raw: dict[str, Any], task: str | None, registry: dict[str, Any], where: str) -> list[str]:
    names = raw.get("reward_funcs")
    if names is None:
        names = [f"{task}_correct"] if task else []
    if isinstance(names, str) or not isinstance(names, list):
        raise ValueError(
            f"{where}: reward_funcs must be a list of names; write reward_funcs: [{names}] (with the brackets)."
        )
    if not names:
        raise ValueError(f"{where}: a dataset recipe needs 'reward_funcs' (a list of {sorted(registry)}).")
    for name in names:
        if name not in registry:
            raise ValueError(f"{where}: unknown reward function {name!r}; choose from {sorted(registry)}.")
    return names


def word_problem_split(
    raw: dict[str, Any], data_dir: str | Path | None = None
) -> tuple[list[Any], list[Any]]:
    """(train, held-out) WordProblems of a recipe whose ``dataset`` is a word-problem preset: split by
    ``split_seed`` with ``held_out_fraction`` held out, the first ``num_train`` training problems. The one
    split both ``icpo train`` and ``icpo eval --recipe`` use."""
    from icpo.wordproblems import load_word_problems, split_word_problems

    problems = load_word_problems(WORD_PROBLEM_DATASETS[str(raw["dataset"])], data_dir)
    train, held_out = split_word_problems(
        problems, raw.get("held_out_fraction", 0.2), raw.get("split_seed", 0)
    )
    return (train[: raw["num_train"]] if "num_train" in raw else train), held_out


def recipe_word_problems(path: Path, data_dir: str | Path | None = None) -> tuple[str, list[Any], list[Any]]:
    """(dataset name, train, held-out) of the word-problem recipe at ``path``, split as its training run
    splits it (``word_problem_split``); a ValueError when the recipe has no word-problem dataset."""
    import yaml

    if not path.is_file():
        raise ValueError(f"recipe file {str(path)!r} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(raw, dict) or str(raw.get("dataset")) not in WORD_PROBLEM_DATASETS:
        raise ValueError(
            f"{path}: only a recipe with a word-problem dataset ({', '.join(WORD_PROBLEM_DATASETS)}) has a "
            "held-out split to evaluate; evaluate other data with --benchmarks."
        )
    for key in ("held_out_fraction", "split_seed", "num_train"):
        if key in raw:
            raw[key] = checked_value(str(path), key, raw[key], RECIPE_TYPES[key])
    return (str(raw["dataset"]), *word_problem_split(raw, data_dir))


def _dataset_rows(raw: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train rows, held-out rows) of the recipe's ``dataset``."""
    from icpo.wordproblems import chat_rows

    dataset = str(raw["dataset"])
    if dataset in WORD_PROBLEM_DATASETS:
        train, held_out = word_problem_split(raw)
        return chat_rows(train), chat_rows(held_out)
    path = Path(dataset)
    if path.suffix != ".jsonl" and not path.exists():
        raise ValueError(
            f"{where}: dataset {dataset!r} is neither a word-problem preset ({', '.join(WORD_PROBLEM_DATASETS)}) "
            "nor a JSONL file."
        )
    return read_dataset_rows(path, raw.get("answer_field", "answer")), []


CHECKPOINT_PREFIX = "checkpoint-"


def check_services(config: Any, where: str) -> None:
    """A one-line ValueError, before any model is loaded, for a service the run cannot reach: a
    ``report_to`` backend that is not installed, or ``push_to_hub`` while HF_HUB_OFFLINE is set or no
    Hugging Face token is found."""
    from transformers.integrations import get_available_reporting_integrations

    missing = [name for name in config.report_to if name not in get_available_reporting_integrations()]
    if missing:
        raise ValueError(
            f"{where}: report_to {missing} is not installed here (pip install {' '.join(missing)}), or drop "
            "it from report_to (e.g. --report_to '[tensorboard]')."
        )
    if config.push_to_hub:
        from huggingface_hub import constants, get_token

        if constants.HF_HUB_OFFLINE:
            raise ValueError(
                f"{where}: push_to_hub needs the Hub, and HF_HUB_OFFLINE is set; unset it or drop push_to_hub."
            )
        if get_token() is None:
            raise ValueError(
                f"{where}: push_to_hub needs a Hugging Face token; run `hf auth login` or drop push_to_hub."
            )


def _checkpoint_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be resumed from (None when it is a complete checkpoint): the trainer writes
    trainer_state.json last, so a save cut short lacks it; its weights, and the optimiser, scheduler and
    RNG states torch saved (zip archives), must be whole too."""
    import zipfile

    from icpo.models import check_safetensors

    state = folder / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (its save was cut short)"
    try:
        record = json.loads(state.read_text(encoding="utf-8"))
        whole = isinstance(record.get("global_step"), int) and isinstance(record.get("log_history"), list)
    except (ValueError, AttributeError):
        whole = False
    if not whole:
        return "its trainer_state.json is damaged (not JSON with a global_step and a log_history)"
    weights = list(folder.glob("*.safetensors"))
    if not weights and not any(folder.glob("*.bin")):
        return "no weights"
    for path in weights:
        try:
            check_safetensors(path)
        except ValueError:
            return f"{path.name} is cut short or damaged"
    for path in sorted([*folder.glob("*.pt"), *folder.glob("*.pth"), *folder.glob("*.bin")]):
        if not zipfile.is_zipfile(path):
            return f"{path.name} is cut short or damaged"
    return None


def _checkpoint_to_resume(value: Any, output_dir: str, where: str) -> str | None:
    """``resume_from_checkpoint`` as TRL's scripts read it: true = the newest complete ``checkpoint-N``
    folder of ``output_dir`` (each newer, broken one named in one line on stderr), false/absent = none,
    otherwise a checkpoint folder that must be complete."""
    if value is None or str(value).lower() == "false":
        return None
    if str(value).lower() != "true":
        problem = _checkpoint_problem(Path(value)) if Path(value).is_dir() else "no such folder"
        if problem:
            raise ValueError(
                f"{where}: resume_from_checkpoint: {value!r} is not a checkpoint folder to resume ({problem}); "
                "give a complete checkpoint-N folder, or true for the newest one in output_dir."
            )
        return str(value)
    folder = Path(output_dir)
    numbered = [p for p in folder.glob(f"{CHECKPOINT_PREFIX}*") if p.name[len(CHECKPOINT_PREFIX) :].isdigit()]
    broken = []
    for checkpoint in sorted(numbered, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]), reverse=True):
        problem = _checkpoint_problem(checkpoint)
        if problem is None:
            for name, why in broken:
                print(f"icpo train: passing over {name}: {why}; resuming from {checkpoint}.", file=sys.stderr)
            return str(checkpoint)
        broken.append((checkpoint, problem))
    found = f" ({'; '.join(f'{name.name}: {why}' for name, why in broken)})" if broken else ""
    raise ValueError(
        f"{where}: resume_from_checkpoint: true, but {output_dir} holds no complete checkpoint-N folder{found}; "
        "remove the key to start afresh (a run leaves checkpoints with save_strategy: steps)."
    )


RUN_RECORD = "icpo_recipe.json"
# Keys a rerun may always change: where and how progress is reported, never what is trained.
NOT_COMPARED = (
    "output_dir",
    "resume_from_checkpoint",
    "report_to",
    "logging_dir",
    "run_name",
    "disable_tqdm",
)
# Keys a resumed run may change: how long it trains on.
RESUME_MAY_CHANGE = ("max_steps", "num_train_epochs")
METRICS_FILE = "metrics.jsonl"
RUN_OUTPUTS = (METRICS_FILE, "model.safetensors", "trainer_state.json")


def _check_previous_run(output_dir: Path, settings: dict[str, Any], resuming: bool, where: str) -> None:
    """Refuse (one-line ValueError) a run that would overwrite or mix with the run ``output_dir`` holds:
    one with other settings (a resumed run may change ``RESUME_MAY_CHANGE``), a finished one, or a stopped
    one with a checkpoint to continue from, rerun without resuming, or run files whose settings were not
    recorded. A stopped run without checkpoints may start again (it lost nothing it could resume)."""
    record_path = output_dir / RUN_RECORD
    afresh = f"to start afresh, give another output_dir or delete {output_dir}"
    if not record_path.exists():
        used = [name for name in RUN_OUTPUTS if (output_dir / name).exists()]
        used += [p.name for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*")]
        if used:
            raise ValueError(
                f"{where}: output_dir {output_dir} holds a training run ({', '.join(sorted(used)[:3])}) whose "
                f"settings were not recorded ({RUN_RECORD}); {afresh}."
            )
        return
    record = read_json(record_path, f"{afresh}.")
    try:
        previous, finished = record["settings"], record["finished"]
        if not isinstance(previous, dict) or not isinstance(finished, bool):
            raise TypeError
    except (KeyError, TypeError):
        raise ValueError(f"{record_path} is damaged (not the run record icpo writes); {afresh}.") from None
    free = NOT_COMPARED + (RESUME_MAY_CHANGE if resuming else ())
    # A recipe key written in one run and not the other is a change; an ICPOConfig field only one record
    # has was added or removed by a library upgrade, and is left out.
    compared = ({*previous, *settings} & set(RECIPE_KEYS)) | (previous.keys() & settings.keys())
    changed = {
        key: (previous.get(key), settings.get(key))
        for key in sorted(compared - set(free))
        if previous.get(key) != settings.get(key)
    }
    if changed:
        allowed = f" (a resumed run may change only {' and '.join(RESUME_MAY_CHANGE)})" if resuming else ""
        raise ValueError(
            f"{where}: output_dir {output_dir} holds a run with other settings {changed} (old, new){allowed}; "
            f"rerun with its settings, or {afresh}."
        )
    if finished and not resuming:
        raise ValueError(
            f"{where}: output_dir {output_dir} holds a finished run of this recipe; to train it further pass "
            f"--resume_from_checkpoint true and a larger --max_steps, or {afresh}."
        )
    checkpoints = [p for p in output_dir.glob(f"{CHECKPOINT_PREFIX}*") if _checkpoint_problem(p) is None]
    if not resuming and checkpoints:
        raise ValueError(
            f"{where}: output_dir {output_dir} holds a stopped run of this recipe with checkpoints "
            f"({', '.join(sorted(p.name for p in checkpoints)[-2:])}); continue it with "
            f"--resume_from_checkpoint true, or {afresh}."
        )


def load_recipe(path: Path, overrides: dict[str, Any] | None = None) -> Recipe:
    """Parse and check a YAML recipe (``overrides`` replace its keys); nothing is trained or written here."""
    import yaml

    from icpo.command import check_output_folder
    from icpo.models import PRESETS as MODEL_PRESETS
    from icpo.models import check_preset_available, preset_folder
    from icpo.tasks import check_difficulty, get_task, rl_rows, train_test_problems
    from icpo.trl import ICPOConfig

    if path.is_dir():
        raise ValueError(f"recipe {str(path)!r} is a folder; give a YAML file (see recipes/).")
    if not path.is_file():
        raise ValueError(f"recipe file {str(path)!r} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text (byte {error.start}); save the recipe as UTF-8."
        ) from None
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a recipe is a mapping of keys to values, got {type(raw).__name__}.")
    overrides = overrides or {}
    raw = {**raw, **overrides}
    where = str(path)
    if raw.get("bf16") == "auto":  # the recipe's fast path: bf16 where this machine computes it fast
        raw["bf16"] = automatic_bf16(bool(raw.get("use_cpu", False)))
    hints = typing.get_type_hints(ICPOConfig)
    config_keys = [f.name for f in fields(ICPOConfig) if f.init]
    for key in raw:
        source = f"--{key} (on the command line)" if key in overrides else where
        if key not in config_keys and key not in RECIPE_KEYS:
            raise ValueError(_unknown_key_message(key, [*config_keys, *RECIPE_KEYS], source))
        annotation = hints[key] if key in config_keys else RECIPE_TYPES.get(key)
        if annotation is not None:
            raw[key] = checked_value(source, key, raw[key], annotation)
        _check_range(source, key, raw[key])
    if "model" not in raw:
        raise ValueError(f"{path}: missing key 'model' (a Hugging Face folder, a preset, or 'tiny').")
    if ("task" in raw) == ("dataset" in raw):
        raise ValueError(
            f"{path}: give exactly one of 'task' (synthetic) or 'dataset' (word problems or JSONL)."
        )
    if not 0.0 <= raw.get("reward_noise", 0.0) <= 1.0:
        raise ValueError(
            f"{path}: reward_noise: {raw['reward_noise']!r} is not a probability; write a value in [0, 1]."
        )
    if raw.get("trainable_layers", 1) < 1:
        raise ValueError(f"{path}: trainable_layers must be at least 1; remove the key to train every layer.")
    output_dir = check_output_folder(str(raw.get("output_dir", "trainer_output")), f"{where}: output_dir")
    raw["resume_from_checkpoint"] = _checkpoint_to_resume(
        raw.get("resume_from_checkpoint"), str(output_dir), where
    )

    task, difficulty = raw.get("task"), raw.get("difficulty", 2)
    held_out: list[dict[str, Any]] = []
    if task is not None:
        check_difficulty(get_task(task), difficulty)
        train, _ = train_test_problems(task, raw.get("num_train", 2000), 1, raw.get("seed", 0), difficulty)
        rows = rl_rows(train)
    else:
        rows, held_out = _dataset_rows(raw, where)

    model = str(raw["model"])
    if model == "tiny":
        if task is None:
            raise ValueError(f"{path}: model 'tiny' is warmed up on a synthetic task; add a 'task' key.")
    elif model in MODEL_PRESETS:
        check_preset_available(model)
    else:
        try:
            check_model(model)
        except ValueError as error:
            raise ValueError(f"{where}: model: {error}") from None

    reward_names = _reward_names(raw, task, reward_registry(), where)
    with warnings.catch_warnings(record=True) as caught:  # shown only when the config is valid
        warnings.simplefilter("always")
        try:
            config = ICPOConfig(**{k: v for k, v in raw.items() if k in config_keys})
        except (ValueError, TypeError) as error:
            raise ValueError(f"{where}: {' '.join(str(error).split())}") from None
    for warning in caught:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    try:
        config.check_training_prompts(len(rows))
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None
    check_services(config, where)
    # Every setting in force: the recipe's own keys as written (the rewards as resolved) and every
    # ICPOConfig field, defaults included, so leaving a key out and writing its default are the same run.
    settings = {key: raw[key] for key in RECIPE_KEYS if key in raw} | {"reward_funcs": list(reward_names)}
    settings = json.loads(json.dumps({**settings, **config.to_dict()}, default=str))  # as the file reads back
    settings.pop("resume_from_checkpoint")
    _check_previous_run(output_dir, settings, config.resume_from_checkpoint is not None, where)
    recipe = Recipe(
        model=model,
        config=config,
        rows=rows,
        reward_names=list(reward_names),
        reward_noise=raw.get("reward_noise", 0.0),
        task=task,
        difficulty=difficulty,
        held_out=held_out,
        trainable_layers=raw.get("trainable_layers"),
        settings=settings,
    )
    layers = (
        _tiny_warm_up_plan(recipe)[1].num_layers
        if model == "tiny"
        else _layer_count(preset_folder(model) if model in MODEL_PRESETS else model)
    )
    if recipe.trainable_layers is not None and layers is not None and recipe.trainable_layers > layers:
        raise ValueError(
            f"{where}: trainable_layers: {recipe.trainable_layers}, but the model has {layers} decoder layers; "
            "give at most that, or remove the key to train every layer."
        )
    if model == "tiny":
        from icpo.warmup import check_reusable

        warmup_dir, warm_up_settings, _ = _tiny_warm_up_plan(recipe)
        # a warm-up there made with other settings, or damaged, is one line now, not after the lock
        if not check_reusable(warmup_dir, warm_up_settings) and launched_processes() > 1:
            raise ValueError(
                f"{path}: model 'tiny' is warmed up by a single process, and this launch has "
                f"{launched_processes()}. Run the recipe once without `accelerate launch` (it warms up into "
                f"{warmup_dir}), then launch it again."
            )
    return recipe


def automatic_bf16(use_cpu: bool) -> bool:
    """``bf16: auto``: True on a GPU with bf16 or a CPU with bf16 arithmetic in hardware (AMX or
    AVX-512 bf16: ``icpo.static_sampler.cpu_has_bf16_arithmetic``), else False."""
    import torch

    from icpo.static_sampler import preferred_dtype

    device = "cuda" if torch.cuda.is_available() and not use_cpu else "cpu"
    return preferred_dtype(device) == torch.bfloat16


def launched_processes() -> int:
    """How many processes `accelerate launch`/`torchrun` started for this run (``WORLD_SIZE``; 1 if unlaunched)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _is_first_process() -> bool:
    """True in the launch's global rank 0 (``RANK``), or when nothing launched this process."""
    return os.environ.get("RANK", "0") == "0"


def _tiny_warm_up_plan(recipe: Recipe) -> tuple[Path, Any, list[Any]]:
    """Where the tiny policy of a ``model: tiny`` recipe is warmed up, its WarmupSettings and problems."""
    from icpo.tasks import generate_problems
    from icpo.warmup import WarmupSettings

    assert recipe.task is not None
    problems = generate_problems(recipe.task, len(recipe.rows), recipe.config.seed, recipe.difficulty)
    settings = WarmupSettings(
        task=recipe.task, difficulty=recipe.difficulty, num_examples=len(problems), seed=recipe.config.seed
    )
    return Path(recipe.config.output_dir) / "warmup", settings, problems


def _step_logs(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-step entries of a trainer's log history (the final summary entry has no reward)."""
    return [entry for entry in log_history if "reward" in entry]


def _run_files_callback(path: Path) -> Any:
    """A TrainerCallback that keeps the metrics file ``path`` up to date on the first process, so a killed
    run keeps every step logged before the kill: at the start the file is rewritten (atomically) from the
    trainer's log history, which on a resumed run ends at its checkpoint; then each step's entry is
    appended as it is logged. Each checkpoint's weights get the umask's mode (safetensors writes 0600)."""
    from transformers import TrainerCallback

    class RunFiles(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                checkpoint = Path(args.output_dir) / f"{CHECKPOINT_PREFIX}{state.global_step}"
                follow_umask(*checkpoint.glob("*.safetensors"))

        def on_train_begin(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                lines = "".join(json.dumps(entry) + "\n" for entry in _step_logs(state.log_history))
                write_atomically(path, lines)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and _step_logs(state.log_history[-1:]):
                with open_for_append(path) as handle:
                    handle.write(json.dumps(state.log_history[-1]) + "\n")

    return RunFiles()


def run_recipe(recipe: Recipe) -> dict[str, Any]:
    """Train as the recipe says, save the policy to ``output_dir`` (locked for the run) with every logged
    step in ``output_dir/metrics.jsonl`` (rewritten after each log, so a killed run keeps its steps) and
    the recipe's settings in ``output_dir/icpo_recipe.json`` (marked finished once the policy is saved);
    return the final step's metrics.

    Under ``accelerate launch`` each process calls this: the first holds the lock and writes the files, and
    every process leaves its process group once the policy is saved."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from icpo.models import resolve_model, train_only_top_layers
    from icpo.tasks import with_reward_noise
    from icpo.trl import ICPOTrainer
    from icpo.warmup import warm_up

    output_dir = Path(recipe.config.output_dir)
    # Under `accelerate launch` every process runs this on the same folder: the first one holds the lock.
    with locked_folder(output_dir) if _is_first_process() else contextlib.nullcontext(output_dir):
        if recipe.model == "tiny":
            model_path = str(warm_up(*_tiny_warm_up_plan(recipe)))
        else:
            model_path = resolve_model(recipe.model)
        registry = reward_registry()
        rewards = [
            with_reward_noise(registry[name], recipe.reward_noise, recipe.config.seed + index)
            for index, name in enumerate(recipe.reward_names)
        ]
        model = AutoModelForCausalLM.from_pretrained(model_path)
        if recipe.trainable_layers is not None:
            train_only_top_layers(model, recipe.trainable_layers)
        trainer = ICPOTrainer(
            model=model,
            reward_funcs=rewards,
            args=recipe.config,
            train_dataset=Dataset.from_list(recipe.rows),
            processing_class=AutoTokenizer.from_pretrained(model_path),
            callbacks=[_run_files_callback(output_dir / METRICS_FILE)],
        )
        if _is_first_process():
            write_json_atomically(output_dir / RUN_RECORD, {"settings": recipe.settings, "finished": False})
        trainer.train(resume_from_checkpoint=recipe.config.resume_from_checkpoint)
        trainer.save_model(str(output_dir))
        if _is_first_process():
            follow_umask(*output_dir.glob("*.safetensors"))
            write_json_atomically(output_dir / RUN_RECORD, {"settings": recipe.settings, "finished": True})
        step_logs = _step_logs(trainer.state.log_history)
        # Every process waits for the save, then leaves its process group: a launched process that exits
        # with a gloo group still alive can abort (SIGABRT) in the interpreter's teardown.
        trainer.accelerator.wait_for_everyone()
        trainer.accelerator.end_training()
    return step_logs[-1] if step_logs else {}


# --- the command -----------------------------------------------------------------------------------


def _prepare(args: argparse.Namespace) -> Recipe:
    return load_recipe(Path(args.config), parse_overrides(args.overrides))


def _execute(args: argparse.Namespace, recipe: Recipe) -> int:
    """Train; the first process prints the last step's metrics and (on stderr) the absolute output folder."""
    output_dir = Path(recipe.config.output_dir).absolute()
    try:
        final_step = run_recipe(recipe)
        if _is_first_process():
            print(json.dumps(final_step, indent=1))
            print(f"icpo train: the policy and metrics.jsonl are in {output_dir}", file=sys.stderr)
    except FolderInUse as error:
        print(f"icpo train: error: {error}", file=sys.stderr)
        return 2
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    from icpo.command import checked_command

    def fill(text: str, indent: str = "") -> str:
        hanging = indent + "    " if indent else ""
        return textwrap.fill(
            text, 100, initial_indent=indent, subsequent_indent=hanging, break_on_hyphens=False
        )

    keys = "\n".join(fill(f"{key}: {text}", "  ") for key, text in RECIPE_KEY_HELP.items())
    overrides = fill(
        "After --config, --KEY VALUE overrides any key of the recipe, as TRL's scripts allow (e.g. "
        "--learning_rate 1e-5 --max_steps 20 --report_to '[]'). Examples: recipes/ in the repository; "
        "docs/method.md explains the icpo_* options."
    )
    train = subparsers.add_parser(
        "train",
        help="one run from a YAML recipe (ICPOConfig keys + model, task/dataset); --KEY VALUE overrides a key",
        description=fill(
            "Train one policy as a YAML recipe says: every ICPOConfig (GRPOConfig, TrainingArguments) option "
            "by its own name, plus the recipe keys below. output_dir is relative to the current folder, as in "
            "TRL; its absolute path is printed."
        ),
        epilog=f"recipe keys:\n{keys}\n\n{overrides}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--config", required=True, help="the recipe: a YAML file of KEY: VALUE lines")
    resume = (
        "rerun it with --resume_from_checkpoint true to continue from its newest checkpoint "
        "(save_strategy: steps saves them), or as it was to start again"
    )
    train.set_defaults(run=checked_command(_prepare, _execute, resume_hint=resume), accepts_overrides=True)


__all__ = ["Recipe", "load_recipe", "parse_overrides", "register", "reward_registry", "run_recipe"]
