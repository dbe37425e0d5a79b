"""The evaluation loop on the tiny local policy: schema, batching, resume, chat template, summary."""

from __future__ import annotations

import json
import math

import pytest

from icpo.eval.benchmarks import Problem
from icpo.eval.generation import SamplingSettings, TransformersGenerator
from icpo.eval.harness import SAMPLES_FILE, evaluate, format_table, read_samples

SHORT = SamplingSettings(max_new_tokens=8, temperature=0.0)
SAMPLED = SamplingSettings(max_new_tokens=8, temperature=1.0)
FIELDS = {
    "benchmark", "problem_id", "sample", "prompt", "completion", "extracted", "correct", "confidence",
    "num_tokens", "finished", "gold",
}  # fmt: skip


@pytest.fixture(scope="module")
def generator(tiny_policy):
    return TransformersGenerator(tiny_policy, device="cpu")


def _problems(count: int) -> list[Problem]:
    return [Problem(f"p{i}", f"What is {i} plus {i * 3 + 1}?", str(4 * i + 1), "math") for i in range(count)]


def test_batched_generation_equals_one_at_a_time_under_greedy(generator):
    prompts = ["1+1=", "What is seven times six?", "x", "Name a prime number larger than ten."]
    batched = generator.generate(prompts, SHORT, seed=0)
    single = [generator.generate([prompt], SHORT, seed=0)[0] for prompt in prompts]
    assert [g.text for g in batched] == [g.text for g in single]
    assert [g.num_tokens for g in batched] == [g.num_tokens for g in single]
    for b, s in zip(batched, single, strict=True):
        assert b.confidence == pytest.approx(s.confidence, abs=1e-4)


def test_confidence_is_the_mean_log_prob_at_temperature_one(generator, monkeypatch):
    import torch

    from icpo.static_sampler import StaticCacheSampler

    sample, sampled = StaticCacheSampler.sample, []

    def recording_sample(self, *args, **kwargs):
        sampled.append(sample(self, *args, **kwargs))
        return sampled[-1]

    monkeypatch.setattr(StaticCacheSampler, "sample", recording_sample)
    prompt = "What is seven times six?"
    hot = generator.generate([prompt], SamplingSettings(max_new_tokens=6, temperature=5.0), seed=3)[0]
    prompt_ids = generator.tokenizer(prompt, add_special_tokens=False, return_tensors="pt").input_ids
    completion_ids = torch.tensor([sampled[0].completion_ids[0]])
    assert hot.num_tokens == completion_ids.shape[1] and (hot.finished or hot.num_tokens == 6)
    with torch.no_grad():
        logits = generator.model(torch.cat([prompt_ids, completion_ids], dim=1)).logits[
            0, prompt_ids.shape[1] - 1 : -1
        ]
    expected = torch.log_softmax(logits.float(), -1).gather(1, completion_ids[0].unsqueeze(1)).mean().item()
    assert hot.confidence == pytest.approx(expected, abs=1e-4)


def test_jsonl_schema_and_summary(generator, tmp_path):
    summary = evaluate(generator, {"toy": _problems(3)}, tmp_path, samples=2, settings=SAMPLED, batch_size=4,
                       progress=False)  # fmt: skip
    records = read_samples(tmp_path / SAMPLES_FILE)
    assert len(records) == 6 and all(set(r) == FIELDS for r in records)
    assert {(r["problem_id"], r["sample"]) for r in records} == {
        (f"p{i}", s) for i in range(3) for s in range(2)
    }
    assert all(r["correct"] in (True, False) and r["confidence"] < 0 for r in records)
    row = summary["toy"]
    assert row["problems"] == 3 and row["samples"] == 2
    assert row["avg@2"] == sum(r["correct"] for r in records) / 6
    assert {"pass@1", "pass@2", "auroc", "ece", "overconfident_error_rate"} <= set(row)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert (tmp_path / "reliability.png").exists()
    assert "toy" in format_table(summary)


