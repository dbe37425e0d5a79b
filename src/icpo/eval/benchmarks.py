"""Benchmark presets: each maps one public file's schema to problems (prompt text, gold answer, grader).

A preset names its file in the benchmark folder (``default_data_dir()``: ``$ICPO_BENCHMARKS_DIR``, else
``../shared/benchmarks`` beside the repository, wherever the command runs from) and a function turning one
record into a ``Problem``. Records are read from JSONL or Parquet, or by the preset's own reader (GPQA's
password-protected zip, read in memory: its questions are never written out in plain text). To add a benchmark, write
such a function and add a ``Preset`` to ``PRESETS`` (docs/evaluation.md walks through it).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icpo.rewards import CHOICE_LETTERS, gold_text, last_boxed

DATA_DIR_ENV = "ICPO_BENCHMARKS_DIR"
REPOSITORY_ROOT = Path(__file__).resolve().parents[3]  # src/icpo/eval/benchmarks.py -> the checkout
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
BOOLEAN_INSTRUCTION = "Answer True or False, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = "Answer with the letter of the correct option, for example: The answer is (C)."


@dataclass(frozen=True)
class Problem:
    """One benchmark problem. ``question`` is the full user message (instruction included);
    ``reference`` is the file's worked solution when it has one."""

    id: str
    question: str
    gold: Any
    grader: str
    num_choices: int | None = None
    reference: str | None = None


def default_data_dir() -> Path:
    """``$ICPO_BENCHMARKS_DIR`` when set, else ``../shared/benchmarks`` beside the repository checkout."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured).expanduser() if configured else REPOSITORY_ROOT.parent / "shared" / "benchmarks"


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``.jsonl`` (one JSON object a line) or ``.parquet`` file."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise ValueError(
                        f"{path}:{number} is not valid JSON ({error.msg}); fix or remove it."
                    ) from None
    return records


GPQA_PASSWORD = b"deserted-untie-orchid"  # the public password of the upstream GPQA dataset.zip
GPQA_MEMBER = "gpqa_diamond.csv"
GPQA_SHUFFLE_SEED = 0


def read_gpqa_zip(path: str | Path) -> list[dict[str, Any]]:
    """The rows of GPQA's CSV inside its password-protected zip, decrypted in memory only."""
    with zipfile.ZipFile(path) as archive:
        text = archive.read(GPQA_MEMBER, pwd=GPQA_PASSWORD).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _math(question: str) -> str:
    return f"{question}\n\n{MATH_INSTRUCTION}"


def _choices(question: str, options: list[Any]) -> str:
    lines = "\n".join(f"({CHOICE_LETTERS[i]}) {option}" for i, option in enumerate(options))
    return f"{question}\n\nOptions:\n{lines}\n\n{CHOICE_INSTRUCTION}"


def _math500(record: dict[str, Any], index: int) -> Problem:
    return Problem(
        record["unique_id"], _math(record["problem"]), record["answer"], "math", reference=record["solution"]
    )


def _gsm8k(record: dict[str, Any], index: int) -> Problem:
    gold = record["answer"].rsplit("####", 1)[-1].strip()
    return Problem(
        str(record.get("idx", index)), _math(record["question"]), gold, "number", reference=record["answer"]
    )


def _competition(record: dict[str, Any], index: int) -> Problem:
    """AIME / AMC (Qwen2.5-Math schema): ``answer`` a string or a float such as 27.0."""
    gold = gold_text(record["answer"])
    return Problem(
        str(record.get("id", index)), _math(record["problem"]), gold, "math", reference=record.get("solution")
    )


def _minerva(record: dict[str, Any], index: int) -> Problem:
    solution = record["solution"]
    return Problem(
        str(record.get("idx", index)),
        _math(record["problem"]),
        last_boxed(solution),
        "math",
        reference=solution,
    )


def _mmlu_stem(record: dict[str, Any], index: int) -> Problem:
    choices = record["choices"]
    return Problem(
        str(index), _choices(record["question"], choices), int(record["answer"]), "choice", len(choices)
    )


def _mmlu_pro(record: dict[str, Any], index: int) -> Problem:
    options = record["options"]
    return Problem(
        str(record["question_id"]),
        _choices(record["question"], options),
        record["answer"],
        "choice",
        len(options),
    )


def _theoremqa(record: dict[str, Any], index: int) -> Problem | None:
    """Text-only TheoremQA: numbers and lists by math-verify, "(c)" options as choices, true/false by
    the boolean grader. Records with a picture (not shipped with the file) are skipped."""
    if record.get("Picture"):
        return None
    if record["Answer_type"] == "bool":
        return Problem(
            record["id"], f"{record['Question']}\n\n{BOOLEAN_INSTRUCTION}", record["Answer"], "boolean"
        )
    if record["Answer_type"] == "option":
        return Problem(
            record["id"], f"{record['Question']}\n\n{CHOICE_INSTRUCTION}", record["Answer"], "choice", 4
        )
    answer = record["Answer"]
    gold = (
        "(" + ", ".join(gold_text(a) for a in answer) + ")" if isinstance(answer, list) else gold_text(answer)
    )
    return Problem(record["id"], _math(record["Question"]), gold, "math")


def _word_problem(id_: Any, question: str, gold: Any) -> Problem:
    return Problem(str(id_), _math(question.strip()), gold_text(gold), "number")


