"""demo / compare / train: bad input fails in one line before any work, and a killed compare resumes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from icpo.core import ICPOOptions
from icpo.study.engine import run_study
from icpo.study.methods import METHODS, Method, options_method
from icpo.study.rl_run import StudySettings

GRPO = METHODS["grpo"]

# The real CLI dispatcher, limited to this module's commands (other command modules may be absent).
CLI = (
    "import sys, icpo.cli as c; c.COMMAND_MODULES = ('icpo.study.cli', 'icpo.recipe'); "
    "sys.exit(c.main(sys.argv[1:]))"
)
TINY_STUDY = ["--num-train", "64", "--num-test", "8", "--steps", "3", "--eval-every", "2"]


def icpo(*args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, **kwargs,
    )  # fmt: skip


def write_recipe(path: Path, **keys) -> Path:
    base = {"model": "tiny", "task": "addition", "output_dir": str(path.parent / "out"), "max_steps": 1}
    path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in {**base, **keys}.items()))
    return path


def test_bad_input_gives_one_line_before_any_work(tmp_path, tiny_policy, icpo_fails):
    line = icpo_fails("compare", "--task", "sudoku", "--out", str(tmp_path / "study"))
    assert "unknown task 'sudoku'" in line
    line = icpo_fails("demo", "--combine", "sum", "--out", str(tmp_path / "d"))
    assert "argument --combine: invalid choice: 'sum'" in line
    assert "--tau must be a finite number > 0" in icpo_fails(
        "demo", "--tau", "0", "--out", str(tmp_path / "d")
    )
    assert not (tmp_path / "study").exists() and not (tmp_path / "d").exists()

    line = icpo_fails("train", "--config", str(write_recipe(tmp_path / "a.yaml", icpo_alfa=0.5)))
    assert "unknown key 'icpo_alfa'" in line and "did you mean 'icpo_alpha'" in line

    no_tokenizer = tmp_path / "model-only"
    no_tokenizer.mkdir()
    for item in tiny_policy.iterdir():
        if "tokenizer" not in item.name:
            (no_tokenizer / item.name).write_bytes(item.read_bytes())
    line = icpo_fails("train", "--config", str(write_recipe(tmp_path / "b.yaml", model=str(no_tokenizer))))
    assert "has no tokenizer" in line and str(no_tokenizer) in line

    data = tmp_path / "rows.jsonl"
    data.write_text('{"prompt": "1+1=", "answer": "2"}\n{"prompt": "2+2=", "solution": "4"}\n')
    recipe = write_recipe(
        tmp_path / "c.yaml",
        model=str(tiny_policy),
        task=None,
        dataset=str(data),
        reward_funcs=["addition_correct"],
    )
    recipe.write_text(recipe.read_text().replace("task: null\n", ""))
    line = icpo_fails("train", "--config", str(recipe))
    assert "rows.jsonl:2 has no 'answer' field" in line
    assert not (tmp_path / "out").exists()


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROGRESS_BAR = re.compile(r"^\s*[^|]*:?\s*\d+%\|.*\| *\d+/\d+ \[")


def console_noise(stderr: str) -> list[str]:
    """The lines of a command's stderr that are not a state of one of its progress bars."""
    lines = re.split(r"[\r\n]", ANSI.sub("", stderr))
    return [line for line in lines if line.strip() and not PROGRESS_BAR.match(line)]


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def finished_run(out: Path, **changes) -> Path:
    """A result.json as a finished GRPO run of ``compare`` with TINY_STUDY settings would leave it."""
    settings = StudySettings(num_train=64, num_test=8, steps=3, eval_every=2)
    run_dir = out / "runs" / "grpo-noise0-seed0"
    run_dir.mkdir(parents=True)
    result = {"settings": {**asdict(settings), **changes}, "variant_options": asdict(GRPO.options), "variant": "grpo",
              "seed": 0, "eval_curve": [], "final": {}, "warm_start": {}, "wall_seconds": 1.0}  # fmt: skip
    (run_dir / "result.json").write_text(json.dumps(result))
    return run_dir / "result.json"


