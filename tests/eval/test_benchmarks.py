"""Presets and graders checked on the real benchmark files (skipped when ../shared is absent)."""

from __future__ import annotations

import json
import random
import re
from dataclasses import replace

import pytest

from icpo.eval.benchmarks import MATH_INSTRUCTION, PRESETS, build_prompt, load_benchmark, read_records
from icpo.rewards import grade_many
from tests.conftest import REPO_ROOT


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


def test_unreadable_benchmark_files_are_one_line_naming_the_file(tmp_path):
    (tmp_path / "math500.jsonl").mkdir()
    with pytest.raises(ValueError, match=r"math500.jsonl is a folder; pass --data-dir"):
        load_benchmark("math500", tmp_path)
    (tmp_path / "gsm8k_test.jsonl").write_bytes(b'{"question": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=rf"{tmp_path / 'gsm8k_test.jsonl'} is not UTF-8 text"):
        load_benchmark("gsm8k", tmp_path)
    (tmp_path / "aime24.jsonl").write_text("[1, 2]\n")
    with pytest.raises(ValueError, match=r"aime24.jsonl record 0 does not fit preset 'aime24'"):
        load_benchmark("aime24", tmp_path)
    (tmp_path / "gpqa_diamond.zip").write_text("not a zip")
    with pytest.raises(ValueError, match=r"gpqa_diamond.zip cannot be read as the gpqa_diamond file"):
        load_benchmark("gpqa_diamond", tmp_path)
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match=r"x.parquet is not a readable Parquet file"):
        load_benchmark("mmlu_pro", tmp_path, path=tmp_path / "x.parquet")


def test_prompt_uses_the_chat_template_when_present():
    from icpo.tiny import build_char_tokenizer

    tokenizer = build_char_tokenizer()
    assert build_prompt(tokenizer, "What is 2+2?") == "What is 2+2?\n"
    tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    assert build_prompt(tokenizer, "What is 2+2?") == "<user>What is 2+2?\n<assistant>"
    assert (
        build_prompt(tokenizer, "What is 2+2?", "Be brief.")
        == "<system>Be brief.\n<user>What is 2+2?\n<assistant>"
    )


def test_theoremqa_gold_answers_grade_correct(shared_benchmarks):
    # TheoremQA has no worked solutions in a gradable form: each gold answer, boxed, is the completion.
    problems = load_benchmark("theoremqa", shared_benchmarks)
    assert len(problems) == 800 - 53  # records with a picture are skipped
    for grader in ("math", "choice", "boolean"):
        chosen = [p for p in problems if p.grader == grader]
        golds = [p.gold[1:-1].upper() if grader == "choice" else p.gold for p in chosen]
        assert _graded_share(chosen, [f"The answer is $\\boxed{{{gold}}}$." for gold in golds]) >= 0.99


@pytest.mark.parametrize(
    ("name", "count", "first_gold"), [("mawps", 2065, "43"), ("svamp", 1000, "145"), ("asdiv", 2084, "9")]
)
def test_word_problem_presets_load_every_numeric_record(shared_benchmarks, name, count, first_gold):
    problems = load_benchmark(name, shared_benchmarks)
    assert len(problems) == count and len({p.id for p in problems}) == count  # asdiv: 131 non-numeric skipped
    assert problems[0].gold == first_gold and problems[0].grader == "number"
    assert _graded_share(problems, [f"The answer is \\boxed{{{p.gold}}}." for p in problems]) == 1.0


def test_gpqa_is_read_in_memory_and_its_options_shuffled_with_a_fixed_seed(shared_benchmarks):
    from icpo.eval.benchmarks import read_gpqa_zip

    records = {r["Record ID"]: r for r in read_gpqa_zip(shared_benchmarks / "gpqa_diamond.zip")}
    problems = load_benchmark("gpqa_diamond", shared_benchmarks)
    assert len(problems) == 198 and {p.id for p in problems} == set(records)
    assert [p.gold for p in problems] == [p.gold for p in load_benchmark("gpqa_diamond", shared_benchmarks)]
    golds = [p.gold for p in problems]
    assert all(golds.count(letter) > 30 for letter in range(4)), "the shuffle must move the correct option"
    for problem in problems:  # the option at the gold position is the correct answer
        correct = records[problem.id]["Correct Answer"].strip()
        assert f"\n({'ABCD'[problem.gold]}) {correct}\n" in problem.question


def test_default_data_dir_does_not_depend_on_the_current_folder(shared_benchmarks, tmp_path, monkeypatch):
    from icpo.eval.benchmarks import DATA_DIR_ENV, default_data_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert default_data_dir().is_absolute()
    assert len(load_benchmark("mawps", limit=3)) == 3
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=DATA_DIR_ENV):
        load_benchmark("mawps")


def test_an_empty_benchmark_file_is_an_error(tmp_path):
    (tmp_path / "mawps.jsonl").write_text("")
    with pytest.raises(ValueError, match="holds no mawps problems"):
        load_benchmark("mawps", tmp_path)


# --- the Hugging Face Hub path, offline: folders laid out like the Hub repositories ------------------

