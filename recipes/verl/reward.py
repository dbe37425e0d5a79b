"""Verifiable 0/1 reward for the RLPR recipe, in verl's custom reward function form.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` once per response
(``reward.custom_reward_function``). The answer is the text of the response's last ``<answer>...</answer>``
(RLPR's prompt asks for one), else the response's final answer as ``icpo.rewards.extract_math_answer``
reads it (last boxed, "the answer is ..."). It scores 1.0 when both read the same after case and space
folding (option letters, short free-form answers), or when math-verify finds them equivalent, else 0.0.

math-verify runs in icpo.rewards' bounded worker pool (``math_verifier()``), never in verl's worker
itself: one pathological response (a power tower) costs at most the pool's per-call budget and scores
0.0 instead of hanging the worker. Needs ``pip install icpo math-verify`` on the cluster.
"""

from __future__ import annotations

import re
from typing import Any

from icpo.rewards import MAX_ANSWER_CHARS, extract_math_answer, math_verifier

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def final_answer(response: str) -> str:
    """The content of the last ``<answer>`` block, else the response's final answer, else the response."""
    tagged = _ANSWER_TAG.findall(response)
    if tagged:
        return tagged[-1].strip()
    # Extraction is icpo.rewards' linear-time scan, not math-verify's parse(): bounded before any parser runs.
    return extract_math_answer(response) or response.strip()


def _folded(text: str) -> str:
    return "".join(text.split()).casefold().strip(".$")


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **_: Any
) -> float:
    answer = final_answer(solution_str)
    reference = str(ground_truth)
    if _folded(answer) == _folded(reference):
        return 1.0
    if len(answer) > MAX_ANSWER_CHARS:
        return 0.0
    return 1.0 if math_verifier().check([(reference, answer)])[0] else 0.0