def test_bad_study_arguments_and_folders_give_one_line_before_any_write(tmp_path, icpo_fails):
    out = tmp_path / "study"
    assert "--seeds must be at least 1" in icpo_fails("compare", "--seeds", "0", "--out", str(out))
    assert "--seeds must be at least 1" in icpo_fails("compare", "--seeds", "-2", "--out", str(out))
    assert "--seed must be >= 0, got -1" in icpo_fails("demo", "--seed", "-1", "--out", str(out))
    assert tree(tmp_path) == []

    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    assert f"--out {a_file} is a file" in icpo_fails("demo", "--out", str(a_file))
    assert "which is a file" in icpo_fails("demo", "--out", str(a_file / "below"))
    unwritable = Path("/sys/icpo-test-out")  # read-only for every user, root included
    assert f"--out {unwritable} cannot be written" in icpo_fails("demo", "--out", str(unwritable))
    assert tree(tmp_path) == ["file"]

    result = finished_run(out, steps=4)
    line = icpo_fails("compare", "--seeds", "1", "--out", str(out), *TINY_STUDY)
    assert "holds a finished run made with other settings" in line and "grpo-noise0-seed0" in line
    result.write_text(result.read_text()[:40])  # a result.json cut short by an old crash
    line = icpo_fails("compare", "--seeds", "1", "--out", str(out), *TINY_STUDY)
    assert f"{result} is damaged (not JSON); delete it" in line
    result.write_text('{"variant": "grpo"}')  # JSON, but not what a run writes: the report would fail
    line = icpo_fails("compare", "--seeds", "1", "--out", str(out), *TINY_STUDY)
    assert f"{result} lacks variant_options, seed" in line and "delete it" in line
    assert tree(out) == ["runs", "runs/grpo-noise0-seed0", "runs/grpo-noise0-seed0/result.json"]


def test_a_run_recorded_before_an_option_existed_is_still_recognised(tmp_path):
    from icpo.study.engine import load_finished

    result = finished_run(tmp_path)
    recorded = json.loads(result.read_text())
    del recorded["variant_options"]["correct_threshold"]  # as written before the option was recorded
    result.write_text(json.dumps(recorded))
    settings = StudySettings(num_train=64, num_test=8, steps=3, eval_every=2)
    assert load_finished(result.parent, settings, GRPO) == recorded


@pytest.mark.slow
def test_a_second_compare_on_the_same_folder_is_refused_and_the_first_keeps_its_run(tmp_path):
    out = tmp_path / "study"
    args = ("compare", "--seeds", "1", "--out", str(out), "--report", "r", *TINY_STUDY)
    first = icpo(*args, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / ".lock").exists() or not (out / ".lock").read_text().strip():
            assert first.poll() is None, first.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "the first compare did not take the lock within a minute"
            time.sleep(0.1)
        second = icpo(*args, cwd=tmp_path)
        _, stderr = second.communicate(timeout=60)
        assert second.returncode == 2
        assert stderr.strip().splitlines() == [
            f"icpo compare: error: {out} is in use by another icpo process (PID {first.pid}); wait for it to "
            "finish, or write to another folder."
        ]
        stdout, stderr = first.communicate(timeout=240)
        assert first.returncode == 0, stderr[-2000:]
        # One clean display: progress bars only; TRL's log dicts and the libraries' warnings are in icpo.log.
        assert stdout == f"report: {out / 'r.md'}\n"
        assert console_noise(stderr) == [], console_noise(stderr)[:5]
        assert "FutureWarning" in (out / "icpo.log").read_text()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert len(list((out / "runs").glob("*/result.json"))) == 2 and (out / "r.md").exists()


@pytest.mark.slow
def test_compare_resumes_after_a_kill_without_redoing_finished_runs(tmp_path):
    out = tmp_path / "study"
    args = ("compare", "--seeds", "2", "--out", str(out), "--report", "r", *TINY_STUDY)
    first = icpo(*args, cwd=tmp_path, start_new_session=True)
    runs = out / "runs"
    deadline = time.monotonic() + 120
    while not list(runs.glob("*/result.json")):
        assert first.poll() is None, first.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "no run finished within 2 minutes"
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    finished = {p: p.read_bytes() for p in runs.glob("*/result.json")}
    assert 0 < len(finished) < 4 and not (out / "r.md").exists()

    second = icpo(*args, cwd=tmp_path)
    _, stderr = second.communicate(timeout=180)
    assert second.returncode == 0, stderr[-2000:]
    assert all(path.read_bytes() == content for path, content in finished.items())  # not redone
    results = [json.loads(p.read_text()) for p in sorted(runs.glob("*/result.json"))]
    assert sorted((r["variant"], r["seed"]) for r in results) == sorted(
        (v, s) for v in ("grpo", "icpo-a0.5-bt-t1-advantage-low") for s in (0, 1)
    )
    summary = json.loads((out / "r.json").read_text())
    assert summary["variants"]["icpo-a0.5-bt-t1-advantage-low"]["vs_baseline"]["greedy_accuracy"]["n"] == 2
    assert (out / "r-accuracy.png").exists() and (out / "warmup-seed0" / "warmup.json").exists()
    for result in results:
        assert [e["step"] for e in result["eval_curve"]] == [0, 2, 3]
        assert [e["step"] for e in result["history"]] == [1, 2, 3]

    other = StudySettings(**{**results[0]["settings"], "steps": 4})
    with pytest.raises(ValueError, match="made with other settings"):
        run_study(out, other, [GRPO, options_method(ICPOOptions(alpha=0.5))], [0, 1], "r2")