def _mawps(record: dict[str, Any], index: int) -> Problem:
    return _word_problem(record.get("idx", index), record["input"], record["target"])


def _svamp(record: dict[str, Any], index: int) -> Problem:
    body, question = record["Body"].strip(), record["Question"].strip()
    return _word_problem(record.get("ID", index), f"{body} {question}", record["Answer"])


ASDIV_NUMBER = re.compile(r"^\s*(-?\d[\d,]*(?:\.\d+)?)\s*(?:\([^()]*\))?\s*$")  # "9 (apples)"


def _asdiv(record: dict[str, Any], index: int) -> Problem | None:
    """ASDiv with a numeric gold ("9 (apples)" -> "9"); the 131 records whose answer is a name, a ratio
    or a time are skipped (the number grader cannot grade them)."""
    match = ASDIV_NUMBER.match(record["answer"])
    if match is None:
        return None
    question = f"{record['body'].strip()} {record['question'].strip()}"
    return _word_problem(record.get("idx", index), question, match.group(1).replace(",", ""))


def _gpqa(record: dict[str, Any], index: int) -> Problem:
    """GPQA-Diamond: the correct and three incorrect answers shuffled per question with a fixed seed
    (random.Random seeded by the shuffle seed and the record id), so "A" is not always right."""
    options = [record["Correct Answer"]] + [record[f"Incorrect Answer {i}"] for i in (1, 2, 3)]
    order = list(range(4))
    random.Random(f"{GPQA_SHUFFLE_SEED}:{record['Record ID']}").shuffle(order)
    shuffled = [options[i].strip() for i in order]
    return Problem(
        record["Record ID"], _choices(record["Question"].strip(), shuffled), order.index(0), "choice", 4
    )


@dataclass(frozen=True)
class Preset:
    name: str
    filename: str
    to_problem: Callable[[dict[str, Any], int], Problem | None]  # None: the record is skipped
    description: str
    read: Callable[[Path], list[dict[str, Any]]] = read_records


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("math500", "math500.jsonl", _math500, "MATH-500 (PRM800K test split), gold `answer`"),
        Preset("gsm8k", "gsm8k_test.jsonl", _gsm8k, "GSM8K test, gold the number after ####"),
        Preset("aime24", "aime24.jsonl", _competition, "AIME 2024, gold `answer` (integer string)"),
        Preset("amc23", "amc23.jsonl", _competition, "AMC 2023, gold `answer` (float)"),
        Preset(
            "minerva", "minerva_math.jsonl", _minerva, "Minerva OCW, gold the last \\boxed{} of `solution`"
        ),
        Preset("mmlu_stem", "mmlu_stem.jsonl", _mmlu_stem, "MMLU-STEM, gold `answer` index 0-3"),
        Preset(
            "mmlu_pro", "mmlu_pro_1000.jsonl", _mmlu_pro, "MMLU-Pro 1000-question subset, gold letter A-J"
        ),
        Preset("theoremqa", "theoremqa_test.jsonl", _theoremqa, "TheoremQA, text-only records"),
        Preset("mawps", "mawps.jsonl", _mawps, "MAWPS word problems, gold `target` (float)"),
        Preset("svamp", "svamp.jsonl", _svamp, "SVAMP, question `Body` + `Question`, gold `Answer`"),
        Preset("asdiv", "asdiv.jsonl", _asdiv, "ASDiv, gold the leading number of `answer`"),
        Preset(
            "gpqa_diamond",
            "gpqa_diamond.zip",
            _gpqa,
            "GPQA-Diamond CSV in its password zip, options shuffled per question",
            read=read_gpqa_zip,
        ),
    )
}


def load_benchmark(
    name: str,
    data_dir: str | Path | None = None,
    path: str | Path | None = None,
    limit: int | None = None,
) -> list[Problem]:
    """The problems of preset ``name``, read from ``path`` or ``data_dir / preset.filename`` (default
    ``default_data_dir()``); the first ``limit`` when given. A file without problems is a ValueError."""
    if name not in PRESETS:
        raise ValueError(f"unknown benchmark {name!r}; presets are {sorted(PRESETS)}.")
    preset = PRESETS[name]
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 (or None for every problem), got {limit}.")
    data_dir = default_data_dir() if data_dir is None else Path(data_dir)
    path = Path(path) if path is not None else data_dir / preset.filename
    if not path.exists():
        raise FileNotFoundError(
            f"benchmark file {path} not found; pass --data-dir (or set ${DATA_DIR_ENV}) to the folder "
            f"that holds {preset.filename}."
        )
    problems = []
    for index, record in enumerate(preset.read(path)):
        try:
            problem = preset.to_problem(record, index)
        except KeyError as missing:
            raise ValueError(
                f"{path} record {index} has no field {missing}; preset {name!r} expects the schema of "
                f"{preset.description}."
            ) from None
        if problem is not None:
            problems.append(problem)
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise ValueError(
            f"{path} holds no {name} problems; check the file (it is empty or every record is skipped)."
        )
    return problems


def build_prompt(tokenizer: Any, question: str) -> str:
    """The model input for a question: the tokenizer's chat template (one user turn, generation
    prompt added) when it has one, else the question followed by a newline."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
    return question + "\n"
