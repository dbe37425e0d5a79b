"""Reward functions: extraction, tricky equivalences, TRL's calling convention, bounded cost."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icpo.rewards import (
    MAX_ANSWER_CHARS,
    MathVerifier,
    boxed_format_reward,
    choice_reward,
    completion_text,
    extract_choice,
    extract_final_number,
    extract_math_answer,
    gold_answer,
    grade_many,
    last_boxed,
    make_reward,
    math_reward,
    number_reward,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# (grader, completion, gold, expected verdict): the equivalences a grader must get right.
TRICKY = [
    ("math", r"so $x = \boxed{\frac12}$.", "0.5", True),
    ("math", r"\boxed{0.5}", r"\frac{1}{2}", True),
    ("math", r"\boxed{\dfrac{3}{4}}", "0.75", True),
    ("math", r"\boxed{0.33}", r"\frac{1}{3}", False),
    ("math", r"\boxed{[-2, 3)}", r"[-2,3)", True),
    ("math", r"\boxed{(-2, 3)}", r"[-2,3)", False),
    ("math", r"\boxed{(-\infty, 5]}", r"(-\infty,5]", True),
    ("math", r"\boxed{10\text{ cm}}", "10", True),
    ("math", r"\boxed{\text{(C)}}", r"\text{(C)}", True),
    ("math", r"\boxed{90^\circ}", "90", True),
    ("math", r"\boxed{1,000}", "1000", True),
    ("math", r"\boxed{-7}", "-7", True),
    ("math", r"\boxed{7}", "-7", False),
    ("math", r"\boxed{2\sqrt{2}}", r"\sqrt{8}", True),
    ("math", r"\boxed{x^2+2x+1}", r"(x+1)^2", True),
    ("math", r"\boxed{3, 1}", "1, 3", True),
    ("math", r"The final answer is $\frac{5}{2}$.", "2.5", True),
    ("math", r"$\boxed{\textbf{(113) }}$", "113", True),
    ("math", r"\fbox{204} minutes", "204", True),
    ("math", "no answer at all", "4", False),
    ("number", "She makes 9 * 2 = $18 every day.\n#### 18", "18", True),
    ("number", "The total is $1,234.", "1234", True),
    ("number", r"The answer is \boxed{-3}.", "-3", True),
    ("number", "#### 18.00", "18", True),
    ("number", "first 5, then 6", "5", False),
    ("choice", "The answer is (C).", "C", True),
    ("choice", "The answer is (C).", 2, True),
    ("choice", "Answer: b", "B", True),
    ("choice", r"\boxed{D}", "D", True),
    ("choice", "D", 3, True),
    ("choice", "I think (A) is tempting but the answer is (B)", "A", False),
    ("choice", "The answer is (c)", "(c)", True),
    ("choice", "The answer is K", "A", False),
    ("choice", "The answer is a prime number, so (B)", "A", False),
    ("choice", "The answer is a prime number, so (B)", "B", True),
    ("choice", "so the answer is c.", "C", True),
    ("boolean", r"Hence the statement holds: \boxed{True}", True, True),
    ("boolean", "So no, it is not; the answer is False.", False, True),
    ("boolean", r"\boxed{yes}", False, False),
    ("boolean", "I cannot tell.", True, False),
]


@pytest.mark.parametrize(("grader", "completion", "gold", "expected"), TRICKY)
def test_tricky_equivalences(grader, completion, gold, expected):
    assert grade_many(grader, [completion], [gold])[0].correct is expected


def test_rewards_take_trl_arguments_strings_and_conversations():
    completions = [r"\boxed{4}", [{"role": "assistant", "content": r"It is \boxed{5}."}], r"\boxed{4}"]
    prompts = ["q"] * 3
    assert math_reward(prompts, completions, answer=["4", "4", None]) == [1.0, 0.0, None]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": "#### 12"}]}]
    assert number_reward(["q"], [parts], answer=["12"]) == [1.0]
    assert choice_reward(["q"] * 2, ["The answer is (J)", "(B)"], answer=["J", "not a letter"]) == [1.0, None]


# (grader, gold as a dataset stores it, the gold the grader compares; None = unreadable): the formats
# ``gold_answer``'s docstring lists.
GOLD_FORMATS = [
    ("number", "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes $18.\n#### 18", "18"),
    ("number", "#### 1,234", "1234"),
    ("number", 27.0, "27"),
    ("number", 2.5, "2.5"),
    ("number", "9 (apples)", "9"),
    ("number", "$18", "18"),
    ("number", "75%", "75"),
    ("number", r"so the total is \boxed{-3}.", "-3"),
    ("number", "abc", None),
    ("number", "3/4", None),
    ("number", "", None),
    ("number", float("nan"), None),
    ("number", True, None),
    ("math", "Half of it: 6.\n#### 6", "6"),
    ("math", r"It is $\boxed{\frac{1}{2}}$.", r"\frac{1}{2}"),
    ("math", 27.0, "27"),
    ("math", "", None),
    ("boolean", True, "True"),
    ("boolean", "no", "False"),
    ("boolean", "maybe", None),
    ("choice", 2, "C"),
    ("choice", "(c)", "C"),
    ("choice", "K", None),
    ("choice", "not a letter", None),
]


@pytest.mark.parametrize(("grader", "gold", "expected"), GOLD_FORMATS)
def test_gold_answer_reads_the_documented_formats(grader, gold, expected):
    assert gold_answer(grader, gold) == expected


@pytest.mark.parametrize(
    ("reward", "completion", "gold"),
    [
        (number_reward, r"\boxed{3}", "abc"),
        (number_reward, r"\boxed{3}", "3/4"),
        (math_reward, r"\boxed{3}", ""),
        (choice_reward, "The answer is (C)", "not a letter"),
        (make_reward("boolean"), r"\boxed{True}", "maybe"),
    ],
)
def test_every_reward_scores_an_unreadable_gold_none(reward, completion, gold):
    assert reward(["q"], [completion], answer=[gold]) == [None]


@given(
    st.integers(min_value=-(10**9), max_value=10**9),
    st.text(alphabet="abcdefgh <>=+*.\n", max_size=60),
)
def test_number_reward_reads_gsm8k_worked_solutions(number, worked):
    raw_gold = f"{worked}\n#### {number:,}"
    rewards = number_reward(
        ["q"] * 2, [rf"\boxed{{{number}}}", rf"\boxed{{{number + 1}}}"], answer=[raw_gold] * 2
    )
    assert rewards == [1.0, 0.0]


def test_number_and_math_rewards_on_real_gsm8k_answers(shared_benchmarks):
    """The raw GSM8K ``answer`` column (worked solution + "#### N") as the gold: the right boxed number
    scores 1 for every one of the 1319 test rows, the next row's number scores 0 wherever the two differ;
    math_reward agrees on the first 40."""
    rows = [json.loads(line) for line in (shared_benchmarks / "gsm8k_test.jsonl").open()]
    raw = [row["answer"] for row in rows]
    finals = [answer.rsplit("####", 1)[1].strip().replace(",", "") for answer in raw]
    right = [rf"The total is \boxed{{{final}}}." for final in finals]
    assert number_reward(["q"] * len(rows), right, answer=raw) == [1.0] * len(rows)
    shifted = right[1:] + right[:1]
    differs = [a != b for a, b in zip(finals, finals[1:] + finals[:1], strict=True)]
    rewards = number_reward(["q"] * len(rows), shifted, answer=raw)
    assert [r for r, d in zip(rewards, differs, strict=True) if d] == [0.0] * sum(differs)
    assert math_reward(["q"] * 40, right[:40], answer=raw[:40]) == [1.0] * 40


def test_number_reward_reads_the_raw_word_problem_answers(shared_benchmarks):
    """MAWPS' float ``target``, SVAMP's float ``Answer`` and ASDiv's "9 (apples)" text: each row's own
    number, boxed, scores 1; an ASDiv answer that is not a number ("3:30 p.m.", a ratio) is None."""
    for filename, column in (("mawps.jsonl", "target"), ("svamp.jsonl", "Answer"), ("asdiv.jsonl", "answer")):
        golds = [json.loads(line)[column] for line in (shared_benchmarks / filename).open()]
        readable = [gold for gold in golds if gold_answer("number", gold) is not None]
        completions = [rf"\boxed{{{gold_answer('number', gold)}}}" for gold in readable]
        assert number_reward(["q"] * len(readable), completions, answer=readable) == [1.0] * len(readable)
        assert len(readable) == (2084 if filename == "asdiv.jsonl" else len(golds)), filename


def test_choice_reward_limits_letters_to_the_options():
    completions = ["The answer is (E)", "The answer is (B)"]
    assert choice_reward(["q"] * 2, completions, answer=["E", "B"], options=[["a", "b", "c", "d"]] * 2) == [
        0.0,
        1.0,
    ]


def test_missing_gold_column_says_how_to_fix():
    with pytest.raises(ValueError, match="gold_column"):
        math_reward(["q"], [r"\boxed{1}"], solution=["1"])
    assert make_reward("math", gold_column="solution")(["q"], [r"\boxed{1}"], solution=["1"]) == [1.0]


def test_completion_text_joins_assistant_turns_only():
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}]
    assert completion_text(conversation) == "a"
    assert completion_text(None) == ""


def test_format_reward():
    completions = [r"so \boxed{3}.", r"\boxed{3} and then more words follow here", "none", r"\boxed{{3}"]
    assert boxed_format_reward(["q"] * 4, completions) == [1.0, 0.0, 0.0, 0.0]


@given(st.text(alphabet="abc123+-=^_ ", max_size=40))
def test_last_boxed_recovers_a_brace_balanced_answer(answer):
    assert last_boxed(rf"noise \boxed{{wrong}} then \boxed{{{answer}}} end") == answer


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_numbers_with_thousands_separators_match(number):
    assert extract_final_number(f"so the total is {number:,}.") == str(number)
    assert grade_many("number", [f"#### {number:,}"], [str(number)])[0].correct


@given(
    st.sampled_from("ABCDEFGHIJ"), st.sampled_from(["The answer is ({})", "Answer: {}", "**Answer:** ({})"])
)
def test_choice_phrasings(letter, template):
    assert extract_choice("Reasoning (A) first... " + template.format(letter)) == letter


def test_pathological_completions_are_bounded_off_the_main_thread():
    completions = [
        "x" * 100_000 + r"\boxed{" + "{" * 50_000,  # unbalanced nested braces
        r"\boxed{" + "1" * 100_000 + "}",  # a 100k-character answer
        "(" * 400 + ")" * 400 + r" \boxed{" + "(" * 400 + ")" * 400 + "}",
        r"\boxed{99999999999999999999!!}",
        "a" * 100_000 + r"\boxed{1}",
    ]
    results = []
    worker = threading.Thread(
        target=lambda: results.append(math_reward(["q"] * 5, completions, answer=["1"] * 5))
    )
    started = time.monotonic()
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "grading a pathological batch did not finish within 120 s"
    rewards = results[0]
    assert rewards[0] == 0.0 and rewards[1] == 0.0  # rejected: no readable answer / answer over the cap
    assert rewards[2] in (0.0, None) and rewards[3] in (0.0, None)
    assert rewards[4] == 1.0
    assert time.monotonic() - started < 120
    assert MAX_ANSWER_CHARS < 100_000


def test_hard_timeout_replaces_a_stuck_worker_from_a_thread():
    verifier = MathVerifier(workers=1, soft_timeout_s=0.5, hard_timeout_s=1.0)
    try:
        assert verifier.check([("1", "1")]) == [True]
        os.kill(verifier._pool[0].pid, signal.SIGSTOP)  # a worker stuck where no alarm can reach it
        results = []
        worker = threading.Thread(target=lambda: results.append(verifier.check([("2", "2")])))
        started = time.monotonic()
        worker.start()
        worker.join(timeout=30)
        assert results == [[None]] and time.monotonic() - started < 5
        assert verifier.check([(r"\frac{1}{2}", "0.5")]) == [True]  # a fresh worker serves the next pair
    finally:
        verifier.close()


def test_soft_timeout_gives_none_without_a_restart():
    verifier = MathVerifier(workers=1, soft_timeout_s=0.5, hard_timeout_s=5.0)
    try:
        verifier.check([("1", "1")])
        pid = verifier._pool[0].pid
        assert verifier.check([("1", "10^{10^{10^{10}}}")]) == [None]
        assert verifier._pool[0].pid == pid
    finally:
        verifier.close()


POWER_TOWERS = [r"\boxed{9^{9^{9^{9^{9}}}}}", r"\boxed{10^{10^{10}}}", r"\boxed{2^{2^{100}}}"] * 7


def test_a_batch_with_power_towers_stays_within_its_budget_and_grades_the_rest(shared_benchmarks):
    """21 power towers beside 43 real MATH-500 solutions in one call: the towers come back unscorable,
    every solution is graded right, the call ends within its budget, and so does the next one (replaced
    workers are forked, not re-imported). Timing figures: benchmarks/bench_grading.py."""
    rows = [json.loads(line) for line in (shared_benchmarks / "math500.jsonl").open()][:43]
    completions = [row["solution"] for row in rows] + [f"So the answer is {t}." for t in POWER_TOWERS]
    golds = [row["answer"] for row in rows] + ["1"] * len(POWER_TOWERS)
    verifier = MathVerifier(workers=3)
    try:
        verifier.check([("1", "1")])  # started outside the measured calls
        pairs = [(gold, extract_math_answer(text)) for text, gold in zip(completions, golds, strict=True)]
        for _ in range(2):
            started = time.monotonic()
            results = verifier.check(pairs)
            assert time.monotonic() - started < verifier.budget_s(len(pairs)) + 10  # never a stall
            assert results[:43] == [True] * 43
            assert results[43:] == [None] * 21
    finally:
        verifier.close()


def test_power_towers_through_math_reward_are_unscorable_and_the_rest_right():
    rewards = math_reward(
        ["q"] * 4,
        [POWER_TOWERS[0], r"so \boxed{\frac12}", POWER_TOWERS[1], "no answer"],
        answer=["1", "0.5", "1", "3"],
    )
    assert rewards == [None, 1.0, None, 0.0]


def test_killed_workers_cost_at_most_their_pairs():
    verifier = MathVerifier(workers=2)
    try:
        verifier.check([("1", "1")])
        for worker in verifier._pool:
            os.kill(worker.pid, signal.SIGKILL)  # as the out-of-memory killer would
        expected = [True, False, True, True, False, True]
        pairs = [("1", "1"), ("2", "3"), (r"\frac{1}{2}", "0.5"), ("4", "4"), ("x", "y"), ("2x", "x+x")]
        results = verifier.check(pairs)
        assert results.count(None) <= 2  # at most the pairs in flight on the dead workers
        assert all(r is None or r == e for r, e in zip(results, expected, strict=True))
        assert verifier.check(pairs) == expected  # and the pool is whole again
    finally:
        verifier.close()


@pytest.mark.slow
def test_rewards_plug_into_the_icpo_trainer(tiny_policy, tmp_path):
    from datasets import Dataset

    from icpo import ICPOConfig, ICPOTrainer
    from tests.trl_setup import PROMPTS, config_kwargs

    dataset = Dataset.from_dict(
        {"prompt": PROMPTS, "answer": [str(sum(map(int, p[:-1].split("+")))) for p in PROMPTS]}
    )
    args = ICPOConfig(**config_kwargs(tmp_path, max_steps=1), icpo_alpha=0.5)
    trainer = ICPOTrainer(
        model=str(tiny_policy),
        reward_funcs=[math_reward, boxed_format_reward],
        args=args,
        train_dataset=dataset,
    )
    trainer.train()
    logged = {key for entry in trainer.state.log_history for key in entry}
    assert {"rewards/math_reward/mean", "rewards/boxed_format_reward/mean"} <= logged


def test_a_worker_that_cannot_start_is_reported(monkeypatch):
    verifier = MathVerifier()
    monkeypatch.setattr("icpo.rewards.sys.executable", "/bin/false")
    with pytest.raises(RuntimeError, match="start-up"):
        verifier.check([("1", "1")])