@pytest.mark.slow
def test_the_tiny_study_runs_the_peer_methods_with_their_trainer_options(tmp_path, icpo_fails):
    """``--methods`` on the tiny policy: each method trains with its own ICPO and trainer options (clip-higher's
    epsilon_high is recorded with its run), off-policy passes apply to every method, and a finished run trained with other
    trainer options is refused rather than reused."""
    out = tmp_path / "study"
    assert "would be GRPO bit for bit" in icpo_fails(
        "compare", "--seeds", "1", "--methods", "clip-higher", "--out", str(out), *TINY_STUDY
    )
    args = ("compare", "--seeds", "1", "--methods", "unlikeliness", "clip-higher", "--num-iterations", "2")
    done = icpo(*args, "--out", str(out), *TINY_STUDY, cwd=tmp_path)
    _, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr[-2000:]
    results = {r["variant"]: r for r in map(json.loads, map(Path.read_text, out.glob("runs/*/result.json")))}
    assert sorted(results) == ["clip-higher", "grpo", "unlikeliness"]
    assert results["clip-higher"]["trainer"] == {"epsilon_high": 0.28} and results["grpo"]["trainer"] == {}
    assert results["unlikeliness"]["variant_options"]["combine"] == "unlikeliness"
    assert {r["settings"]["num_iterations"] for r in results.values()} == {2}
    assert (out / "report-unlikeliness-clip-higher-noise0.md").is_file()

    settings = StudySettings(**results["grpo"]["settings"])
    other_clip = Method("clip-higher", METHODS["clip-higher"].options, {"epsilon_high": 0.2})
    with pytest.raises(ValueError, match="made with other settings"):
        run_study(out, settings, [GRPO, other_clip], [0], "r3")


