"""Verifiable 0/1 reward for the RLPR recipe, in verl's custom reward function form.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` once per response
(``reward.custom_reward_function``). The answer is the text of the response's last ``<answer>...</answer>``
(RLPR's prompt asks for one), else the whole response. It scores 1.0 when math-verify finds it
equivalent to the reference answer, or when both read the same after case and space folding (option
letters, short free-form answers), else 0.0.

Needs ``pip install math-verify`` on the cluster. math-verify's own timeouts use SIGALRM, which only
works in a main thread; verl's reward workers are not guaranteed to be one, so they are switched off.
"""

from __future__ import annotations

import re
from typing import Any

from math_verify import parse, verify

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def final_answer(response: str) -> str:
    """The content of the last ``<answer>`` block, or the whole response when there is none."""
    tagged = _ANSWER_TAG.findall(response)
    return tagged[-1].strip() if tagged else response


def _folded(text: str) -> str:
    return "".join(text.split()).casefold().strip(".$")


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None, **_: Any
) -> float:
    answer = final_answer(solution_str)
    reference = str(ground_truth)
    if _folded(answer) == _folded(reference):
        return 1.0
    gold = parse(f"\\boxed{{{reference}}}", parsing_timeout=None)
    predicted = parse(answer, parsing_timeout=None)
    return 1.0 if gold and predicted and verify(gold, predicted, timeout_seconds=None) else 0.0
