"""The claim map's records and verdicts."""

from __future__ import annotations

import math

import pytest

from icpo.study.claims import claim_records, render_claim_blocks, render_claims, verdict


def run(variant, seed, accuracy, oe=0.1):
    return {"variant": variant, "seed": seed, "final": {"greedy_accuracy": accuracy,
            "heldout_overconfident_error_rate": oe}}  # fmt: skip


@pytest.mark.parametrize(
    ("gain", "n", "low", "high", "better", "expected"),
    [
        (0.01, 8, 0.1, 0.2, "higher", "untestable here"),
        (math.nan, 8, 0.1, 0.2, "higher", "untestable here"),
        (0.2, 1, math.nan, math.nan, "higher", "inconclusive"),
        (0.2, 2, 0.016, 0.016, "higher", "inconclusive"),  # two equal differences: a zero-width interval
        (0.2, 8, -0.1, 0.2, "higher", "inconclusive"),
        (0.2, 8, 0.01, 0.2, "higher", "supported"),
        (0.2, 8, 0.01, 0.2, "lower", "contradicted"),
        (0.2, 8, -0.3, -0.01, "lower", "supported"),
    ],
)
def test_verdicts(gain, n, low, high, better, expected):
    assert verdict(gain, n, low, high, better) == expected


def test_records_pair_by_seed_and_show_grpo_own_gain():
    start = {"greedy_accuracy": 0.4, "heldout_overconfident_error_rate": 0.2}
    results = (
        [run("grpo", s, 0.6 + 0.01 * s) for s in range(3)]
        + [run("icpo", s, 0.65 + 0.01 * s, oe=0.05) for s in range(3)]
        + [run("icpo", 9, 0.99)]
    )  # no GRPO partner: left out
    records = {r["metric"]: r for r in claim_records("tiny", "dense", start, results)}
    accuracy = records["greedy_accuracy"]
    assert accuracy["n_seeds"] == 3 and accuracy["grpo_start"] == 0.4
    assert accuracy["grpo_end"] == pytest.approx(0.61) and accuracy["grpo_gain"] == pytest.approx(0.21)
    assert accuracy["delta"] == pytest.approx(0.05)
    assert records["heldout_overconfident_error_rate"]["verdict"] == "supported"  # -0.05 on every seed
    assert "tiny / dense | icpo" in render_claims(list(records.values()))
    blocks = render_claim_blocks(list(records.values()))
    assert (
        "**tiny / dense** (3 seeds): GRPO's own change in held-out greedy accuracy 0.210 (headroom)" in blocks
    )
    assert (
        "| steadily boosts reasoning (held-out greedy accuracy) (greedy_accuracy, higher) | 0.400 -> 0.610 |"
        in blocks
    )
    assert "| icpo |" in blocks and "-0.050 [-0.050, -0.050] supported" in blocks
    no_headroom = claim_records("tiny", "sparse", {"greedy_accuracy": 0.6}, results)
    assert {r["verdict"] for r in no_headroom} == {"untestable here"}


def test_a_real_lm_report_names_the_runs_settings_not_those_start_json_was_made_with(tmp_path):
    """start.json is reused across training settings, so the report's step count and cell come from the runs."""
    import json
    from dataclasses import asdict, replace

    from icpo.study.claims import write_real_lm_report
    from icpo.study.real_lm import RealLMSettings

    made = RealLMSettings(regime="single-digit", steps=60, num_iterations=1)
    start = {"settings": asdict(made), "final": {"greedy_accuracy": 0.5}}
    (tmp_path / "start.json").write_text(json.dumps(start))
    trained = asdict(replace(made, steps=40, num_iterations=2))
    results = [
        run(variant, seed, 0.7 + 0.01 * seed) | {"settings": trained, "wall_seconds": 60.0, "history": [],
                                                  "eval_curve": [{"step": 40, "accuracy": 0.7}]}
        for variant in ("grpo", "icpo") for seed in range(3)
    ]  # fmt: skip
    report = write_real_lm_report(tmp_path, results).read_text()
    assert (
        report.startswith("# smollm2-135m-instruct on single-digit") and "\n40 steps of 4 prompts" in report
    )
    assert "single-digit, 2 optimiser passes per batch" in report


def test_the_entropy_claim_starts_from_grpo_first_steps():
    """Entropy is measured in training, not by the start evaluation: GRPO's start is its first steps' mean."""
    results = [
        {"variant": variant, "seed": seed, "final": {"greedy_accuracy": 0.5, "entropy_start": 0.8 + 0.1 * seed,
                                                     "entropy_end": end}}
        for variant, end in (("grpo", 0.2), ("icpo", 0.4)) for seed in range(3)
    ]  # fmt: skip
    (entropy,) = [
        r
        for r in claim_records("lm", "dense", {"greedy_accuracy": 0.3}, results)
        if r["metric"] == "entropy_end"
    ]
    assert (entropy["grpo_start"], entropy["grpo_end"]) == pytest.approx((0.9, 0.2))