def test_resume_after_a_kill_gives_the_uninterrupted_result(generator, tmp_path):
    problems = {"toy": _problems(4)}
    whole = evaluate(generator, problems, tmp_path / "whole", samples=2, settings=SAMPLED, batch_size=3,
                     progress=False)  # fmt: skip
    lines = (tmp_path / "whole" / SAMPLES_FILE).read_text().splitlines(keepends=True)
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    (resumed_dir / "config.json").write_text((tmp_path / "whole" / "config.json").read_text())
    # killed after one and a half chunks of three, in the middle of writing a line
    (resumed_dir / SAMPLES_FILE).write_text("".join(lines[:4]) + lines[4][:25])
    resumed = evaluate(
        generator, problems, resumed_dir, samples=2, settings=SAMPLED, batch_size=3, progress=False
    )

    def by_key(path):
        return {(r["problem_id"], r["sample"]): r for r in read_samples(path / SAMPLES_FILE)}

    assert by_key(resumed_dir) == by_key(tmp_path / "whole")
    assert len(read_samples(resumed_dir / SAMPLES_FILE)) == 8
    assert resumed == whole


def test_resume_with_other_settings_is_refused(generator, tmp_path):
    evaluate(generator, {"toy": _problems(1)}, tmp_path, samples=1, settings=SHORT, progress=False)
    with pytest.raises(ValueError, match="other settings"):
        evaluate(generator, {"toy": _problems(1)}, tmp_path, samples=1, settings=SAMPLED, progress=False)


def test_chat_template_reaches_the_model(generator, tmp_path):
    generator.tokenizer.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    try:
        evaluate(generator, {"toy": _problems(1)}, tmp_path, settings=SHORT, progress=False)
    finally:
        generator.tokenizer.chat_template = None
    record = read_samples(tmp_path / SAMPLES_FILE)[0]
    assert record["prompt"] == "<user>What is 0 plus 1?\n<assistant>"
    assert not math.isnan(record["confidence"])


def _line(problem_id: str, sample: int) -> str:
    record = {
        "benchmark": "toy",
        "problem_id": problem_id,
        "sample": sample,
        "correct": False,
        "confidence": None,
    }
    return json.dumps(record) + "\n"


def test_a_private_problem_keeps_no_text_on_disk(generator, tmp_path):
    from dataclasses import replace

    problems = [replace(p, private=True) for p in _problems(2)]
    summary = evaluate(generator, {"secret": problems}, tmp_path, settings=SHORT, batch_size=2)
    text = (tmp_path / SAMPLES_FILE).read_text()
    assert "plus" not in text and '"gold"' not in text and '"prompt"' not in text
    records = read_samples(tmp_path / SAMPLES_FILE)
    assert [r["problem_id"] for r in records] == ["p0", "p1"] and all(
        len(r["prompt_sha256"]) == 64 for r in records
    )
    assert summary["secret"]["problems"] == 2


def test_a_truncated_last_line_is_cut_before_appending(tmp_path):
    path = tmp_path / SAMPLES_FILE
    path.write_text(_line("p0", 0) + _line("p0", 1) + '{"benchmark"')
    assert [r["sample"] for r in read_samples(path)] == [0, 1]
    assert path.read_text() == _line("p0", 0) + _line("p0", 1)


def test_a_samples_file_that_is_a_symlink_is_refused_and_its_target_kept(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("line one\nno final newline")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / SAMPLES_FILE).symlink_to(victim)
    with pytest.raises(ValueError, match="is a symlink"):
        read_samples(tmp_path / "out" / SAMPLES_FILE)
    assert victim.read_text() == "line one\nno final newline"


def test_a_sample_written_twice_is_an_error_not_an_average(tmp_path):
    from icpo.runfolder import DuplicateRecord

    (tmp_path / SAMPLES_FILE).write_text(_line("p0", 0) + _line("p0", 1) + _line("p0", 0))
    with pytest.raises(DuplicateRecord, match=":3 repeats the record of line 1"):
        read_samples(tmp_path / SAMPLES_FILE)


def test_repeated_problem_ids_are_refused(generator, tmp_path):
    problems = _problems(2) + _problems(1)
    with pytest.raises(ValueError, match="repeated problem ids"):
        evaluate(generator, {"toy": problems}, tmp_path, settings=SHORT, progress=False)


