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
    assert "GRPO's own change" in (out / "report.md").read_text()

    before = {m: (out / "runs" / f"{m}-seed0" / "result.json").stat().st_mtime_ns for m in results}
    assert icpo.cli.main(argv) == 0  # finished runs are never redone
    assert before == {m: (out / "runs" / f"{m}-seed0" / "result.json").stat().st_mtime_ns for m in results}


def test_compare_on_a_chat_model_checks_its_arguments_first(chat_policy, tmp_path, icpo_fails):
    common = ["compare", "--model", str(chat_policy), "--out", str(tmp_path / "o"), "--trainable-layers", "1"]
    assert "give --task single-digit or two-digit-add" in icpo_fails(*common)
    assert "unknown method 'dapo'" in icpo_fails(*common, "--task", "single-digit", "--methods", "dapo")
    assert "--steps must be at least 1" in icpo_fails(*common, "--task", "single-digit", "--steps", "0")
    assert "the model has 2 decoder layers" in icpo_fails(
        *common, "--task", "single-digit", "--trainable-layers", "3"
    )
    assert "it would be GRPO bit for bit. Give --num-iterations 2" in icpo_fails(
        *common, "--task", "single-digit", "--methods", "grpo", "clip-higher"
    )
    assert not (tmp_path / "o").exists()
