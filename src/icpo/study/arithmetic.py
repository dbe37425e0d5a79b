"""Chat-format arithmetic for real LMs: the study's testbeds on SmolLM2 (or any chat model).

A problem is "What is A op B?" in the "brief" prompt template the word-problem recipes train with
(``icpo.eval.benchmarks.user_message``), as one user turn after an empty system turn (so no tokens go to a
default system prompt: 16 of SmolLM2's 47 prompt tokens), graded by ``number_reward``.

Regimes (``REGIMES``), measured on SmolLM2-135M-Instruct in ../shared/design/smollm2-headroom.md:

- ``single-digit``: a + b and a x b with a, b in 0..9 (dense: about half right, most groups mixed);
- ``two-digit-add``: a + b with a, b in 10..99 (sparse: about 6% right, most groups all wrong).

The distinct problems of a regime are shuffled with the split seed and cut into a held-out set and a
training set, so a policy is evaluated only on problems it never trained on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ArithmeticProblem:
    question: str
    answer: str


def _problems(regime: str) -> list[ArithmeticProblem]:
    if regime == "single-digit":
        pairs = [(a, op, b) for op in ("+", "x") for a in range(10) for b in range(10)]
    elif regime == "two-digit-add":
        pairs = [(a, "+", b) for a in range(10, 100) for b in range(10, 100)]
    else:
        raise ValueError(f"unknown arithmetic regime {regime!r}; choose from {', '.join(REGIMES)}.")
    return [
        ArithmeticProblem(f"What is {a} {'×' if op == 'x' else '+'} {b}?", str(a * b if op == "x" else a + b))
        for a, op, b in pairs
    ]


REGIMES = ("single-digit", "two-digit-add")


def split(
    regime: str, num_test: int, seed: int = 0
) -> tuple[list[ArithmeticProblem], list[ArithmeticProblem]]:
    """(train, held-out) problems of ``regime``: disjoint, the held-out ones ``num_test`` of them."""
    problems = _problems(regime)
    if not 0 < num_test < len(problems):
        raise ValueError(
            f"regime {regime!r} has {len(problems)} problems; num_test must lie in 1..{len(problems) - 1}."
        )
    random.Random(seed).shuffle(problems)
    return problems[num_test:], problems[:num_test]


def chat(problem: ArithmeticProblem) -> list[dict[str, str]]:
    """The chat messages of ``problem``: an empty system turn and the brief-template user turn."""
    from icpo.eval.benchmarks import user_message

    return [
        {"role": "system", "content": ""},
        {"role": "user", "content": user_message("brief", problem.question, "number")},
    ]


def rl_rows(problems: list[ArithmeticProblem]) -> list[dict[str, Any]]:
    """Rows for GRPO: the chat ``prompt`` and the gold number in ``answer``."""
    return [{"prompt": chat(p), "answer": p.answer} for p in problems]
