"""The recipe's verifiable reward (recipes/verl/reward.py) on real MATH-500 problems, and its bound.

It needs math-verify, not verl, so it runs in both environments (.venv-verl has math-verify with the antlr4
4.9 runtime that verl's Hydra pins, as a cluster running the recipe must).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("math_verify", reason="math-verify is not installed in this environment")

REWARD_FILE = Path(__file__).resolve().parents[2] / "recipes" / "verl" / "reward.py"


def load_reward_module():
    spec = importlib.util.spec_from_file_location("recipe_reward", REWARD_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def math500(shared_benchmarks) -> list[dict]:
    with open(shared_benchmarks / "math500.jsonl", encoding="utf-8") as lines:
        return [json.loads(line) for _, line in zip(range(40), lines, strict=False)]


def test_reference_solutions_score_one_and_other_problems_answers_zero(math500):
    compute_score = load_reward_module().compute_score
    for problem in math500:
        assert compute_score("math500", problem["solution"], problem["answer"]) == 1.0, problem["unique_id"]
    mismatched = [
        (problem, other)
        for problem, other in zip(math500, math500[1:] + math500[:1], strict=True)
        if problem["answer"] not in other["answer"] and other["answer"] not in problem["answer"]
    ]
    assert len(mismatched) > 30
    for problem, other in mismatched:
        assert compute_score("math500", problem["solution"], other["answer"]) == 0.0, problem["unique_id"]


@pytest.mark.parametrize(
    ("response", "reference", "score"),
    [
        ("<think>1/2 of it</think><answer>\\frac{1}{2}</answer>", "0.5", 1.0),
        ("<answer>draft 3</answer> on reflection <answer> B </answer>", "B", 1.0),
        ("<answer>C</answer>", "B", 0.0),
        ("so the total is \\boxed{42}", "42", 1.0),
        ("no answer given", "42", 0.0),
    ],
)
def test_the_last_answer_block_is_graded(response, reference, score):
    assert load_reward_module().compute_score("rlpr", response, reference) == score


def test_a_power_tower_scores_zero_within_the_graders_budget():
    """math-verify runs in icpo.rewards' bounded pool: a response that would hang it in-process (a huge
    integer power computed in C) costs at most one call's budget and scores 0.0."""
    from icpo.rewards import math_verifier

    compute_score = load_reward_module().compute_score
    assert compute_score("rlpr", "<answer>2</answer>", "2") == 1.0  # the pool is started
    for response in ("<answer>9^{9^{9^{9^{9}}}}</answer>", r"so \boxed{10^{10^{10}}}"):
        started = time.monotonic()
        assert compute_score("rlpr", response, "1") == 0.0
        assert time.monotonic() - started < math_verifier().budget_s(1) + 5
    assert compute_score("rlpr", r"it is \boxed{\frac{1}{2}}", "0.5") == 1.0
