"""Real elementary word problems (MAWPS, SVAMP, ASDiv) as a training dataset with a held-out split.

The records are those of the eval presets of the same names (``icpo.eval.benchmarks.preset_records``: a
local folder named by the caller or ``$ICPO_BENCHMARKS_DIR``, else ``../shared/benchmarks`` beside the
checkout, else the presets' Hub dataset). They hold only test splits, so training on them needs our own
split. ``split_word_problems`` keeps near-duplicates on one side: problems whose text is the
same after lower-casing, masking every number with ``#`` and collapsing punctuation and spaces
(``near_duplicate_key``) form one group, and whole groups are assigned to train or held-out in an order
shuffled by ``random.Random(seed)``. Rows are chat-format (``prompt`` = one user message) with the gold
number in ``answer``, the column ``icpo.rewards.number_reward`` reads.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icpo.eval.benchmarks import BRIEF_INSTRUCTION, preset_records, user_message

INSTRUCTION = BRIEF_INSTRUCTION
_LEADING_NUMBER = re.compile(r"^\s*(-?\d[\d,]*(?:\.\d+)?)(?=\s|\(|$)")


@dataclass(frozen=True)
class WordProblem:
    id: str  # "{source}-{line index}"
    question: str
    answer: str  # the gold number, as text


def _number(value: Any) -> str:
    return f"{float(value):g}" if float(value) != int(float(value)) else str(int(float(value)))


def _mawps(record: dict[str, Any]) -> tuple[str, str] | None:
    return record["input"], _number(record["target"])


def _svamp(record: dict[str, Any]) -> tuple[str, str] | None:
    body = record["Body"].strip()
    return f"{body}{'' if body.endswith('.') else '.'} {record['Question'].strip()}", _number(
        record["Answer"]
    )


def _asdiv(record: dict[str, Any]) -> tuple[str, str] | None:
    match = _LEADING_NUMBER.match(record["answer"])  # "9 (apples)"; skips "3:30 p.m.", "Yes", "6th"
    if match is None:
        return None
    return f"{record['body'].strip()} {record['question'].strip()}", _number(match.group(1).replace(",", ""))


SOURCES: dict[str, Callable[[dict[str, Any]], tuple[str, str] | None]] = {
    "mawps": _mawps,
    "svamp": _svamp,
    "asdiv": _asdiv,
}


def load_word_problems(sources: list[str], data_dir: str | Path | None = None) -> list[WordProblem]:
    """The problems of the named sources, in record order (``data_dir`` and the Hub fallback as in
    ``icpo.eval.benchmarks.preset_records``); ASDiv answers that are not a number are skipped."""
    problems = []
    for source in sources:
        if source not in SOURCES:
            raise ValueError(f"unknown word-problem source {source!r}; choose from {sorted(SOURCES)}.")
        records, _ = preset_records(source, data_dir)
        for index, record in enumerate(records):
            converted = SOURCES[source](record)
            if converted is not None:
                problems.append(WordProblem(f"{source}-{index}", *converted))
    return problems


def near_duplicate_key(text: str) -> str:
    """Lower-case words with every number replaced by ``#``: problems sharing a key are near-duplicates."""
    masked = re.sub(r"\d[\d,]*(?:\.\d+)?", "#", text.lower())
    return " ".join(re.findall(r"[a-z#]+", masked))


def split_word_problems(
    problems: list[WordProblem], held_out_fraction: float, seed: int
) -> tuple[list[WordProblem], list[WordProblem]]:
    """(train, held_out): near-duplicate groups shuffled with ``seed``; groups fill held-out until it
    holds ``held_out_fraction`` of the problems, the rest train. No group is split across the two."""
    if not 0.0 < held_out_fraction < 1.0:
        raise ValueError(f"held_out_fraction must be in (0, 1), got {held_out_fraction!r}.")
    groups: dict[str, list[WordProblem]] = {}
    for problem in problems:
        groups.setdefault(near_duplicate_key(problem.question), []).append(problem)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    target = held_out_fraction * len(problems)
    train, held_out = [], []
    for key in keys:
        (held_out if len(held_out) < target else train).extend(groups[key])
    return train, held_out


def chat_prompt(question: str) -> list[dict[str, str]]:
    """One user turn: the question in the "brief" prompt template (followed by ``INSTRUCTION``)."""
    return [{"role": "user", "content": user_message("brief", question, "number")}]


def chat_rows(problems: list[WordProblem]) -> list[dict[str, Any]]:
    """Rows for GRPO: a chat ``prompt`` and the gold number in ``answer``."""
    return [{"prompt": chat_prompt(p.question), "answer": p.answer} for p in problems]
