"""Evaluation metrics: avg@k and unbiased pass@k, and how well confidence separates right from wrong.

- avg@k: the mean correctness over all k samples of all problems.
- pass@k (Chen et al. 2021, unbiased): with n samples of which c are correct,
  pass@k = 1 - C(n - c, k) / C(n, k), averaged over problems (k <= n).
- AUROC of a score for correctness: P(score of a random correct sample > score of a random wrong
  one), ties counting 1/2 (the Mann-Whitney U statistic divided by n_correct * n_wrong).
- ECE: samples binned by predicted probability into equal-width bins on [0, 1];
  ECE = sum_b (n_b / n) * |accuracy_b - mean probability_b|. The probability of a sample is exp(c),
  c its length-normalised log-probability (the geometric-mean token probability).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem: 1 - C(n - c, k) / C(n, k)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}.")
    if n - c < k:
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i), stable for large n
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """AUROC of ``scores`` for ``labels`` (ties count 1/2); None without both classes."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores but {len(labels)} labels.")
    positives = sum(1 for label in labels if label)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    rank_sum, start = 0.0, 0
    while start < len(order):  # average ranks (1-based) over ties
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        mean_rank = (start + end) / 2 + 1
        rank_sum += mean_rank * sum(1 for i in order[start : end + 1] if labels[i])
        start = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def reliability_bins(
    probabilities: Sequence[float], labels: Sequence[bool], bins: int = 10
) -> list[tuple[float, float, int]]:
    """(mean probability, accuracy, count) per equal-width bin on [0, 1]; empty bins give (nan, nan, 0)."""
    if len(probabilities) != len(labels):
        raise ValueError(f"{len(probabilities)} probabilities but {len(labels)} labels.")
    sums = [[0.0, 0.0, 0] for _ in range(bins)]
    for probability, label in zip(probabilities, labels, strict=True):
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probabilities must lie in [0, 1], got {probability}.")
        entry = sums[min(int(probability * bins), bins - 1)]
        entry[0] += probability
        entry[1] += float(bool(label))
        entry[2] += 1
    return [(p / n, a / n, n) if n else (math.nan, math.nan, 0) for p, a, n in sums]


def expected_calibration_error(
    probabilities: Sequence[float], labels: Sequence[bool], bins: int = 10
) -> float:
    """ECE = sum_b (n_b / n) |accuracy_b - mean probability_b| over equal-width bins; nan when empty."""
    table = reliability_bins(probabilities, labels, bins)
    total = sum(count for _, _, count in table)
    if total == 0:
        return math.nan
    return sum(count / total * abs(accuracy - probability) for probability, accuracy, count in table if count)


def reliability_plot(
    curves: dict[str, tuple[Sequence[float], Sequence[bool]]], path: str | Path, bins: int = 10
) -> Path:
    """Save a reliability diagram (accuracy against mean probability per bin, one line per benchmark,
    the diagonal for perfect calibration) and a histogram of the probabilities below it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (diagram, histogram) = plt.subplots(
        2, 1, figsize=(5.5, 7), gridspec_kw={"height_ratios": [3, 1]}, sharex=True
    )
    diagram.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    for name, (probabilities, labels) in curves.items():
        table = [(p, a) for p, a, n in reliability_bins(probabilities, labels, bins) if n]
        ece = expected_calibration_error(probabilities, labels, bins)
        diagram.plot(
            [p for p, _ in table], [a for _, a in table], marker="o", label=f"{name} (ECE {ece:.3f})"
        )
        histogram.hist(probabilities, bins=bins, range=(0, 1), alpha=0.5, label=name)
    diagram.set_ylabel("accuracy")
    diagram.set_xlim(0, 1)
    diagram.set_ylim(0, 1)
    diagram.set_title("Reliability of sequence confidence exp(mean token log-prob)")
    diagram.legend(fontsize=8)
    histogram.set_xlabel("confidence exp(c)")
    histogram.set_ylabel("samples")
    figure.tight_layout()
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp.png")
    figure.savefig(temporary, dpi=120)
    plt.close(figure)
    temporary.replace(path)
    return path
