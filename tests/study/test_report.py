"""The study report: paired confidence intervals and the files written from a synthetic results set."""

from __future__ import annotations

import csv
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icpo.study.report import paired_difference, summarise, write_report


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


# --- the grid report ------------------------------------------------------------------------------


def _grid_result(variant: str, seed: int, start: float, noise: float, accuracy: float, **final) -> dict:
    return {
        "variant": variant,
        "seed": seed,
        "settings": {"start_accuracy": start, "reward_noise": noise},
        "eval_curve": [{"step": 0, "accuracy": start}, {"step": 10, "accuracy": start + 0.04},
                       {"step": 20, "accuracy": accuracy}],
        "final": {"greedy_accuracy": accuracy, "mixed_group_share": 0.25,
                  "heldout_overconfident_error_rate": math.nan, **final},
        "warm_start": {"heldout_accuracy": start + 0.01 * seed},
    }  # fmt: skip


def test_grid_pairs_by_seed_within_each_cell_and_leaves_undefined_metrics_out():
    from icpo.study.report import grid_summary

    results = [_grid_result("g", s, 0.1, 0.0, 0.2, heldout_within_group_auroc=0.6) for s in range(3)]
    results += [_grid_result("g", s, 0.4, 0.2, 0.5) for s in range(2)]
    results += [_grid_result("i", 0, 0.4, 0.2, 0.6)]  # seed 1 unfinished: the cell has seed 0 only
    results += [
        _grid_result(
            "i", s, 0.1, 0.0, 0.25 + 0.01 * s, heldout_within_group_auroc=math.nan if s == 0 else 0.7
        )
        for s in range(3)
    ]
    summary = grid_summary(results, {"g": "grpo", "i": "icpo"})
    first, second = summary["cells"]
    assert (first["start_target"], first["reward_noise"], first["seeds"]) == (0.1, 0.0, [0, 1, 2])
    accuracy = first["vs_baseline"]["icpo"]["greedy_accuracy"]
    assert accuracy["n"] == 3 and accuracy["mean"] == pytest.approx(0.06)
    auroc = first["vs_baseline"]["icpo"]["heldout_within_group_auroc"]
    assert (auroc["n"], auroc["undefined"], auroc["mean"]) == (2, 1, pytest.approx(0.1))
    overconfident = first["vs_baseline"]["icpo"]["heldout_overconfident_error_rate"]
    assert overconfident["n"] == 0 and math.isnan(overconfident["mean"])
    assert first["start_actual"] == pytest.approx([0.1, 0.11, 0.12])
    assert first["all_equal_share"]["grpo"] == pytest.approx(0.75)
    # steps to start + 0.05: GRPO (0.2 at step 20) and ICPO both reach it at step 20
    assert first["mean"]["grpo"]["steps_to_target"] == 20.0
    assert first["reached_target"] == {"grpo": 3, "icpo": 3}
    assert second["seeds"] == [0] and second["vs_baseline"]["icpo"]["greedy_accuracy"]["n"] == 1
    assert second["mean"]["grpo"]["greedy_accuracy"] == pytest.approx(0.5)


def test_steps_to_target_is_the_first_evaluation_past_the_margin_or_nan():
    from icpo.study.report import steps_to_target

    assert steps_to_target(_grid_result("g", 0, 0.1, 0.0, 0.2)) == 20.0
    assert math.isnan(steps_to_target(_grid_result("g", 0, 0.1, 0.0, 0.12)))


