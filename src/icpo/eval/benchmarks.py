"""Benchmark presets: each maps one public dataset's schema to problems (prompt text, gold answer, grader).

A preset names its local file, its Hugging Face Hub dataset (``HubSource``: id, config, split, data files,
revision) and a function turning one record into a ``Problem``. Where records come from
(``preset_records``): the file in a folder given by the caller or by ``$ICPO_BENCHMARKS_DIR``; else the
file in ``../shared/benchmarks`` beside the repository checkout when it is there; else the Hub dataset,
through ``datasets.load_dataset``. Each Hub source was chosen for having the local file's field names, so
one record function reads both. Local records are read from JSONL or Parquet, or by the preset's own reader
(GPQA's password-protected zip, read in memory: its questions are never written out in plain text).

The user message is the problem text put into a prompt template (``PROMPT_TEMPLATES``; by default the
preset's own answer instruction after the text). To add a benchmark, write a record function and add a
``Preset`` to ``PRESETS`` (docs/evaluation.md walks through it).
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from icpo.rewards import CHOICE_LETTERS, gold_answer, gold_text, last_boxed

DATA_DIR_ENV = "ICPO_BENCHMARKS_DIR"
REPOSITORY_ROOT = Path(__file__).resolve().parents[3]  # src/icpo/eval/benchmarks.py -> the checkout
MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
BOOLEAN_INSTRUCTION = "Answer True or False, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = "Answer with the letter of the correct option, for example: The answer is (C)."
BRIEF_INSTRUCTION = "Answer briefly and end with the final number."  # the word-problem recipes' prompt


# The answer instruction each grader's problems get under the default template.
INSTRUCTIONS = {
    "math": MATH_INSTRUCTION,
    "number": MATH_INSTRUCTION,
    "boolean": BOOLEAN_INSTRUCTION,
    "choice": CHOICE_INSTRUCTION,
}
# Named prompt templates: {question} is the problem text (a choice problem's options included),
# {instruction} the grader's answer instruction. "brief" is the word-problem recipes' training prompt
# (icpo.wordproblems.chat_prompt).
DEFAULT_TEMPLATE = "step-by-step"
PROMPT_TEMPLATES = {
    DEFAULT_TEMPLATE: "{question}\n\n{instruction}",
    "brief": "{question} " + BRIEF_INSTRUCTION,
    "question-only": "{question}",
}


@dataclass(frozen=True)
class Problem:
    """One benchmark problem. ``question`` is the full user message (the prompt template applied),
    ``system`` the system message if any; ``reference`` is the file's worked solution when it has one.
    ``private``: the dataset's terms forbid writing its text out (GPQA), so the harness stores the prompt's
    SHA-256 and neither the prompt nor the gold answer."""

    id: str
    question: str
    gold: Any
    grader: str
    num_choices: int | None = None
    reference: str | None = None
    system: str | None = None
    private: bool = False


def prompt_template(name_or_text: str) -> str:
    """The template named ``name_or_text`` (a key of ``PROMPT_TEMPLATES``), or the text itself when it
    contains ``{question}``; a ValueError otherwise."""
    if name_or_text in PROMPT_TEMPLATES:
        return PROMPT_TEMPLATES[name_or_text]
    if "{question}" not in name_or_text:
        raise ValueError(
            f"prompt template {name_or_text!r} is neither a named template ({', '.join(PROMPT_TEMPLATES)}) "
            "nor a text containing {question}; write e.g. '{question} Answer with a number.'"
        )
    return name_or_text


def user_message(template: str, question: str, grader: str) -> str:
    """``template`` (a name or a text, see ``prompt_template``) with {question} and {instruction} filled in;
    other braces (``\\boxed{}``) are left as written."""
    text = prompt_template(template).replace("{instruction}", INSTRUCTIONS[grader])
    return text.replace("{question}", question)


def default_data_dir() -> Path:
    """``$ICPO_BENCHMARKS_DIR`` when set, else ``../shared/benchmarks`` beside the repository checkout."""
    configured = os.environ.get(DATA_DIR_ENV)
    return Path(configured).expanduser() if configured else REPOSITORY_ROOT.parent / "shared" / "benchmarks"


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of a ``.jsonl`` (one JSON object a line) or ``.parquet`` file."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(path).to_pylist()
        except pa.ArrowException as error:
            raise ValueError(
                f"{path} is not a readable Parquet file ({' '.join(str(error).split())})."
            ) from None
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


def _choices(question: str, options: list[Any]) -> str:
    lines = "\n".join(f"({CHOICE_LETTERS[i]}) {option}" for i, option in enumerate(options))
    return f"{question}\n\nOptions:\n{lines}"


def _math500(record: dict[str, Any], index: int) -> Problem:
    return Problem(
        record["unique_id"], record["problem"], record["answer"], "math", reference=record["solution"]
    )


def _gsm8k(record: dict[str, Any], index: int) -> Problem:
    gold = gold_answer("number", record["answer"])  # the number after "####", separators dropped
    return Problem(
        str(record.get("idx", index)), record["question"], gold, "number", reference=record["answer"]
    )


def _competition(record: dict[str, Any], index: int) -> Problem:
    """AIME / AMC (Qwen2.5-Math schema): ``answer`` a string or a float such as 27.0."""
    gold = gold_text(record["answer"])
    return Problem(
        str(record.get("id", index)), record["problem"], gold, "math", reference=record.get("solution")
    )


def _minerva(record: dict[str, Any], index: int) -> Problem:
    solution = record["solution"]
    return Problem(
        str(record.get("idx", index)),
        record["problem"],
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
    the boolean grader. Records with a picture (not shipped with the file) are skipped; a record without
    an ``id`` is numbered by its position."""
    if record.get("Picture"):
        return None
    id_ = str(record.get("id", index))
    if record["Answer_type"] == "bool":
        return Problem(id_, record["Question"], record["Answer"], "boolean")
    if record["Answer_type"] == "option":
        return Problem(id_, record["Question"], record["Answer"], "choice", 4)
    answer = record["Answer"]
    gold = (
        "(" + ", ".join(gold_text(a) for a in answer) + ")" if isinstance(answer, list) else gold_text(answer)
    )
    return Problem(id_, record["Question"], gold, "math")


