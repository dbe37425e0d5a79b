"""Presets and graders checked on the real benchmark files (skipped when ../shared is absent)."""

from __future__ import annotations

import json
import random

import pytest

from icpo.eval.benchmarks import PRESETS, build_prompt, load_benchmark, read_records
from icpo.rewards import grade_many


def _graded_share(problems, completions) -> float:
    verdicts = grade_many(
        problems[0].grader, completions, [p.gold for p in problems], [p.num_choices for p in problems]
    )
    return sum(v.correct is True for v in verdicts) / len(verdicts)


@pytest.mark.parametrize(
    ("name", "minimum"), [("math500", 0.99), ("gsm8k", 1.0), ("aime24", 1.0), ("minerva", 0.99)]
)
def test_gold_solutions_grade_correct(shared_benchmarks, name, minimum):
    problems = load_benchmark(name, shared_benchmarks)
    assert _graded_share(problems, [p.reference for p in problems]) >= minimum


def test_amc_gold_answers_grade_correct(shared_benchmarks):
    # AMC 2023 ships no solution text: the completion states the raw gold float (27.0) in a box.
    records = read_records(shared_benchmarks / PRESETS["amc23"].filename)
    problems = load_benchmark("amc23", shared_benchmarks)
    completions = [f"Adding up, the answer is $\\boxed{{{r['answer']}}}$." for r in records]
    assert _graded_share(problems, completions) == 1.0


@pytest.mark.parametrize("name", ["math500", "gsm8k", "aime24", "amc23", "mmlu_pro"])
def test_another_problems_gold_answer_grades_wrong(shared_benchmarks, name):
    problems = load_benchmark(name, shared_benchmarks)
    order = list(range(len(problems)))
    random.Random(0).shuffle(order)
    # pair each problem with a different one whose gold answer differs as written (equal golds are not errors)
    pairs = [
        (problems[i], problems[j])
        for i, j in zip(order, order[1:] + order[:1], strict=True)
        if str(problems[i].gold).strip() != str(problems[j].gold).strip()
    ]
    assert len(pairs) >= 0.9 * len(problems)
    if problems[0].grader == "choice":
        completions = [f"The answer is ({other.gold})" for _, other in pairs]
    else:
        completions = [f"The answer is $\\boxed{{{other.gold}}}$." for _, other in pairs]
    assert _graded_share([own for own, _ in pairs], completions) <= 0.01


def test_choice_presets_grade_their_gold_letters(shared_benchmarks):
    for name in ("mmlu_pro", "mmlu_stem"):
        problems = load_benchmark(name, shared_benchmarks)
        letters = ["ABCDEFGHIJ"[p.gold] if isinstance(p.gold, int) else p.gold for p in problems]
        assert _graded_share(problems, [f"So the answer is ({letter})." for letter in letters]) == 1.0


def test_every_preset_loads_with_unique_ids(shared_benchmarks):
    for name in PRESETS:
        problems = load_benchmark(name, shared_benchmarks)
        assert problems and len({p.id for p in problems}) == len(problems)
        assert all(p.gold is not None for p in problems)


def test_parquet_and_jsonl_give_the_same_problems(shared_benchmarks, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = read_records(shared_benchmarks / "aime24.jsonl")
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "aime24.parquet")
    assert load_benchmark("aime24", path=tmp_path / "aime24.parquet") == load_benchmark(
        "aime24", shared_benchmarks
    )


def test_bad_files_say_what_is_wrong(tmp_path):
    (tmp_path / "math500.jsonl").write_text(json.dumps({"question": "q"}) + "\n")
    with pytest.raises(ValueError, match="no field 'unique_id'"):
        load_benchmark("math500", tmp_path)
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        load_benchmark("gsm8k", tmp_path)
    with pytest.raises(ValueError, match="presets are"):
        load_benchmark("gpqa", tmp_path)


def test_prompt_uses_the_chat_template_when_present():
    from icpo.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    assert build_prompt(tokenizer, "What is 2+2?") == "What is 2+2?\n"
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    assert build_prompt(tokenizer, "What is 2+2?") == "<user>What is 2+2?\n<assistant>"


def test_theoremqa_gold_answers_grade_correct(shared_benchmarks):
    # TheoremQA has no worked solutions in a gradable form: each gold answer, boxed, is the completion.
    problems = load_benchmark("theoremqa", shared_benchmarks)
    assert len(problems) == 800 - 53  # records with a picture are skipped
    for grader in ("math", "choice", "boolean"):
        chosen = [p for p in problems if p.grader == grader]
        golds = [p.gold[1:-1].upper() if grader == "choice" else p.gold for p in chosen]
        assert _graded_share(chosen, [f"The answer is $\\boxed{{{gold}}}$." for gold in golds]) >= 0.99