class ScriptedGenerator:
    """A generator whose completions, confidences and finished flags are given: for summary arithmetic."""

    tokenizer = None

    def __init__(self, outputs):
        self.outputs = list(outputs)

    def generate(self, prompts, settings, seed):
        from icpo.eval.generation import Generation

        taken, self.outputs = self.outputs[: len(prompts)], self.outputs[len(prompts) :]
        return [Generation(text, confidence, 5, finished) for text, confidence, finished in taken]


def test_a_truncated_completion_counts_as_wrong_whatever_its_last_number(tmp_path):
    # GSM8K problem 0 was once scored right from "... 16 + 64 =" cut at the token limit.
    problems = [Problem("p0", "What is 16 + 48?", "64", "number")]
    outputs = [("So 16 + 48 = 64", -1.0, False), ("So 16 + 48 = 64", -1.0, True)]
    summary = evaluate(ScriptedGenerator(outputs), {"toy": problems}, tmp_path, samples=2, settings=SAMPLED,
                       progress=False)  # fmt: skip
    records = read_samples(tmp_path / SAMPLES_FILE)
    assert [(r["finished"], r["extracted"], r["correct"]) for r in records] == [
        (False, "64", False),
        (True, "64", True),
    ]
    assert summary["toy"]["truncated"] == 0.5 and summary["toy"]["avg@2"] == 0.5


def test_summary_has_within_group_metrics_and_group_shares(tmp_path):
    # p0 mixed: right -1.0 above wrong -2.0 and wrong -0.5 above it; p1 all wrong; p2 all right.
    problems = [Problem(f"p{i}", f"q{i}", "7", "number") for i in range(3)]
    outputs = [("7", -1.0, True), ("8", -2.0, True), ("9", -0.5, True),
               ("1", -1.0, True), ("2", -1.0, True), ("3", -1.0, True),
               ("7", -1.0, True), ("7", -3.0, True), ("7", -2.0, True)]  # fmt: skip
    row = evaluate(ScriptedGenerator(outputs), {"toy": problems}, tmp_path, samples=3, settings=SAMPLED,
                   batch_size=4, progress=False)["toy"]  # fmt: skip
    assert row["within_group_auroc"] == 0.5  # p0 only: (1 + 0) / 2 pairs
    assert row["overconfident_error_rate"] == 0.5  # of p0's two wrong answers, one beats every right one
    assert (row["groups_all_wrong"], row["groups_mixed"], row["groups_all_correct"]) == (1 / 3, 1 / 3, 1 / 3)
    assert row["truncated"] == 0.0 and row["auroc"] is not None


def test_undefined_within_group_metrics_are_null_in_json(tmp_path):
    problems = [Problem("p0", "q", "7", "number")]
    outputs = [("1", -1.0, True), ("2", -2.0, True)]
    evaluate(
        ScriptedGenerator(outputs), {"toy": problems}, tmp_path, samples=2, settings=SAMPLED, progress=False
    )
    text = (tmp_path / "summary.json").read_text()
    row = json.loads(text)["toy"]
    assert "NaN" not in text and row["within_group_auroc"] is None and row["overconfident_error_rate"] is None


@pytest.mark.parametrize(
    ("samples", "batch_size", "settings", "message"),
    [
        (0, 4, SAMPLED, "--samples"),
        (2, 0, SAMPLED, "--batch-size"),
        (1, 4, SamplingSettings(max_new_tokens=0), "--max-new-tokens"),
        (1, 4, SamplingSettings(temperature=-0.5), "--temperature"),
        (2, 4, SamplingSettings(temperature=0.0), "temperature 0 would be 2 copies"),
    ],
)
def test_bad_settings_are_refused_before_anything_is_written(
    tmp_path, samples, batch_size, settings, message
):
    with pytest.raises(ValueError, match=message):
        evaluate(ScriptedGenerator([]), {"toy": _problems(1)}, tmp_path / "out", samples=samples,
                 batch_size=batch_size, settings=settings, progress=False)  # fmt: skip
    assert not (tmp_path / "out").exists()