def _word_problem(id_: Any, question: str, gold: Any) -> Problem:
    return Problem(str(id_), question.strip(), gold_text(gold), "number")


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
        record["Record ID"],
        _choices(record["Question"].strip(), shuffled),
        order.index(0),
        "choice",
        4,
        private=True,
    )


QWEN_EVAL_DATA = "HuggingFaceTB/math_tasks"  # Qwen2.5-Math's evaluation/data files, as the local copies
QWEN_EVAL_REVISION = "34d25e28f5ee2d95481e190f1c0f71134669f1ea"  # the commit that uploaded them


@dataclass(frozen=True)
class HubSource:
    """A preset's dataset on the Hugging Face Hub, read by ``load_dataset(repo, config, split=split,
    data_files={split: data_files}, revision=revision)``. ``revision`` None: unpinned (the repository's
    default branch, which may change). ``note``: how the Hub copy differs from the local file."""

    repo: str
    split: str
    config: str | None = None
    data_files: str | None = None
    revision: str | None = None
    note: str = ""

    def describe(self) -> str:
        pin = f"@{self.revision[:12]}" if self.revision else " (unpinned)"
        where = f":{self.data_files}" if self.data_files else f" [{self.config or 'default'}/{self.split}]"
        return f"{self.repo}{where}{pin}"


def _qwen_eval_data(folder: str) -> HubSource:
    return HubSource(
        QWEN_EVAL_DATA, "test", data_files=f"data/{folder}/test.jsonl", revision=QWEN_EVAL_REVISION
    )


@dataclass(frozen=True)
class Preset:
    name: str
    filename: str
    to_problem: Callable[[dict[str, Any], int], Problem | None]  # None: the record is skipped
    description: str
    hub: HubSource
    read: Callable[[Path], list[dict[str, Any]]] = read_records


PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "math500",
            "math500.jsonl",
            _math500,
            "MATH-500 (PRM800K test split), gold `answer`",
            HubSource("HuggingFaceH4/MATH-500", "test"),
        ),
        Preset(
            "gsm8k",
            "gsm8k_test.jsonl",
            _gsm8k,
            "GSM8K test, gold the number after ####",
            _qwen_eval_data("gsm8k"),
        ),
        Preset(
            "aime24",
            "aime24.jsonl",
            _competition,
            "AIME 2024, gold `answer` (integer string)",
            _qwen_eval_data("aime24"),
        ),
        Preset(
            "amc23", "amc23.jsonl", _competition, "AMC 2023, gold `answer` (float)", _qwen_eval_data("amc23")
        ),
        Preset(
            "minerva",
            "minerva_math.jsonl",
            _minerva,
            "Minerva OCW, gold the last \\boxed{} of `solution`",
            _qwen_eval_data("minerva_math"),
        ),
        Preset(
            "mmlu_stem",
            "mmlu_stem.jsonl",
            _mmlu_stem,
            "MMLU-STEM, gold `answer` index 0-3",
            _qwen_eval_data("mmlu_stem"),
        ),
        Preset(
            "mmlu_pro",
            "mmlu_pro_1000.jsonl",
            _mmlu_pro,
            "MMLU-Pro 1000-question subset, gold letter A-J",
            HubSource(
                "TIGER-Lab/MMLU-Pro",
                "test",
                note="the whole test split (12,032 questions), not the local stratified 1000-question subset",
            ),
        ),
        Preset(
            "theoremqa",
            "theoremqa_test.jsonl",
            _theoremqa,
            "TheoremQA, text-only records",
            HubSource("TIGER-Lab/TheoremQA", "test", revision="a340b1782960a712843aae3ed25f1e013cc008a5"),
        ),
        Preset(
            "mawps",
            "mawps.jsonl",
            _mawps,
            "MAWPS word problems, gold `target` (float); the word-problem recipes train on 80% of it",
            _qwen_eval_data("mawps"),
        ),
        Preset(
            "svamp",
            "svamp.jsonl",
            _svamp,
            "SVAMP, question `Body` + `Question`, gold `Answer`; the word-problem recipes train on 80% of it",
            _qwen_eval_data("svamp"),
        ),
        Preset(
            "asdiv",
            "asdiv.jsonl",
            _asdiv,
            "ASDiv, gold the leading number of `answer`; the word-problem recipes train on 80% of it",
            _qwen_eval_data("asdiv"),
        ),
        Preset(
            "gpqa_diamond",
            "gpqa_diamond.zip",
            _gpqa,
            "GPQA-Diamond CSV in its password zip, options shuffled per question",
            HubSource(
                "Idavidrein/gpqa",
                "train",
                config="gpqa_diamond",
                note="gated: accept its terms on the Hub and log in (huggingface-cli login) first",
            ),
            read=read_gpqa_zip,
        ),
    )
}
WORD_PROBLEM_PRESETS = ("mawps", "svamp", "asdiv")  # also icpo.wordproblems' training sources


def hub_records(source: HubSource) -> list[dict[str, Any]]:
    """The records of a Hub source, loaded with ``datasets.load_dataset`` (cached by ``datasets``); a
    source whose ``repo`` is a local folder laid out like the Hub repository loads the same way."""
    from datasets import load_dataset

    data_files = {source.split: source.data_files} if source.data_files else None
    dataset = load_dataset(
        source.repo, source.config, split=source.split, data_files=data_files, revision=source.revision
    )
    return dataset.to_list()


