"""Synthetic tasks: exact checkers, the difficulty knob, disjoint splits, rewards and reward noise."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from icpo.tasks import (
    TASKS,
    check_difficulty,
    generate_problems,
    get_task,
    make_reward_function,
    train_test_problems,
    with_reward_noise,
)

task_and_difficulty = st.sampled_from(sorted(TASKS)).flatmap(
    lambda name: st.tuples(st.just(name), st.integers(2, TASKS[name].max_difficulty))
)


@settings(max_examples=60, deadline=None)
@given(task_and_difficulty, st.integers(0, 10_000))
def test_checker_accepts_every_solution_and_rejects_every_slip(task_difficulty, seed):
    name, difficulty = task_difficulty
    task, rng = get_task(name), random.Random(seed)
    for _ in range(20):
        problem = task.generate(rng, difficulty)
        assert task.check(problem.prompt, problem.solution, problem.answer)
        assert task.check(problem.prompt, f" {problem.solution}\nthen more text", problem.answer)
        slip = task.mistake(problem, rng)
        if slip is not None:
            assert not task.check(problem.prompt, slip, problem.answer)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 999), st.integers(0, 999), st.integers(-3, 3))
def test_addition_checker_is_exact(a, b, offset):
    task = get_task("addition")
    assert task.check(f"{a}+{b}=", str(a + b + offset), str(a + b)) == (offset == 0)


@pytest.mark.parametrize(
    ("completion", "accepted"),
    [
        ("3*5+7", True),
        ("7+3*5", True),
        ("(3+5)*7-34", False),  # 34 is not one of the numbers
        ("3*5+7+7", False),  # 7 used twice, given once
        ("3*5+6", False),  # wrong value
        ("22", False),  # the target itself is not a given number
        ("__import__('os')", False),
        ("", False),
        ("3*5+", False),
    ],
)
def test_countdown_checker(completion, accepted):
    assert get_task("countdown").check("3 5 7>22:", completion, "22") is accepted


def test_difficulty_knob_controls_size():
    for difficulty in (1, 2, 4):
        for problem in generate_problems("addition", 50, seed=1, difficulty=difficulty):
            a, b = problem.prompt.rstrip("=").split("+")
            assert len(a) == len(b) == difficulty
    for difficulty in (2, 3, 5):
        for problem in generate_problems("countdown", 50, seed=1, difficulty=difficulty):
            assert len(problem.prompt.split(">")[0].split()) == difficulty


def test_train_and_test_are_disjoint_reproducible_and_from_different_seeds():
    train, test = train_test_problems("addition", 500, 200, seed=3, difficulty=2)
    assert not {p.prompt for p in train} & {p.prompt for p in test}
    assert len({p.prompt for p in train}) == 500 and len({p.prompt for p in test}) == 200
    again_train, again_test = train_test_problems("addition", 500, 200, seed=3, difficulty=2)
    assert again_train == train and again_test == test
    other_train, _ = train_test_problems("addition", 500, 200, seed=4, difficulty=2)
    assert other_train != train


def test_bad_task_and_difficulty_name_the_problem():
    with pytest.raises(ValueError, match="unknown task 'sudoku'.*addition"):
        get_task("sudoku")
    with pytest.raises(ValueError, match="difficulty 9 is out of range.*1..6"):
        check_difficulty(get_task("addition"), 9)
    with pytest.raises(ValueError, match="too few distinct prompts"):
        generate_problems("addition", 500, seed=0, difficulty=1)  # only 100 one-digit sums exist


def test_reward_function_follows_trl_signature():
    reward = make_reward_function("addition")
    assert reward.__name__ == "addition_correct"
    scores = reward(prompts=["2+3=", "2+3=", "9+9="], completions=["5", "6", "18\n"], answer=["5", "5", "18"])
    assert scores == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="no 'answer' column"):
        reward(prompts=["2+3="], completions=["5"], solution=["5"])


def _constant_reward(values):
    return lambda prompts, completions, **kwargs: list(values)


def test_reward_noise_is_reproducible_and_flips_at_the_asked_rate():
    values = [1.0, 0.0] * 10_000
    noisy_a = with_reward_noise(_constant_reward(values), 0.2, seed=7)
    noisy_b = with_reward_noise(_constant_reward(values), 0.2, seed=7)
    first, second = noisy_a([], []), noisy_b([], [])
    assert first == second
    assert noisy_a([], []) != first  # later calls draw fresh flips
    flips = sum(a != b for a, b in zip(values, first, strict=True))
    n, p = len(values), 0.2
    assert abs(flips - n * p) < 5 * math.sqrt(n * p * (1 - p))
    assert all(r == 1.0 - v for r, v in zip(first, values, strict=True) if r != v)


def test_reward_noise_zero_is_identity_and_keeps_unscorable_rows():
    base = _constant_reward([1.0, None, 0.0])
    assert with_reward_noise(base, 0.0, seed=0) is base
    assert with_reward_noise(base, 1.0, seed=0)([], []) == [0.0, None, 1.0]
    with pytest.raises(ValueError, match="probability in \\[0, 1\\]"):
        with_reward_noise(base, 1.5, seed=0)