# A few records in each Hub source's schema (the local files' schema: the sources were chosen for it).
HUB_ROWS = {
    "gsm8k": [
        {
            "question": "Tom has 3 apples and buys 4. How many?",
            "answer": "3 + 4 = <<3+4=7>>7\n#### 7",
            "idx": 0,
        },
        {
            "question": "A box holds 1,200 pens; 200 go. Left?",
            "answer": "1200 - 200 = 1000\n#### 1,000",
            "idx": 1,
        },
    ],
    "math500": [
        {
            "problem": "What is $1+1$?",
            "solution": "It is $\\boxed{2}$.",
            "answer": "2",
            "subject": "Prealgebra",
            "level": 1,
            "unique_id": "test/prealgebra/1.json",
        }
    ],
    "mawps": [
        {"input": "Joan found 70 seashells and gave 27 away. How many are left?", "target": 43.0, "idx": 0}
    ],
    "svamp": [
        {"Body": "Each pack has 5 pens", "Question": "How many pens in 3 packs?", "Answer": 15.0, "ID": "s-1"}
    ],
    "asdiv": [
        {
            "body": "Seven red apples and two green apples are in the basket.",
            "question": "How many apples?",
            "answer": "9 (apples)",
            "idx": 0,
        },
        {
            "body": "A clock shows noon.",
            "question": "What time is it in 3 hours?",
            "answer": "3:30 p.m.",
            "idx": 1,
        },
    ],
}


def _write_jsonl(path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture
def hub_layout(tmp_path, monkeypatch):
    """Every preset of HUB_ROWS pointed at a local folder laid out like its Hub repository (its
    ``data_files`` path, or a root ``{split}.jsonl``), with no local benchmark file anywhere: the checkout
    root moved to an empty folder and $ICPO_BENCHMARKS_DIR unset. Returns a folder of the same rows as
    local files."""
    import datasets

    from icpo.eval import benchmarks

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets-cache"))
    monkeypatch.setattr(benchmarks, "REPOSITORY_ROOT", tmp_path / "no-checkout" / "icpo")
    monkeypatch.delenv(benchmarks.DATA_DIR_ENV, raising=False)
    local = tmp_path / "local"
    for name, rows in HUB_ROWS.items():
        preset = PRESETS[name]
        repository = tmp_path / "hub" / preset.hub.repo
        _write_jsonl(repository / (preset.hub.data_files or f"{preset.hub.split}.jsonl"), rows)
        hub = replace(preset.hub, repo=str(repository))
        monkeypatch.setitem(benchmarks.PRESETS, name, replace(preset, hub=hub))
        _write_jsonl(local / preset.filename, rows)
    return local


def test_with_no_local_file_presets_load_from_their_hub_dataset(hub_layout):
    from icpo.eval.benchmarks import preset_records

    for name in HUB_ROWS:
        records, source = preset_records(name)
        assert source.startswith(str(hub_layout.parent / "hub")), source
        assert load_benchmark(name) == load_benchmark(name, hub_layout), name
    gsm8k = load_benchmark("gsm8k")
    assert [p.gold for p in gsm8k] == ["7", "1000"] and gsm8k[0].question.endswith("\\boxed{}.")


def test_word_problems_load_from_the_hub_datasets_with_the_same_split(hub_layout):
    from icpo.wordproblems import load_word_problems, split_word_problems

    sources = ["mawps", "svamp", "asdiv"]
    from_hub = load_word_problems(sources)
    assert from_hub == load_word_problems(sources, hub_layout)
    assert [p.answer for p in from_hub] == ["43", "15", "9"]  # ASDiv's "3:30 p.m." skipped
    assert split_word_problems(from_hub, 0.5, 0) == split_word_problems(
        load_word_problems(sources, hub_layout), 0.5, 0
    )


def test_an_unreachable_hub_dataset_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    from icpo.eval import benchmarks

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(benchmarks, "REPOSITORY_ROOT", tmp_path / "no-checkout" / "icpo")
    monkeypatch.delenv(benchmarks.DATA_DIR_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as error:
        load_benchmark("gsm8k")
    message = str(error.value)
    assert "\n" not in message and "HuggingFaceTB/math_tasks" in message and "--data-dir" in message


def test_every_hub_source_is_pinned_to_a_commit_or_documented_as_unpinned():
    evaluation = (REPO_ROOT / "docs" / "evaluation.md").read_text()
    for name, preset in PRESETS.items():
        revision = preset.hub.revision
        assert revision is None or re.fullmatch(r"[0-9a-f]{40}", revision), name
        row = next((line for line in evaluation.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None and f"`{preset.hub.repo}`" in row, (
            f"docs/evaluation.md: no Hub source for {name}"
        )
        assert ("unpinned" in row) == (revision is None), f"docs/evaluation.md: {name}'s pin is misstated"
        assert revision is None or revision[:12] in row, name


# --- prompt templates ---------------------------------------------------------------------------------


def test_prompt_templates_and_system_prompt(hub_layout):
    from icpo.wordproblems import chat_prompt

    (default,) = load_benchmark("mawps")
    question = "Joan found 70 seashells and gave 27 away. How many are left?"
    assert default.question == f"{question}\n\n{MATH_INSTRUCTION}" and default.system is None
    (brief,) = load_benchmark("mawps", template="brief", system_prompt="Be brief.")
    assert brief.question == chat_prompt(question)[0]["content"] and brief.system == "Be brief."
    (custom,) = load_benchmark("mawps", template="Q: {question} Put it in \\boxed{}.")
    assert custom.question == f"Q: {question} Put it in \\boxed{{}}."
    with pytest.raises(ValueError, match="neither a named template"):
        load_benchmark("mawps", template="no placeholder")
