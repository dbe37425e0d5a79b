"""The supervised warm-up: planted slips, a loadable cached folder, and refusal to mix settings."""

from __future__ import annotations

import pytest

from icpo.tasks import generate_problems, get_task
from icpo.warmup import MARKER, WarmupSettings, sft_rows, warm_up


def test_mistake_rate_plants_slips_only_where_they_apply():
    problems = generate_problems("addition", 400, seed=0, difficulty=2)
    task = get_task("addition")
    clean = sft_rows("addition", problems, mistake_rate=0.0, seed=0)
    assert [r["completion"] for r in clean] == [p.solution for p in problems]
    slipped = sft_rows("addition", problems, mistake_rate=1.0, seed=0)
    for problem, row in zip(problems, slipped, strict=True):
        carries = task.mistake(problem, None) is not None  # the addition slip draws no randomness
        assert task.check(problem.prompt, row["completion"], problem.answer) is not carries
    half = sft_rows("addition", problems, mistake_rate=0.5, seed=0)
    wrong = sum(
        not task.check(p.prompt, r["completion"], p.answer) for p, r in zip(problems, half, strict=True)
    )
    applicable = sum(task.mistake(p, None) is not None for p in problems)
    assert 0.35 * applicable < wrong < 0.65 * applicable
    with pytest.raises(ValueError, match="mistake_rate"):
        sft_rows("addition", problems, mistake_rate=2.0, seed=0)


@pytest.mark.slow
def test_warm_up_writes_a_loadable_policy_once(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    problems = generate_problems("addition", 64, seed=0, difficulty=2)
    settings = WarmupSettings(task="addition", difficulty=2, num_examples=64, epochs=1.0, hidden_size=32)
    folder = warm_up(tmp_path / "warm", settings, problems)
    assert (folder / MARKER).exists() and not (tmp_path / "warm.tmp").exists()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.hidden_size == 32 and tokenizer("12+3=").input_ids

    weights = next(folder.glob("*.safetensors"))
    written = weights.stat().st_mtime_ns
    assert warm_up(tmp_path / "warm", settings, problems) == folder
    assert weights.stat().st_mtime_ns == written  # reused, not retrained
    with pytest.raises(ValueError, match="other settings"):
        warm_up(tmp_path / "warm", WarmupSettings(task="addition", difficulty=3), problems)
