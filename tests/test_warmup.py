"""The supervised warm-up: planted slips, a loadable cached folder, and refusal to mix settings."""

from __future__ import annotations

import pytest
import torch

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

    from icpo.runfolder import current_umask

    weights = next(folder.glob("*.safetensors"))
    assert weights.stat().st_mode & 0o777 == 0o666 & ~current_umask()  # as every other file, not 0600
    written = weights.stat().st_mtime_ns
    assert warm_up(tmp_path / "warm", settings, problems) == folder
    assert weights.stat().st_mtime_ns == written  # reused, not retrained
    with pytest.raises(ValueError, match="other settings"):
        warm_up(tmp_path / "warm", WarmupSettings(task="addition", difficulty=3), problems)


def _scripted_warm_up(tmp_path, accuracies: list[float], target: float):
    """A warm-up whose dev accuracy at each check is scripted; also returns the weights seen at each check."""
    problems = generate_problems("addition", 64, seed=0, difficulty=2)
    settings = WarmupSettings(
        task="addition", difficulty=2, num_examples=64, epochs=6.0, batch_size=16, hidden_size=16,
        num_layers=1, target_accuracy=target, tolerance=0.03, check_every=2,
    )  # fmt: skip  # 4 steps per epoch, 24 steps, a check every 2
    seen: list[torch.Tensor] = []

    def dev_accuracy(model) -> float:
        seen.append(model.get_input_embeddings().weight.detach().clone())
        return accuracies[len(seen) - 1]

    folder = warm_up(tmp_path / "warm", settings, problems, dev_accuracy)
    return folder, seen


@pytest.mark.slow
def test_warm_up_stops_at_the_target_and_keeps_the_closer_of_the_bracketing_checks(tmp_path):
    import json

    from transformers import AutoModelForCausalLM

    from icpo.warmup import START, read_start

    folder, seen = _scripted_warm_up(tmp_path, [0.0, 0.1, 0.3, 0.52, 0.6, 0.7] + [0.8] * 10, target=0.4)
    start = json.loads((folder / START).read_text())
    assert len(seen) == 4  # stopped at the first check >= 0.4 - 0.03
    assert (start["step"], start["dev_accuracy"], start["target_accuracy"]) == (
        6,
        0.3,
        0.4,
    )  # |0.3-0.4| < |0.52-0.4|
    assert [c["step"] for c in start["checks"]] == [2, 4, 6, 8]
    assert read_start(folder) == {"target": 0.4, "sft_step": 6, "dev_accuracy": 0.3, "reached": True}
    saved = AutoModelForCausalLM.from_pretrained(folder).get_input_embeddings().weight
    assert torch.equal(saved, seen[2]) and not torch.equal(saved, seen[3])


@pytest.mark.slow
def test_warm_up_that_never_reaches_the_target_keeps_the_closest_check_and_says_so(tmp_path):
    import json

    from icpo.warmup import START, read_start

    folder, seen = _scripted_warm_up(tmp_path, [0.05, 0.2, 0.15] + [0.1] * 20, target=0.5)
    start = json.loads((folder / START).read_text())
    assert len(seen) == 12 and (start["step"], start["dev_accuracy"]) == (4, 0.2)
    assert read_start(folder)["reached"] is False  # closest is 0.2, never 0.5 - 0.03: another regime


def test_a_target_needs_a_way_to_measure_it(tmp_path):
    problems = generate_problems("addition", 8, seed=0, difficulty=2)
    with pytest.raises(ValueError, match="needs dev_accuracy"):
        warm_up(tmp_path / "w", WarmupSettings("addition", 2, target_accuracy=0.3), problems)
    with pytest.raises(ValueError, match="target_accuracy must be in"):
        warm_up(tmp_path / "w", WarmupSettings("addition", 2, target_accuracy=1.5), problems, lambda m: 0.0)
    assert not (tmp_path / "w").exists() and not (tmp_path / "w.tmp").exists()


def test_a_damaged_start_record_is_one_line_naming_it(tmp_path):
    from icpo.warmup import MARKER, START, read_start

    (tmp_path / MARKER).write_text("{}")
    (tmp_path / START).write_text("[1, 2")
    with pytest.raises(ValueError, match=rf"{tmp_path / START} is damaged \(not JSON\); delete {tmp_path}"):
        read_start(tmp_path)
    (tmp_path / START).write_text("{}")
    with pytest.raises(ValueError, match="lacks what a warm-up writes"):
        read_start(tmp_path)