def test_grid_report_writes_tables_that_say_undefined_and_a_heat_map(tmp_path):
    from icpo.core import ICPOOptions
    from icpo.study.methods import METHODS, options_method
    from icpo.study.report import write_grid_report

    variants = {"grpo": METHODS["grpo"], "icpo": options_method(ICPOOptions(alpha=0.5))}
    names = {label: v.name for label, v in variants.items()}
    results = [
        _grid_result(names[v], s, start, noise, acc + (0.03 * s if v == "icpo" else 0.0))
        for v in variants for s in range(3) for start in (0.1, 0.4) for noise in (0.0, 0.4)
        for acc in [start + 0.1]
    ]  # fmt: skip
    path = write_grid_report(tmp_path, results, variants)
    text = path.read_text()
    assert "| 0.1 | 0.4 | 3 | 0.200 | +0.030 [-0.045, +0.105] |" in text
    assert "held-out overconfident-error rate" in text and "| undefined | undefined |" in text
    # steps to start + 0.05: GRPO's runs end at start + 0.1 and reach it at step 20 on every seed
    assert "| 0.4 | 0 | 3 | 20.0; 3/3 | +0.0 [+0.0, +0.0]; 3/3 |" in text
    assert (tmp_path / "results-grid-accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tmp_path / "results-grid.json").read_text())["cells"][0]["seeds"] == [0, 1, 2]
    with pytest.raises(ValueError, match="no finished grid runs"):
        write_grid_report(tmp_path, [], variants)


def test_grid_counts_the_seeds_that_reach_the_target_even_when_no_pair_does():
    from icpo.study.report import grid_summary, render_grid_markdown

    # GRPO reaches 0.15 on seed 0 only; ICPO on seed 1 only: no pair, but 1 of 2 seeds each.
    results = [_grid_result("g", 0, 0.1, 0.0, 0.2), _grid_result("g", 1, 0.1, 0.0, 0.11)]
    results += [_grid_result("i", 0, 0.1, 0.0, 0.12), _grid_result("i", 1, 0.1, 0.0, 0.3)]
    summary = grid_summary(results, {"g": "grpo", "i": "icpo"})
    (cell,) = summary["cells"]
    assert cell["reached_target"] == {"grpo": 1, "icpo": 1}
    assert cell["vs_baseline"]["icpo"]["steps_to_target"]["n"] == 0
    assert "| 0.1 | 0 | 2 | 20.0; 1/2 | undefined; 1/2 |" in render_grid_markdown(summary, ["icpo"])


def test_curves_are_smoothed_and_labelled_for_a_reader():
    from icpo.study.report import display_name, metric_meaning, smoothed

    assert smoothed([0.0, 1.0, 0.0, 1.0], 2) == [0.0, 0.5, 0.5, 0.5]
    assert smoothed([1.0, float("nan"), 3.0], 3) == [1.0, 1.0, 2.0]
    results = [
        {
            "variant": "icpo-a0.5-bt-t1-advantage-low",
            "variant_options": {"alpha": 0.5, "combine": "advantage"},
        }
    ]
    assert display_name("grpo", results) == "GRPO"
    assert display_name("icpo-a0.5-bt-t1-advantage-low", results) == "ICPO alpha=0.5, advantage"
    assert "lower is better" in metric_meaning("heldout_overconfident_error_rate")
    assert "16 samples" in metric_meaning("pass_at_16") and metric_meaning("unknown") is None


def test_study_step_times_pairs_each_method_with_grpo_by_seed(tmp_path):
    """benchmarks/study_step_times.py: mean step time per method (generating and reusing steps alike),
    completion length only where logged, and the ratio to GRPO's run of the same seed."""
    import subprocess
    import sys
    from pathlib import Path

    def run(method: str, seed: int, times: list[float]) -> None:
        folder = tmp_path / "runs" / f"{method}-seed{seed}"
        folder.mkdir(parents=True)
        history = [{"step": i + 1, "step_time": t} for i, t in enumerate(times)]
        history[0]["completions/mean_length"] = 12.0  # only the generating step logs it
        (folder / "result.json").write_text(json.dumps({"variant": method, "seed": seed, "history": history}))

    run("grpo", 0, [16.0, 10.0])
    run("icpo", 0, [17.0, 9.0])
    run("grpo", 1, [10.0, 10.0])
    run("icpo", 1, [11.0, 11.0])
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "study_step_times.py"
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "| grpo | 2 | 11.5 | 12.0 | 1.00, 1.00 |" in done.stdout
    assert "| icpo | 2 | 12.0 | 12.0 | 1.00, 1.10 |" in done.stdout
