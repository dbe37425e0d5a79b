"""``icpo compare --model FOLDER --task ...``: the real-LM study end to end, on the tiny policy given a
chat template (SmolLM2 runs the same code; its runs are in docs/results.md)."""

from __future__ import annotations

import json

import pytest

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


@pytest.fixture(scope="module")
def chat_policy(tiny_policy, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tmp_path_factory.mktemp("chat-policy")
    tokenizer = AutoTokenizer.from_pretrained(tiny_policy)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(folder)
    AutoModelForCausalLM.from_pretrained(tiny_policy).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_compare_on_a_chat_model_runs_every_method_and_writes_the_claim_table(chat_policy, tmp_path, capsys):
    import icpo.cli

    out = tmp_path / "study"
    argv = ["compare", "--model", str(chat_policy), "--task", "single-digit", "--methods", "grpo", "icpo",
            "unlikeliness", "--seeds", "1", "--steps", "2", "--trainable-layers", "1", "--eval-every", "1", "--num-test", "4", "--out", str(out)]  # fmt: skip
    assert icpo.cli.main(argv) == 0
    start = json.loads((out / "start.json").read_text())
    assert set(start["final"]) >= {"greedy_accuracy", "avg_at_16", "pass_at_16", "heldout_within_group_auroc"}
    results = {
        m: json.loads((out / "runs" / f"{m}-seed0" / "result.json").read_text())
        for m in ("grpo", "icpo", "unlikeliness")
    }
    assert [p["step"] for p in results["icpo"]["eval_curve"]] == [1, 2]
    assert len(results["icpo"]["history"]) == 2 and results["icpo"]["method"]["options"]["alpha"] == 0.5
    claims = json.loads((out / "claims.json").read_text())
    assert {r["method"] for r in claims} == {"icpo", "unlikeliness"}
    assert all(
        r["grpo_start"] == start["final"][r["metric"]] for r in claims if r["metric"] in start["final"]
    )
    report = (out / "report.md").read_text()
    assert "GRPO's own change" in report and "![curves-accuracy](curves-accuracy.png)" in report
    assert (out / "curves-entropy.png").read_bytes()[:4] == b"\x89PNG"

    before = {m: (out / "runs" / f"{m}-seed0" / "result.json").stat().st_mtime_ns for m in results}
    assert icpo.cli.main(argv) == 0  # finished runs are never redone
    assert before == {m: (out / "runs" / f"{m}-seed0" / "result.json").stat().st_mtime_ns for m in results}


def test_compare_on_a_chat_model_checks_its_arguments_first(chat_policy, tmp_path, icpo_fails):
    common = ["compare", "--model", str(chat_policy), "--out", str(tmp_path / "o"), "--trainable-layers", "1"]
    assert "give --task single-digit, two-digit-add, word-problems" in icpo_fails(*common)
    assert "unknown method 'dapo'" in icpo_fails(*common, "--task", "single-digit", "--methods", "dapo")
    assert "--steps must be at least 1" in icpo_fails(*common, "--task", "single-digit", "--steps", "0")
    assert (
        "--first-seed at least 0 (the study runs seeds S..S+N-1), got --seeds 2 --first-seed -1"
        in icpo_fails(*common, "--task", "single-digit", "--seeds", "2", "--first-seed", "-1")
    )
    assert "the model has 2 decoder layers" in icpo_fails(
        *common, "--task", "single-digit", "--trainable-layers", "3"
    )
    assert "it would be GRPO bit for bit. Give --num-iterations 2" in icpo_fails(
        *common, "--task", "single-digit", "--methods", "grpo", "clip-higher"
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_seeds_split_over_two_folders_merge_into_one_study_without_rerunning(chat_policy, tmp_path):
    """--first-seed: seed 1 runs in its own folder; copied beside seed 0, the study over both only reports."""
    import shutil

    import icpo.cli

    common = ["compare", "--model", str(chat_policy), "--task", "single-digit", "--methods", "grpo", "icpo",
              "--steps", "1", "--trainable-layers", "1", "--eval-every", "1", "--num-test", "4"]  # fmt: skip
    first, second = tmp_path / "seed0", tmp_path / "seed1"
    assert icpo.cli.main([*common, "--seeds", "1", "--out", str(first)]) == 0
    assert icpo.cli.main([*common, "--seeds", "1", "--first-seed", "1", "--out", str(second)]) == 0
    assert sorted(p.name for p in (second / "runs").iterdir()) == ["grpo-seed1", "icpo-seed1"]
    for run in (second / "runs").iterdir():
        shutil.copytree(run, first / "runs" / run.name)
    finished = {p: p.stat().st_mtime_ns for p in (first / "runs").glob("*/result.json")}

    assert icpo.cli.main([*common, "--seeds", "2", "--out", str(first)]) == 0
    assert finished == {p: p.stat().st_mtime_ns for p in (first / "runs").glob("*/result.json")}
    claims = json.loads((first / "claims.json").read_text())
    assert [r["n_seeds"] for r in claims if r["metric"] == "greedy_accuracy"] == [2]


def test_a_precision_other_than_auto_or_float32_is_refused():
    from icpo.study.real_lm import RealLMSettings

    with pytest.raises(ValueError, match="precision must be one of auto, float32, got 'fp16'"):
        RealLMSettings(precision="fp16")


@pytest.mark.slow
def test_the_bf16_learning_curve_runs_grpo_in_both_precisions_and_resumes(chat_policy, tmp_path, monkeypatch):
    """benchmarks/bf16_learning_curve.py on the chat policy, as if the CPU had bf16 arithmetic: one GRPO run
    in bf16 and one in float32 from the same seed, curves and final metrics of both; a run recorded before
    ``precision`` existed (no such key) is read back, not redone."""
    import importlib.util
    from pathlib import Path

    import icpo.static_sampler

    monkeypatch.setattr(icpo.static_sampler, "cpu_has_bf16_arithmetic", lambda: True)
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bf16_learning_curve.py"
    spec = importlib.util.spec_from_file_location("bf16_learning_curve", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "curve"
    argv = ["--out", str(out), "--model", str(chat_policy), "--steps", "2", "--eval-every", "1", "--num-test", "4",
            "--avg-k", "2", "--trainable-layers", "1"]  # fmt: skip
    assert module.main(argv) == 0
    summary = json.loads((out / "bf16-curve.json").read_text())
    assert set(summary["runs"]) == {"bf16", "float32"}
    assert all(run["step"] == [1, 2] and len(run["heldout_greedy"]) == 2 for run in summary["runs"].values())
    assert (out / "bf16-curve.png").read_bytes()[:4] == b"\x89PNG"
    recorded = {p: json.loads(p.read_text()) for p in out.glob("*/runs/grpo-seed0/result.json")}
    assert {r["settings"]["precision"] for r in recorded.values()} == {"auto", "float32"}

    bf16_result = out / "auto" / "runs" / "grpo-seed0" / "result.json"
    legacy = json.loads(bf16_result.read_text())
    legacy["settings"].pop("precision")  # as runs made before the option existed recorded it: "auto"
    bf16_result.write_text(json.dumps(legacy))
    before = bf16_result.stat().st_mtime_ns
    assert module.main(argv) == 0
    assert bf16_result.stat().st_mtime_ns == before  # read back, not redone


def test_a_start_evaluated_with_another_test_set_is_refused_and_one_differing_only_in_training_is_reused(
    tmp_path,
):
    """start.json holds GRPO's starting point: reusing one measured on other problems or with another sampler
    would misstate every run's gain, so it is refused (naming what differs); training settings may change."""
    from dataclasses import asdict, replace

    from icpo.study.real_lm import RealLMSettings, evaluate_start

    settings = RealLMSettings(regime="single-digit", steps=60, num_test=64)
    path = tmp_path / "start.json"
    start = {"settings": asdict(settings), "final": {"greedy_accuracy": 0.5}, "wall_seconds": 1.0}
    path.write_text(json.dumps(start))

    assert evaluate_start(replace(settings, steps=40, num_iterations=2), path) == start
    with pytest.raises(
        ValueError, match=r"other settings: temperature 0.7 \(asked: 1.0\), num_test 64 \(asked: 32\)"
    ):
        evaluate_start(replace(settings, num_test=32, temperature=1.0), path)
    path.write_text("{")
    with pytest.raises(ValueError, match="is damaged"):
        evaluate_start(settings, path)
