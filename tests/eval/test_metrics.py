"""Metrics against brute-force definitions and known values."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from icpo.eval.metrics import auroc, expected_calibration_error, pass_at_k, reliability_bins, reliability_plot


@given(st.data())
def test_pass_at_k_is_the_chance_a_random_k_subset_holds_a_correct_sample(data):
    n = data.draw(st.integers(1, 8))
    c = data.draw(st.integers(0, n))
    k = data.draw(st.integers(1, n))
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(outcomes, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)


@given(st.lists(st.tuples(st.integers(-3, 3), st.booleans()), min_size=1, max_size=30))
def test_auroc_is_the_pairwise_win_rate(rows):
    scores, labels = [float(s) for s, _ in rows], [label for _, label in rows]
    positives = [s for s, label in zip(scores, labels, strict=True) if label]
    negatives = [s for s, label in zip(scores, labels, strict=True) if not label]
    if not positives or not negatives:
        assert auroc(scores, labels) is None
        return
    wins = sum((p > q) + 0.5 * (p == q) for p in positives for q in negatives)
    assert auroc(scores, labels) == pytest.approx(wins / (len(positives) * len(negatives)))


def test_ece_on_known_inputs():
    # bin [0.2, 0.3): mean 0.25, accuracy 0.5; bin [0.9, 1.0]: mean 0.95, accuracy 1.0
    probabilities = [0.2, 0.3 - 1e-9, 0.9, 1.0]
    labels = [True, False, True, True]
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.5 * 0.25 + 0.5 * 0.05)
    assert expected_calibration_error([0.7] * 10, [True] * 7 + [False] * 3) == pytest.approx(0.0)
    table = reliability_bins(probabilities, labels)
    assert [count for _, _, count in table] == [0, 0, 2, 0, 0, 0, 0, 0, 0, 2]
    assert math.isnan(expected_calibration_error([], []))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_calibration_error([1.5], [True])


def test_reliability_plot_writes_a_png(tmp_path):
    path = reliability_plot({"toy": ([0.1, 0.5, 0.9, 0.95], [False, True, True, True])}, tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.iterdir()) == [path]


def test_the_documented_worked_example():
    """docs/method.md section 6 and docs/evaluation.md: three groups of four, computed by hand."""
    import torch

    from icpo.core import group_auroc, group_outcome_shares, overconfident_error_rate, within_group_auroc

    c = torch.tensor([-1.2, -0.8, -1.5, -2.0, -0.9, -1.1, -1.4, -2.2, -0.5, -1.0, -0.7, -0.3])
    right = torch.tensor([1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]).bool()
    per_group = group_auroc(c, right, 4)
    assert per_group[0] == 0.5 and math.isnan(per_group[1]) and per_group[2] == pytest.approx(2 / 3)
    assert within_group_auroc(c, right, 4) == pytest.approx(7 / 12)
    assert overconfident_error_rate(c, right, 4) == pytest.approx(0.4)
    assert group_outcome_shares(right, 4) == pytest.approx(
        {"all_wrong": 1 / 3, "mixed": 2 / 3, "all_correct": 0}
    )
    assert auroc(c.tolist(), right.tolist()) == pytest.approx(13 / 27)