def preset_records(
    name: str, data_dir: str | Path | None = None, path: str | Path | None = None
) -> tuple[list[dict[str, Any]], str]:
    """(records of preset ``name``, where they were read). From ``path``; else from ``data_dir``'s file
    (``data_dir`` default: ``$ICPO_BENCHMARKS_DIR``); a file named this way must exist. With neither, from
    the checkout's ``../shared/benchmarks`` file when it exists, else from the preset's Hub dataset. A
    missing file or an unreachable Hub dataset is a one-line FileNotFoundError saying what to pass."""
    if name not in PRESETS:
        raise ValueError(f"unknown benchmark {name!r}; presets are {sorted(PRESETS)}.")
    preset = PRESETS[name]
    if path is None:
        explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV)
        folder = Path(explicit).expanduser() if explicit else default_data_dir()
        path = folder / preset.filename
        if not explicit and not path.exists():
            try:
                return hub_records(preset.hub), preset.hub.describe()
            except Exception as error:  # offline, gated, renamed: datasets raises many kinds
                reason = " ".join(str(error).split())[:200] or type(error).__name__
                raise FileNotFoundError(
                    f"benchmark {name!r}: no local file {path}, and the Hub dataset {preset.hub.describe()} "
                    f"could not be loaded ({reason}); pass --data-dir (or set ${DATA_DIR_ENV}) to a folder "
                    f"holding {preset.filename}, or go online."
                ) from None
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"benchmark file {path} not found; pass --data-dir (or set ${DATA_DIR_ENV}) to the folder "
            f"that holds {preset.filename}."
        )
    if path.is_dir():
        raise ValueError(
            f"benchmark file {path} is a folder; pass --data-dir (or set ${DATA_DIR_ENV}) to the folder that "
            f"holds {preset.filename}."
        )
    try:
        return preset.read(path), str(path)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text (byte {error.start}); is it the {name} file?") from None
    except (OSError, RuntimeError, KeyError, csv.Error, zipfile.BadZipFile) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise ValueError(f"{path} cannot be read as the {name} file ({reason}).") from None


def load_benchmark(
    name: str,
    data_dir: str | Path | None = None,
    path: str | Path | None = None,
    limit: int | None = None,
    template: str = DEFAULT_TEMPLATE,
    system_prompt: str | None = None,
) -> list[Problem]:
    """The problems of preset ``name`` (records from ``preset_records``), each question put into the
    prompt ``template`` (``user_message``) with ``system_prompt``; the first ``limit`` when given. A
    source without problems is a ValueError."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 (or None for every problem), got {limit}.")
    prompt_template(template)
    records, source = preset_records(name, data_dir, path)
    preset = PRESETS[name]
    problems = []
    for index, record in enumerate(records):
        try:
            problem = preset.to_problem(record, index)
        except KeyError as missing:
            raise ValueError(
                f"{source} record {index} has no field {missing}; preset {name!r} expects the schema of "
                f"{preset.description}."
            ) from None
        except (TypeError, AttributeError, ValueError, IndexError) as error:
            raise ValueError(
                f"{source} record {index} does not fit preset {name!r} ({error}); it expects the schema of "
                f"{preset.description}."
            ) from None
        if problem is not None:
            message = user_message(template, problem.question, problem.grader)
            problems.append(replace(problem, question=message, system=system_prompt))
        if limit is not None and len(problems) >= limit:
            break
    if not problems:
        raise ValueError(
            f"{source} holds no {name} problems; check the file (it is empty or every record is skipped)."
        )
    return problems


def word_problem_benchmark(
    problems: list[Any], template: str = "brief", system_prompt: str | None = None
) -> list[Problem]:
    """``icpo.wordproblems.WordProblem``s (a recipe's split) as number-graded problems in ``template``:
    by default "brief", which gives exactly the user message the recipe trained with."""
    return [
        Problem(p.id, user_message(template, p.question, "number"), p.answer, "number", system=system_prompt)
        for p in problems
    ]


def build_prompt(tokenizer: Any, question: str, system: str | None = None) -> str:
    """The model input for a user message (and a system message, if any): the tokenizer's chat template
    (the turns plus the generation prompt) when it has one, else the texts joined by blank lines and
    followed by a newline."""
    if getattr(tokenizer, "chat_template", None):
        system_turn = [{"role": "system", "content": system}] if system is not None else []
        return tokenizer.apply_chat_template(
            [*system_turn, {"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
        )
    return (f"{system}\n\n" if system is not None else "") + question + "\n"
