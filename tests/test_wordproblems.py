"""Word-problem training data: real files read with their gold answers, a split that keeps near-duplicates
on one side, chat rows the number reward grades."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icpo import wordproblems
from icpo.rewards import number_reward
from icpo.wordproblems import WordProblem, chat_rows, near_duplicate_key, split_word_problems

TEMPLATES = ["Tom has {} apples and gets {} more. How many apples?", "A box holds {} pens; {} are red. Blue?"]


def test_near_duplicates_share_a_key():
    assert near_duplicate_key("Tom has 3 apples, gets 12.5 more!") == near_duplicate_key(
        "tom has 70 apples gets 1 more"
    )
    assert near_duplicate_key("Tom has 3 apples") != near_duplicate_key("Tom has 3 pears")


@given(
    st.lists(
        st.tuples(st.sampled_from(TEMPLATES), st.integers(0, 99), st.integers(0, 99)), min_size=1, max_size=60
    ),
    st.floats(0.05, 0.95),
    st.integers(0, 10),
)
def test_split_keeps_each_near_duplicate_group_on_one_side(specs, fraction, seed):
    problems = [WordProblem(f"p-{i}", t.format(a, b), str(a + b)) for i, (t, a, b) in enumerate(specs)]
    train, held_out = split_word_problems(problems, fraction, seed)
    assert sorted(p.id for p in train + held_out) == sorted(p.id for p in problems)
    assert not {near_duplicate_key(p.question) for p in train} & {
        near_duplicate_key(p.question) for p in held_out
    }
    assert (train, held_out) == split_word_problems(problems, fraction, seed)


def test_real_files_load_with_their_gold_answers(shared_benchmarks):
    problems = wordproblems.load_word_problems(["mawps", "svamp", "asdiv"], shared_benchmarks)
    by_id = {p.id: p for p in problems}
    assert by_id["mawps-0"].answer == "43" and by_id["mawps-0"].question.startswith("Joan found 70 seashells")
    assert by_id["svamp-0"].answer == "145" and by_id["svamp-0"].question.endswith(
        "How big is each group of bananas?"
    )
    assert by_id["asdiv-0"].answer == "9"  # "9 (apples)"
    assert sum(p.id.startswith("mawps-") for p in problems) == 2065
    assert sum(p.id.startswith("svamp-") for p in problems) == 1000
    asdiv = sum(p.id.startswith("asdiv-") for p in problems)
    assert 2000 < asdiv < 2215  # answers such as "3:30 p.m." or "Yes" are not numbers and are skipped
    train, held_out = split_word_problems(problems, 0.2, 0)
    assert abs(len(held_out) - 0.2 * len(problems)) < 20
    assert not {near_duplicate_key(p.question) for p in train} & {
        near_duplicate_key(p.question) for p in held_out
    }


def test_chat_rows_are_graded_by_the_number_reward():
    rows = chat_rows([WordProblem("x-0", "Tom has 3 apples and gets 4 more. How many?", "7")])
    assert (
        rows[0]["prompt"][0]["role"] == "user" and wordproblems.INSTRUCTION in rows[0]["prompt"][0]["content"]
    )
    completions = [
        [{"role": "assistant", "content": "3 + 4 = 7"}],
        [{"role": "assistant", "content": "He has 8."}],
    ]
    assert number_reward(prompts=[rows[0]["prompt"]] * 2, completions=completions, answer=["7", "7"]) == [
        1.0,
        0.0,
    ]


def test_the_folder_named_by_the_environment_is_read_wherever_the_command_runs(tmp_path, monkeypatch):
    from icpo.eval.benchmarks import DATA_DIR_ENV

    folder = tmp_path / "data"
    folder.mkdir()
    record = {"input": "Tom has 3 apples and gets 4 more. How many?", "target": 7.0}
    (folder / "mawps.jsonl").write_text(json.dumps(record) + "\n")
    monkeypatch.setenv(DATA_DIR_ENV, str(folder))
    monkeypatch.chdir(tmp_path)
    assert wordproblems.load_word_problems(["mawps"]) == [WordProblem("mawps-0", record["input"], "7")]
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=DATA_DIR_ENV):
        wordproblems.load_word_problems(["mawps"])
