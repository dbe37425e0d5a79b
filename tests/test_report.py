"""The study report: paired confidence intervals and the files written from a synthetic results set."""

from __future__ import annotations

import csv
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icpo.report import paired_difference, summarise, write_report


def test_paired_difference_matches_hand_computation():
    mean, low, high = paired_difference([0.1, 0.3, 0.2])  # sd = 0.1, n = 3, t_{0.975,2} = 4.303
    half = 4.303 * 0.1 / math.sqrt(3)
    assert mean == pytest.approx(0.2)
    assert (low, high) == pytest.approx(
        (0.2 - half, 0.2 + half), rel=1e-3
    )  # the table rounds t to 3 decimals
    single = paired_difference([0.5])
    assert single[0] == 0.5 and math.isnan(single[1]) and math.isnan(single[2])


@pytest.mark.parametrize("n", [2, 5, 30, 31, 40, 200])
def test_interval_is_the_one_sample_t_interval_for_any_number_of_seeds(n):
    """Against scipy's own one-sample t test (beyond 31 seeds the old table fell back to 1.96)."""
    from scipy.stats import ttest_1samp

    values = [math.sin(3.7 * i) for i in range(n)]
    want = ttest_1samp(values, 0.0).confidence_interval(0.95)
    assert paired_difference(values)[1:] == pytest.approx((want.low, want.high), rel=1e-9)


@given(st.lists(st.floats(-1, 1), min_size=2, max_size=40))
def test_interval_contains_the_mean_and_shrinks_to_it_without_spread(values):
    mean, low, high = paired_difference(values)
    assert low <= mean + 1e-12 and mean - 1e-12 <= high
    constant = paired_difference([values[0]] * len(values))
    assert constant[1] == pytest.approx(constant[2])


def _result(variant: str, seed: int, accuracy: float) -> dict:
    history = [
        {"step": s, "reward": 0.3 + 0.01 * s, "entropy": 0.6, "icpo/overconfident_error_rate": 0.3}
        for s in range(1, 6)
    ]
    return {
        "variant": variant,
        "seed": seed,
        "settings": {
            "task": "addition", "difficulty": 2, "steps": 5, "prompts_per_step": 8, "num_generations": 8,
            "reward_noise": 0.0, "num_test": 10,
        },
        "history": history,
        "eval_curve": [{"step": 0, "accuracy": 0.4}, {"step": 5, "accuracy": accuracy}],
        "final": {"greedy_accuracy": accuracy, "entropy_end": 0.6},
        "wall_seconds": 1.0,
    }  # fmt: skip


def test_report_files_from_synthetic_results(tmp_path):
    results = [_result("grpo", s, 0.40 + 0.01 * s) for s in range(3)]
    results += [_result("icpo", s, 0.45 + 0.01 * s + (0.02 if s == 1 else 0.0)) for s in range(3)]
    report = write_report(tmp_path, "study", results, baseline="grpo")

    summary = json.loads((tmp_path / "study.json").read_text())
    diff = summary["variants"]["icpo"]["vs_baseline"]["greedy_accuracy"]
    assert diff["n"] == 3 and diff["mean"] == pytest.approx(0.05 + 0.02 / 3)
    assert diff["ci95"][0] < diff["mean"] < diff["ci95"][1]
    assert summary["variants"]["grpo"]["vs_baseline"] == {}

    rows = list(csv.DictReader((tmp_path / "study.csv").open()))
    assert len(rows) == 6 and {r["variant"] for r in rows} == {"grpo", "icpo"}

    text = report.read_text()
    assert "| icpo | 3 |" in text and "+0.057" in text
    for metric in ("accuracy", "entropy", "overconfident_error_rate", "reward"):
        png = tmp_path / f"study-{metric}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png.name})" in text
    assert not list(tmp_path.glob("*.tmp"))


def test_summary_pairs_only_shared_seeds():
    results = [_result("grpo", 0, 0.4), _result("grpo", 1, 0.5), _result("icpo", 1, 0.7)]
    diff = summarise(results, "grpo")["variants"]["icpo"]["vs_baseline"]["greedy_accuracy"]
    assert diff["n"] == 1 and diff["mean"] == pytest.approx(0.2)


def test_empty_results_are_an_error(tmp_path):
    with pytest.raises(ValueError, match="no run results"):
        write_report(tmp_path, "x", [], baseline="grpo")


def test_single_seed_report_says_it_has_no_interval(tmp_path):
    results = [_result("grpo", 0, 0.4), _result("icpo", 0, 0.5)]
    text = write_report(tmp_path, "demo", results, baseline="grpo").read_text()
    assert "One seed" in text and "| icpo | greedy_accuracy | +0.100 | [n/a, n/a] |" in text
