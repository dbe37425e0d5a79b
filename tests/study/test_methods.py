"""The study's methods and its chat-task testbeds."""

from __future__ import annotations

import pytest

from icpo.study.chat_tasks import REGIMES, chat, rl_rows, split
from icpo.study.methods import METHODS, get_method


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_builds_the_trainer_config_it_names(name, tmp_path):
    from icpo.trl import ICPOConfig

    method = get_method(name)
    config = ICPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, **method.config_kwargs())
    assert config.icpo_options == method.options
    assert config.epsilon_high == (0.28 if name == "clip-higher" else None)
    assert (config.icpo_alpha == 0) == (name in ("grpo", "clip-higher"))
    assert config.icpo_combine == {"unlikeliness": "unlikeliness", "icpo-reward": "reward"}.get(
        name, "advantage"
    )


def test_an_unknown_method_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown method 'dapo'; choose from grpo, icpo, icpo-reward"):
        get_method("dapo")


@pytest.mark.parametrize("regime", ["single-digit", "two-digit-add"])
def test_held_out_problems_are_never_trained_on_and_answers_are_right(regime):
    train, test = split(regime, 64, seed=0)
    assert len(test) == 64 and not {p.question for p in train} & {p.question for p in test}
    for problem in train[:50] + test:
        a, op, b = problem.question.removeprefix("What is ").removesuffix("?").split()
        assert int(problem.answer) == (int(a) * int(b) if op == "×" else int(a) + int(b))
    assert split(regime, 64, seed=0) == (train, test) and split(regime, 64, seed=1)[1] != test


def test_word_problems_hold_out_whole_near_duplicate_groups(shared_benchmarks, monkeypatch):
    """The real MAWPS/SVAMP/ASDiv files: 64 held-out problems, none a near-duplicate of a training one."""
    from icpo.wordproblems import near_duplicate_key

    monkeypatch.setenv("ICPO_BENCHMARKS_DIR", str(shared_benchmarks))
    assert "word-problems" in REGIMES
    train, test = split("word-problems", 64, seed=0)
    assert len(test) == 64 and len(train) > 3000
    assert not {near_duplicate_key(p.question) for p in train} & {
        near_duplicate_key(p.question) for p in test
    }
    assert all(isinstance(float(p.answer.replace(",", "")), float) for p in test)  # gold numbers parse
    assert (
        split("word-problems", 64, seed=0) == (train, test) and split("word-problems", 64, seed=1)[1] != test
    )


def test_an_unknown_chat_task_names_the_known_ones():
    with pytest.raises(
        ValueError, match="unknown chat task 'sudoku'; choose from single-digit, two-digit-add"
    ):
        split("sudoku", 4)


def test_a_chat_prompt_has_an_empty_system_turn_and_the_brief_instruction():
    _, test = split("single-digit", 4)
    messages = chat(test[0])
    assert messages[0] == {"role": "system", "content": ""}
    assert messages[1]["content"].startswith(test[0].question) and "final number" in messages[1]["content"]
    assert rl_rows(test)[0] == {"prompt": messages, "answer": test[0].answer}
    with pytest.raises(ValueError, match="num_test must lie in 1..199"):
        split("single-digit", 200)
