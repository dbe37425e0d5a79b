"""``python -m icpo.eval.cli`` as a real process: killed mid-run, then resumed to the uninterrupted result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from icpo.eval.cli import main
from icpo.eval.harness import SAMPLES_FILE, read_samples
from tests.conftest import REPO_ROOT


def _command(model, data_dir, out_dir) -> list[str]:
    return [
        sys.executable, "-m", "icpo.eval.cli", "--model", str(model), "--benchmarks", "math500",
        "--data-dir", str(data_dir), "--out", str(out_dir), "--samples", "2", "--batch-size", "2",
        "--max-new-tokens", "8", "--temperature", "1.0", "--no-progress",
    ]  # fmt: skip


def test_killed_eval_resumes_to_the_uninterrupted_result(tiny_policy, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with (data_dir / "math500.jsonl").open("w") as handle:
        for i in range(8):
            record = {"problem": f"What is {i}+1?", "solution": f"\\boxed{{{i + 1}}}", "answer": str(i + 1),
                      "subject": "Algebra", "level": 1, "unique_id": f"toy/{i}.json"}  # fmt: skip
            handle.write(json.dumps(record) + "\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    interrupted = tmp_path / "interrupted"
    command = _command(tiny_policy, data_dir, interrupted)
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if (interrupted / SAMPLES_FILE).exists() and (interrupted / SAMPLES_FILE).stat().st_size > 0:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = len(read_samples(interrupted / SAMPLES_FILE))
    assert 0 < written < 16, f"the kill should land mid-run, found {written} of 16 lines"

    resumed = subprocess.run(
        _command(tiny_policy, data_dir, interrupted), env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert main(_command(tiny_policy, data_dir, tmp_path / "whole")[3:]) == 0  # the same run, uninterrupted

    def by_key(path):
        return {(r["problem_id"], r["sample"]): r for r in read_samples(path / SAMPLES_FILE)}

    assert len(by_key(interrupted)) == 16
    assert by_key(interrupted) == by_key(tmp_path / "whole")
    assert json.loads((interrupted / "summary.json").read_text()) == json.loads(
        (tmp_path / "whole" / "summary.json").read_text()
    )
    assert "avg@2" in resumed.stdout and "pass@2" in resumed.stdout


def test_register_adds_the_eval_command():
    import argparse

    from icpo.eval.cli import register, run

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["eval", "--model", "m", "--out", "o", "--benchmarks", "gsm8k,aime24", "--samples", "4"]
    )
    assert args.run is run and args.samples == 4 and args.benchmarks == "gsm8k,aime24"


def test_bad_input_gives_one_error_line_before_any_work(tiny_policy, tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        (["--model", str(tiny_policy / "model.safetensors")], "is a file; give the model's folder"),
        (["--model", str(tmp_path / "missing")], "does not exist"),
        (["--model", str(tiny_policy), "--benchmarks", "gsm9k"], "unknown benchmark 'gsm9k'"),
        (["--model", str(tiny_policy), "--data-dir", str(tmp_path / "none")], "pass --data-dir"),
    ]
    for arguments, message in cases:
        assert main([*arguments, "--out", str(out)]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("icpo eval: error: ") and message in lines[0], lines
    assert not out.exists(), "nothing may be written before the input is checked"


def _toy_data(folder, count: int = 2):
    folder.mkdir(exist_ok=True)
    with (folder / "math500.jsonl").open("w") as handle:
        for i in range(count):
            record = {"problem": f"What is {i}+1?", "solution": "", "answer": str(i + 1), "subject": "Algebra",
                      "level": 1, "unique_id": f"toy/{i}.json"}  # fmt: skip
            handle.write(json.dumps(record) + "\n")
    return folder


def _one_error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("icpo eval: error: "), lines
    return lines[0]


def test_every_bad_argument_is_refused_before_anything_is_written(tiny_policy, tmp_path, capsys, monkeypatch):
    data = _toy_data(tmp_path / "data")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "math500.jsonl").write_text("")
    (tmp_path / "a-file").write_text("x")
    monkeypatch.chdir(tmp_path)
    base = ["--model", str(tiny_policy), "--data-dir", str(data), "--max-new-tokens", "4", "--no-progress"]
    cases = [
        (["--samples", "0"], "--samples) must be >= 1, got 0"),
        (["--samples", "-2"], "--samples) must be >= 1, got -2"),
        (["--batch-size", "0"], "--batch-size) must be >= 1, got 0"),
        (["--max-new-tokens", "0"], "--max-new-tokens) must be >= 1, got 0"),
        (["--limit", "0"], "--limit must be >= 1"),
        (["--seed", "99999999999999999999"], "--seed must be in [0, 2**32 - 1]"),
        (["--seed", "-1"], "--seed must be in [0, 2**32 - 1], got -1"),
        (["--temperature", "-0.5"], "--temperature) must be >= 0"),
        (["--samples", "2"], "at temperature 0 would be 2 copies"),
        (["--top-p", "0"], "--top-p) must lie in (0, 1]"),
        (["--model", "runs/no-such-model"], "is neither a folder here"),
        (["--model", "no-such-model"], "model folder 'no-such-model' does not exist"),
        (["--data-dir", str(tmp_path / "empty")], "holds no math500 problems"),
    ]
    for arguments, message in cases:
        assert main([*base, *arguments, "--out", "out"]) == 2, arguments
        assert message in _one_error_line(capsys), arguments
        assert not (tmp_path / "out").exists(), f"{arguments} wrote before failing"
    assert main([*base, "--out", "a-file"]) == 2 and "is a file" in _one_error_line(capsys)


def test_a_failed_eval_leaves_its_folder_usable_and_a_changed_rerun_is_one_line(
    tiny_policy, tmp_path, capsys
):
    data = _toy_data(tmp_path / "data")
    base = [
        "--model",
        str(tiny_policy),
        "--data-dir",
        str(data),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    assert main([*base, "--max-new-tokens", "0"]) == 2
    _one_error_line(capsys)
    assert main([*base, "--max-new-tokens", "4"]) == 0, "the corrected rerun must run"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["math500"]["problems"] == 2 and summary["math500"]["truncated"] in (0.0, 0.5, 1.0)
    capsys.readouterr()
    config = (tmp_path / "out" / "config.json").read_text()
    assert main([*base, "--max-new-tokens", "5"]) == 2
    assert "holds a run with other settings" in _one_error_line(capsys)
    assert (tmp_path / "out" / "config.json").read_text() == config


def test_a_samples_file_with_a_repeated_line_is_refused(tiny_policy, tmp_path, capsys):
    data = _toy_data(tmp_path / "data")
    command = ["--model", str(tiny_policy), "--data-dir", str(data), "--out", str(tmp_path / "out"),
               "--max-new-tokens", "4", "--no-progress"]  # fmt: skip
    assert main(command) == 0
    capsys.readouterr()
    samples = tmp_path / "out" / SAMPLES_FILE
    samples.write_text(samples.read_text() + samples.read_text().splitlines(keepends=True)[0])
    assert main(command) == 2
    assert "repeats the record of line 1" in _one_error_line(capsys)


def test_a_second_eval_on_a_locked_folder_exits_2_naming_the_holder(tiny_policy, tmp_path):
    data = _toy_data(tmp_path / "data")
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"from icpo.runfolder import locked_folder\nimport sys, time\nwith locked_folder({str(out)!r}):\n"
         "    print('held', flush=True)\n    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        second = subprocess.run(
            [sys.executable, "-m", "icpo.eval.cli", "--model", str(tiny_policy), "--data-dir", str(data),
             "--out", str(out), "--max-new-tokens", "4", "--no-progress"],
            capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 2
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"PID {holder.pid}" in lines[0], lines
    assert not (out / SAMPLES_FILE).exists()


def test_help_shows_the_defaults():
    import contextlib
    import io

    text = io.StringIO()
    with contextlib.redirect_stdout(text), contextlib.suppress(SystemExit):
        main(["--help"])
    assert "(default: 512)" in text.getvalue() and "(default: 16)" in text.getvalue()


def _toy_command(tiny_policy, data, out, *extra: str) -> list[str]:
    return ["--model", str(tiny_policy), "--data-dir", str(data), "--out", str(out), "--max-new-tokens", "4",
            "--no-progress", *extra]  # fmt: skip


def test_a_lock_that_is_a_symlink_leaves_its_target_whole(tiny_policy, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("another user's file\n")
    (tmp_path / "sym").mkdir()
    (tmp_path / "sym" / ".lock").symlink_to(victim)
    assert main(_toy_command(tiny_policy, _toy_data(tmp_path / "data"), tmp_path / "sym")) == 2
    assert "is a symlink" in _one_error_line(capsys)
    assert victim.read_text() == "another user's file\n"


def test_retrained_weights_in_the_same_folder_are_a_new_run_and_a_moved_folder_is_not(
    tiny_policy, tmp_path, capsys
):
    import shutil

    data = _toy_data(tmp_path / "data")
    model = shutil.copytree(tiny_policy, tmp_path / "model")
    out = tmp_path / "out"
    assert main(_toy_command(model, data, out)) == 0
    moved = shutil.move(model, tmp_path / "moved")
    samples = (out / SAMPLES_FILE).read_text()
    assert main(_toy_command(moved, data, out)) == 0  # same content, another path: the same run
    assert (out / SAMPLES_FILE).read_text() == samples
    weights = tmp_path / "moved" / "model.safetensors"
    data_bytes = bytearray(weights.read_bytes())
    data_bytes[-1] ^= 1  # retrained: same file size, same header, other weights
    weights.write_bytes(bytes(data_bytes))
    capsys.readouterr()
    assert main(_toy_command(moved, data, out)) == 2
    line = _one_error_line(capsys)
    assert "holds a run with other settings" in line and "'model'" in line
    assert (out / SAMPLES_FILE).read_text() == samples


def test_a_rerun_with_fewer_benchmarks_keeps_the_others_in_the_summary(tiny_policy, tmp_path):
    data = _toy_data(tmp_path / "data")
    with (data / "gsm8k_test.jsonl").open("w") as handle:
        for i in range(2):
            handle.write(json.dumps({"question": f"What is {i}+2?", "answer": f"so #### {i + 2}"}) + "\n")
    out = tmp_path / "out"
    assert main(_toy_command(tiny_policy, data, out, "--benchmarks", "math500,gsm8k")) == 0
    both = json.loads((out / "summary.json").read_text())
    assert main(_toy_command(tiny_policy, data, out, "--benchmarks", "gsm8k")) == 0
    assert json.loads((out / "summary.json").read_text()) == both
    assert set(both) == {"math500", "gsm8k"}


def test_bad_out_folders_and_damaged_run_files_are_one_line(tiny_policy, tmp_path, capsys, monkeypatch):
    data = _toy_data(tmp_path / "data")
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert main(_toy_command(tiny_policy, data, "")) == 2
    assert "--out is empty" in _one_error_line(capsys)
    (tmp_path / "a-file").write_text("x")
    assert main(_toy_command(tiny_policy, data, tmp_path / "a-file" / "run")) == 2
    assert "which is a file" in _one_error_line(capsys)
    assert main(_toy_command(tiny_policy, data, "/sys/icpo-test-out")) == 2  # read-only even for root
    assert "--out /sys/icpo-test-out cannot be written" in _one_error_line(capsys)
    assert list((tmp_path / "work").iterdir()) == []
    model_config = (tiny_policy / "config.json").read_text()
    assert main(_toy_command(tiny_policy, data, tiny_policy)) == 2  # --out is the model's own folder
    assert "is not an icpo eval's config.json (a model folder?)" in _one_error_line(capsys)
    assert (tiny_policy / "config.json").read_text() == model_config

    out = tmp_path / "out"
    assert main(_toy_command(tiny_policy, data, out)) == 0
    capsys.readouterr()
    config, samples = out / "config.json", out / SAMPLES_FILE
    good_config, lines = config.read_text(), samples.read_text().splitlines(keepends=True)
    config.write_text("[1, 2]\n")
    assert main(_toy_command(tiny_policy, data, out)) == 2
    assert "config.json is not a JSON object" in _one_error_line(capsys)
    config.write_text(good_config)
    damaged = json.loads(lines[1])
    del damaged["problem_id"]
    samples.write_text(lines[0] + json.dumps(damaged) + "\n")
    assert main(_toy_command(tiny_policy, data, out)) == 2
    assert f"{samples}:2: field 'problem_id' is missing" in _one_error_line(capsys)
    samples.write_bytes(lines[0].encode() + b"\xff\xfe\n")
    assert main(_toy_command(tiny_policy, data, out)) == 2
    assert f"{samples} is not UTF-8" in _one_error_line(capsys)


def test_ctrl_c_is_one_line_saying_how_to_resume(tiny_policy, tmp_path, capsys, monkeypatch):
    from icpo.eval import harness

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(harness, "evaluate", interrupted)
    assert main(_toy_command(tiny_policy, _toy_data(tmp_path / "data"), tmp_path / "out")) == 130
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (
        "icpo eval: interrupted; run the same command again to resume; finished work is kept."
    )
    assert "Traceback" not in err


# --- prompts, a recipe's held-out split, the word-problem note, help -----------------------------------

WORD_PROBLEM_RECIPE = REPO_ROOT / "recipes" / "smollm2_wordproblems_icpo.yaml"


def test_a_recipes_split_is_evaluated_with_exactly_its_training_prompts(
    tiny_policy, tmp_path, shared_benchmarks, monkeypatch
):
    from icpo.recipe import load_recipe, recipe_word_problems

    monkeypatch.setenv("ICPO_BENCHMARKS_DIR", str(shared_benchmarks))
    base = ["--model", str(tiny_policy), "--recipe", str(WORD_PROBLEM_RECIPE), "--limit", "3",
            "--max-new-tokens", "2", "--no-progress"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "held-out")]) == 0
    samples = read_samples(tmp_path / "held-out" / SAMPLES_FILE)
    overrides = {"model": str(tiny_policy), "trainable_layers": 1}
    held_out_rows = load_recipe(WORD_PROBLEM_RECIPE, overrides).held_out[:3]
    assert {s["benchmark"] for s in samples} == {"wordproblems-held-out"}
    # the tiny tokenizer has no chat template: the prompt is the user message and a newline
    assert [s["prompt"] for s in samples] == [row["prompt"][0]["content"] + "\n" for row in held_out_rows]
    assert [s["gold"] for s in samples] == [row["answer"] for row in held_out_rows]

    assert main([*base, "--split", "train", "--out", str(tmp_path / "train")]) == 0
    train_ids = {s["problem_id"] for s in read_samples(tmp_path / "train" / SAMPLES_FILE)}
    _, _, held_out = recipe_word_problems(WORD_PROBLEM_RECIPE)
    assert train_ids and not train_ids & {p.id for p in held_out}


def test_prompt_template_and_system_prompt_reach_the_prompt_and_the_run_config(tiny_policy, tmp_path, capsys):
    data = _toy_data(tmp_path / "data", count=1)
    out = tmp_path / "out"
    extra = ["--prompt-template", "Q: {question} A:", "--system-prompt", "Be brief."]
    assert main(_toy_command(tiny_policy, data, out, *extra)) == 0
    (sample,) = read_samples(out / SAMPLES_FILE)
    assert sample["prompt"] == "Be brief.\n\nQ: What is 0+1? A:\n"
    assert json.loads((out / "config.json").read_text())["prompt_template"] == "Q: {question} A:"
    capsys.readouterr()
    assert main(_toy_command(tiny_policy, data, out, "--prompt-template", "brief")) == 2
    assert "other settings" in _one_error_line(capsys)


def test_evaluating_a_word_problem_preset_says_it_holds_training_problems(tiny_policy, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "mawps.jsonl").write_text(
        json.dumps({"input": "Tom has 3 apples and gets 4. How many?", "target": 7.0}) + "\n"
    )
    assert main(_toy_command(tiny_policy, data, tmp_path / "out", "--benchmarks", "mawps")) == 0
    assert "mawps includes the problems the word-problem recipes train on" in capsys.readouterr().err


def test_help_wraps_between_words_and_explains_the_backend(monkeypatch, capsys):
    import contextlib

    from icpo.eval.benchmarks import PRESETS, PROMPT_TEMPLATES

    monkeypatch.setenv("COLUMNS", "60")
    with contextlib.suppress(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert set(PRESETS) | set(PROMPT_TEMPLATES) <= set(text.replace(",", " ").split())  # no name cut in two
    assert "(default: None)" not in text
    backend = " ".join(text[text.rindex("--backend") :].split())
    assert (
        "vllm (needs vLLM and a CUDA GPU); auto picks vllm when both are present, else transformers"
        in backend
    )


def test_gpqa_questions_options_and_gold_never_reach_the_disk(tiny_policy, tmp_path, shared_benchmarks):
    from icpo.eval.benchmarks import load_benchmark, read_gpqa_zip

    out = tmp_path / "out"
    command = _toy_command(
        tiny_policy, shared_benchmarks, out, "--benchmarks", "gpqa_diamond", "--limit", "2"
    )
    assert main(command) == 0
    rows = {r["Record ID"]: r for r in read_gpqa_zip(shared_benchmarks / "gpqa_diamond.zip")}
    written = "".join(path.read_text() for path in out.iterdir() if path.suffix in (".json", ".jsonl"))
    for problem in load_benchmark("gpqa_diamond", shared_benchmarks, limit=2):
        row = rows[problem.id]
        assert row["Question"].strip()[:60] not in written
        for option in (row["Correct Answer"], row["Incorrect Answer 1"]):
            assert (
                len(option.strip()) < 12 or option.strip() not in written
            )  # a short option ("11") may occur
    records = read_samples(out / SAMPLES_FILE)
    assert {"gold", "prompt"}.isdisjoint(records[0]) and {"prompt_sha256", "completion", "correct"} <= set(
        records[0]
    )