@pytest.mark.parametrize(
    "recipe", sorted((Path(__file__).parents[2] / "recipes").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_recipes_load(recipe, request, monkeypatch):
    """Every shipped recipe loads; its bf16 is off, or ``auto``: on exactly where the CPU has bf16 arithmetic.
    A word-problem recipe reads the real benchmark files (skipped where ../shared is absent)."""
    import yaml

    from icpo.recipe import automatic_bf16, load_recipe

    if yaml.safe_load(recipe.read_text()).get("dataset") == "wordproblems":
        monkeypatch.setenv("ICPO_BENCHMARKS_DIR", str(request.getfixturevalue("shared_benchmarks")))
    loaded = load_recipe(recipe)
    assert loaded.rows and loaded.reward_names
    if loaded.task is not None:
        assert loaded.model == "tiny" and loaded.reward_names == [f"{loaded.task}_correct"]
    written = yaml.safe_load(recipe.read_text())["bf16"]
    assert loaded.config.use_cpu and loaded.config.bf16 == (
        automatic_bf16(True) if written == "auto" else False
    )


@pytest.mark.slow
def test_train_runs_a_recipe_and_saves_the_policy(tmp_path, tiny_policy):
    from transformers import AutoModelForCausalLM

    from icpo.recipe import load_recipe, run_recipe

    recipe = write_recipe(
        tmp_path / "r.yaml",
        model=str(tiny_policy),
        num_train=16,
        max_steps=2,
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=6,
        use_cpu=True,
        bf16=False,
        report_to="none",
        icpo_alpha=0.5,
        reward_noise=0.1,
    )
    last_step = run_recipe(load_recipe(recipe))
    assert last_step["step"] == 2 and 0.0 <= last_step["reward"] <= 1.0 and "icpo/alpha" in last_step
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").config.hidden_size == 32


def _recorded_warm_up(out: Path, settings: StudySettings, seed: int, dev_accuracy: float, policy=None):
    """A finished warm-up folder as ``icpo.warmup`` leaves it: ``policy``'s weights (none are needed for a
    seed that is left out) and the two records, with every check at ``dev_accuracy``."""
    import shutil

    from icpo.study.engine import warm_up_plan
    from icpo.warmup import MARKER, START

    folder, warm_settings = warm_up_plan(out, settings, seed)
    if policy is None:
        folder.mkdir(parents=True)
    else:
        shutil.copytree(policy, folder)
    (folder / MARKER).write_text(json.dumps(asdict(warm_settings)))
    checks = [{"step": 20 * (i + 1), "dev_accuracy": dev_accuracy} for i in range(3)]
    record = {"step": 60, "dev_accuracy": dev_accuracy, "target_accuracy": settings.start_accuracy}
    (folder / START).write_text(json.dumps({**record, "checks": checks}))


@pytest.mark.slow
def test_a_study_with_a_start_accuracy_records_the_warm_start_it_got(tmp_path):
    from icpo.warmup import START

    # target 0.02 is reached at the first check (0.02 - 0.03 < 0): this tiny SFT cannot get further
    settings = StudySettings(num_train=64, num_test=8, steps=2, eval_every=1, avg_k=4, start_accuracy=0.02)
    run_study(tmp_path, settings, [GRPO], [0], "r")
    folder = tmp_path / "warmup-seed0-start0.02"
    chosen = json.loads((folder / START).read_text())
    result = json.loads((tmp_path / "runs" / "grpo-noise0-start0.02-seed0" / "result.json").read_text())
    assert result["warm_start"] == {
        "heldout_accuracy": result["eval_curve"][0]["accuracy"],
        "target": 0.02,
        "sft_step": chosen["step"],
        "dev_accuracy": chosen["dev_accuracy"],
        "reached": True,
    }
    assert chosen["step"] == chosen["checks"][0]["step"] == 20
    assert {"pass_at_1", "pass_at_2", "pass_at_4", "heldout_within_group_auroc"} <= set(result["final"])


@pytest.mark.slow
def test_a_seed_whose_warm_up_misses_the_start_is_left_out_and_the_report_says_why(tmp_path, tiny_policy):
    settings = StudySettings(num_train=64, num_test=8, steps=2, eval_every=1, avg_k=4, start_accuracy=0.5)
    _recorded_warm_up(tmp_path, settings, 0, dev_accuracy=0.5, policy=tiny_policy)
    _recorded_warm_up(tmp_path, settings, 1, dev_accuracy=0.1)  # stalled: never 0.5 - 0.03
    report = run_study(tmp_path, settings, [GRPO], [0, 1], "r")
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["grpo-noise0-start0.5-seed0"]
    assert "seed 1 left out: its warm-up never reached start accuracy 0.5 (closest dev accuracy 0.1" in (
        report.read_text()
    )
    assert json.loads(report.with_suffix(".json").read_text())["variants"]["grpo"]["seeds"] == [0]


def test_a_study_where_no_seed_reaches_the_start_fails_naming_each_seed(tmp_path):
    settings = StudySettings(num_train=64, num_test=8, steps=2, start_accuracy=0.5)
    for seed in (0, 1):
        _recorded_warm_up(tmp_path, settings, seed, dev_accuracy=0.0)
    with pytest.raises(ValueError, match=r"seed 0 left out.*seed 1 left out.*lower --start-accuracy"):
        run_study(tmp_path, settings, [GRPO], [0, 1], "r")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_pass_at_k_is_the_unbiased_estimator():
    from icpo.study.heldout import pass_at_k

    assert pass_at_k(4, 0, 2) == 0.0 and pass_at_k(4, 4, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    assert pass_at_k(32, 3, 32) == 1.0
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 8)


def test_report_and_out_names_that_cannot_hold_the_study_are_one_line(tmp_path, icpo_fails, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = icpo_fails("compare", "--out", str(tmp_path / "study"), "--report", "missing/report")
    assert "--report 'missing/report' is not a file name" in line
    assert "--out is empty" in icpo_fails("compare", "--out", "")
    assert "--out is empty" in icpo_fails("demo", "--out", " ")
    assert list(tmp_path.iterdir()) == []
