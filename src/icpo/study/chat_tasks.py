"""Chat tasks for real LMs: the study's testbeds on SmolLM2 (or any chat model).

A problem is a question and its gold number. It is asked in the "brief" prompt template the word-problem
recipes train with (``icpo.eval.benchmarks.user_message``), as one user turn after an empty system turn (so
no tokens go to a default system prompt: 16 of SmolLM2's 47 prompt tokens), and graded by ``number_reward``.

Regimes (``REGIMES``), measured on SmolLM2-135M-Instruct in ../shared/design/smollm2-headroom.md:

- ``single-digit``: "What is a + b?" and "a x b" with a, b in 0..9 (dense: about half right, most groups
  mixed);
- ``two-digit-add``: a + b with a, b in 10..99 (sparse: about 6% right, most groups all wrong);
- ``word-problems``: the real MAWPS, SVAMP and ASDiv problems of ``icpo.wordproblems`` (sparse: 5.7% right
  in the brief prompt; needs their files, see ``icpo.wordproblems``).

The problems of a regime are split with the split seed into a held-out set and a training set, so a policy
is evaluated only on problems it never trained on (word problems: near-duplicates stay on one side).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

WORD_PROBLEM_SOURCES = ("mawps", "svamp", "asdiv")


@dataclass(frozen=True)
class ChatProblem:
    question: str
    answer: str


def _arithmetic(regime: str) -> list[ChatProblem]:
    if regime == "single-digit":
        pairs = [(a, op, b) for op in ("+", "x") for a in range(10) for b in range(10)]
    else:
        pairs = [(a, "+", b) for a in range(10, 100) for b in range(10, 100)]
    return [
        ChatProblem(f"What is {a} {'×' if op == 'x' else '+'} {b}?", str(a * b if op == "x" else a + b))
        for a, op, b in pairs
    ]


REGIMES = ("single-digit", "two-digit-add", "word-problems")


def split(regime: str, num_test: int, seed: int = 0) -> tuple[list[ChatProblem], list[ChatProblem]]:
    """(train, held-out) problems of ``regime``: disjoint, the held-out ones ``num_test`` of them."""
    if regime not in REGIMES:
        raise ValueError(f"unknown chat task {regime!r}; choose from {', '.join(REGIMES)}.")
    if regime == "word-problems":
        from icpo.wordproblems import load_word_problems, split_word_problems

        problems = [ChatProblem(p.question, p.answer) for p in load_word_problems(list(WORD_PROBLEM_SOURCES))]
    else:
        problems = _arithmetic(regime)
    if not 0 < num_test < len(problems):
        raise ValueError(
            f"regime {regime!r} has {len(problems)} problems; num_test must lie in 1..{len(problems) - 1}."
        )
    if regime == "word-problems":
        # Whole near-duplicate groups go to held-out until it holds num_test; its surplus is left unused.
        train, held_out = split_word_problems(problems, num_test / len(problems), seed)
        return train, held_out[:num_test]
    random.Random(seed).shuffle(problems)
    return problems[num_test:], problems[:num_test]


def chat(problem: ChatProblem) -> list[dict[str, str]]:
    """The chat messages of ``problem``: an empty system turn and the brief-template user turn."""
    from icpo.eval.benchmarks import user_message

    return [
        {"role": "system", "content": ""},
        {"role": "user", "content": user_message("brief", problem.question, "number")},
    ]


def rl_rows(problems: list[ChatProblem]) -> list[dict[str, Any]]:
    """Rows for GRPO: the chat ``prompt`` and the gold number in ``answer``."""
    return [{"prompt": chat(p), "answer": p.answer} for p in problems]
