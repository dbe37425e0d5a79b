"""Properties of the ICPO math in ``icpo.core``.

The central check compares icpo.core against ``reference_advantages``: an independent, deliberately slow
plain-Python implementation written row by row from the equations in docs/method.md (float64, loops, no
torch). The other properties are the behaviours the method promises (alpha = 0 is GRPO, order
equivariance, correct answers stay ahead, confidence fills flat groups, nothing non-finite escapes) and
hand-computed cases for the smaller helpers and diagnostics.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from icpo.core import (
    COMBINES,
    DIRECTIONS,
    METHODS,
    SCALES,
    group_auroc,
    group_outcome_shares,
    grpo_advantages,
    icpo_advantages,
    overconfident_error_rate,
    preference_scores,
    rank_flip_rate,
    scheduled_alpha,
    sequence_confidence,
    step_metrics,
    within_group_auroc,
)

NAN = float("nan")
INF = float("inf")
PROPERTY = settings(max_examples=150, deadline=None)


# --- the slow reference, straight from the equations ----------------------------------------------


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _std(values: list[float]) -> float | None:
    """Bessel-corrected standard deviation; None when fewer than two values."""
    if len(values) < 2:
        return None
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def reference_group_preference(
    confidence: list[float], method: str, tau: float, direction: str, eps: float = 1e-6
) -> list[float]:
    """p_i for one group. Rows whose confidence is NaN/inf take no part and get 0.5.

    bt:   z_i = (c_i - mean c) / (std c + eps),  p_i = 1/(G'-1) * sum_{j != i} sigmoid(s * (z_j - z_i) / tau)
    rank: k_i = #{j: s*c_j < s*c_i} + 1/2 #{j != i: c_j = c_i},  p_i = 1 - k_i / (G' - 1)
    with s = +1 for direction "low" (the less confident response wins) and s = -1 for "high".
    """
    sign = 1.0 if direction == "low" else -1.0
    members = [i for i, c in enumerate(confidence) if math.isfinite(c)]
    scores = [0.5] * len(confidence)
    if len(members) < 2:
        return scores
    peers = len(members) - 1
    if method == "bt":
        values = [confidence[i] for i in members]
        mean, std = _mean(values), _std(values)
        z = {i: (confidence[i] - mean) / (std + eps) for i in members}
        for i in members:
            scores[i] = sum(_sigmoid(sign * (z[j] - z[i]) / tau) for j in members if j != i) / peers
    else:
        for i in members:
            below = sum(1 for j in members if sign * confidence[j] < sign * confidence[i])
            tied = sum(1 for j in members if j != i and confidence[j] == confidence[i])
            scores[i] = 1.0 - (below + 0.5 * tied) / peers
    return scores


def reference_grpo(values: list[float], group_size: int, scale: str, eps: float = 1e-4) -> list[float]:
    """(x_i - mean_g x) / (std + eps) over the finite entries; non-finite entries get 0.

    std: Bessel std of the row's group ("group") or of every finite entry in the batch ("batch"), or
    no division ("none"). A row alone in its group has x_i - mean = 0, so its advantage is 0.
    """
    batch_std = _std([v for v in values if math.isfinite(v)])
    advantages = [0.0] * len(values)
    for start in range(0, len(values), group_size):
        rows = [i for i in range(start, start + group_size) if math.isfinite(values[i])]
        if not rows:
            continue
        mean = _mean([values[i] for i in rows])
        group_std = _std([values[i] for i in rows])
        for i in rows:
            centred = values[i] - mean
            if scale == "none":
                advantages[i] = centred
            else:
                std = group_std if scale == "group" else batch_std
                advantages[i] = 0.0 if std is None else centred / (std + eps)
    return advantages


def reference_rank(confidence: list[float], direction: str) -> list[float]:
    """Each row's ascending rank among the group's finite confidences (0 = the least confident; "high" ranks
    the negated confidences), ties sharing their mean rank; a row without a finite confidence gets the
    middle rank (G' - 1) / 2, and every row of a group with fewer than two finite confidences gets 0."""
    sign = -1.0 if direction == "high" else 1.0
    finite = [sign * c for c in confidence if math.isfinite(c)]
    if len(finite) < 2:
        return [0.0] * len(confidence)
    return [
        sum(other < sign * c for other in finite) + 0.5 * (sum(other == sign * c for other in finite) - 1)
        if math.isfinite(c)
        else (len(finite) - 1) / 2
        for c in confidence
    ]


def reference_advantages(
    rewards: list[float],
    confidence: list[float],
    group_size: int,
    alpha: float,
    method: str,
    tau: float,
    direction: str,
    combine: str,
    scale: str,
) -> list[float]:
    """ICPO advantages, one group at a time. Unscorable rows (non-finite reward) take no part anywhere.

    reward:    A = GRPO(r + alpha * p)
    advantage: A = GRPO(r) + alpha * (p - mean_g p), the mean over the group's scorable rows.
    fallback:  as advantage in groups whose scorable rewards are all equal; GRPO(r) in the others.
    unlikeliness: A = GRPO(r * (1 - alpha * k / G)), k the ascending confidence rank (``reference_rank``).
    """
    scorable = [math.isfinite(r) for r in rewards]
    if combine == "unlikeliness":
        shaped = []
        for start in range(0, len(rewards), group_size):
            group = range(start, start + group_size)
            ranks = reference_rank([confidence[i] if scorable[i] else NAN for i in group], direction)
            shaped += [
                rewards[i] * (1 - alpha * k / group_size) if scorable[i] else NAN
                for i, k in zip(group, ranks, strict=True)
            ]
        return reference_grpo(shaped, group_size, scale)
    preference: list[float] = []
    for start in range(0, len(rewards), group_size):
        group = range(start, start + group_size)
        taking_part = [confidence[i] if scorable[i] else NAN for i in group]
        preference += reference_group_preference(taking_part, method, tau, direction)
    if combine == "reward":
        shaped = [
            r + alpha * p if ok else NAN for r, p, ok in zip(rewards, preference, scorable, strict=True)
        ]
        return reference_grpo(shaped, group_size, scale)
    advantages = reference_grpo(
        [r if ok else NAN for r, ok in zip(rewards, scorable, strict=True)], group_size, scale
    )
    for start in range(0, len(rewards), group_size):
        rows = [i for i in range(start, start + group_size) if scorable[i]]
        flat = len({rewards[i] for i in rows}) <= 1
        if rows and (combine == "advantage" or flat):
            mean_p = _mean([preference[i] for i in rows])
            for i in rows:
                advantages[i] += alpha * (preference[i] - mean_p)
    return advantages


# --- strategies -----------------------------------------------------------------------------------

# 0/1 rewards dominate (ties inside groups are the interesting case); a few graded ones and NaNs.
REWARD = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(-2, 2, width=32), st.just(NAN))
# A small grid makes exact ties likely; the continuous range covers everything else.
CONFIDENCE = st.one_of(
    st.sampled_from([-0.5, -1.0, -2.0]), st.floats(-8, 0, width=32), st.sampled_from([NAN, -INF, INF])
)
OPTIONS = st.fixed_dictionaries(
    {
        "method": st.sampled_from(METHODS),
        "combine": st.sampled_from(COMBINES),
        "scale": st.sampled_from(SCALES),
        "direction": st.sampled_from(DIRECTIONS),
        "tau": st.floats(0.2, 5),
    }
)


@st.composite
def batches(draw, reward=REWARD, confidence=CONFIDENCE, max_group: int = 8, max_groups: int = 4):
    """(rewards, confidence, group_size) as float32 tensors laid out as consecutive groups."""
    group_size = draw(st.integers(2, max_group))
    rows = group_size * draw(st.integers(1, max_groups))
    rewards = draw(st.lists(reward, min_size=rows, max_size=rows))
    confidences = draw(st.lists(confidence, min_size=rows, max_size=rows))
    return torch.tensor(rewards), torch.tensor(confidences), group_size


def by_group(group_size: int, *tensors: torch.Tensor):
    """Iterate over groups: one tuple of per-group Python lists (one list per tensor) per group."""
    return zip(*(t.reshape(-1, group_size).tolist() for t in tensors), strict=True)


# --- icpo_advantages against the reference --------------------------------------------------------


@PROPERTY
@given(batch=batches(), alpha=st.floats(0, 3), options=OPTIONS)
def test_matches_the_loop_reference(batch, alpha, options):
    rewards, confidence, group_size = batch
    got = icpo_advantages(rewards, confidence, group_size, alpha, **options)
    # The reference sees exactly the float32 inputs core sees; the remaining gap is float32 arithmetic,
    # which the division by (std + 1e-4) can magnify when a group's shaped rewards are almost equal.
    want = reference_advantages(rewards.tolist(), confidence.tolist(), group_size, alpha, **options)
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-4, atol=1e-3)


@PROPERTY
@given(batch=batches(), method=st.sampled_from(METHODS), tau=st.floats(0.2, 5))
def test_preference_matches_the_loop_reference_in_both_directions(batch, method, tau):
    _, confidence, group_size = batch
    for direction in DIRECTIONS:
        got = preference_scores(confidence, group_size, method=method, tau=tau, direction=direction)
        want = [
            p
            for (group,) in by_group(group_size, confidence)
            for p in reference_group_preference(group, method, tau, direction)
        ]
        torch.testing.assert_close(got, torch.tensor(want), rtol=1e-5, atol=1e-5)


# --- GRPO -----------------------------------------------------------------------------------------


@PROPERTY
@given(batch=batches(), options=OPTIONS)
def test_alpha_zero_is_grpo_bit_for_bit(batch, options):
    rewards, confidence, group_size = batch
    icpo = icpo_advantages(rewards, confidence, group_size, 0.0, **options)
    assert torch.equal(icpo, grpo_advantages(rewards, group_size, scale=options["scale"]))


@settings(max_examples=50, deadline=None)
@given(batch=batches(reward=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(-2, 2, width=32))))
def test_grpo_equals_trl_advantages_bit_for_bit(batch):
    trl_utils = pytest.importorskip("trl.trainer.utils")
    rewards, _, group_size = batch
    grouped = rewards.view(-1, group_size)
    # TRL's GRPOTrainer: (r - group mean) / (std + 1e-4), std from TRL's own nanstd.
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(group_size)
    for scale, std in (
        ("group", trl_utils.nanstd(grouped, dim=1).repeat_interleave(group_size)),
        ("batch", trl_utils.nanstd(rewards).expand_as(rewards)),
    ):
        want = torch.nan_to_num((rewards - mean) / (std + 1e-4), nan=0.0)
        assert torch.equal(grpo_advantages(rewards, group_size, scale=scale), want), scale
    assert torch.equal(grpo_advantages(rewards, group_size, scale="none"), rewards - mean)


# --- order equivariance ---------------------------------------------------------------------------


@PROPERTY
@given(batch=batches(), alpha=st.floats(0, 3), options=OPTIONS, data=st.data())
def test_permuting_rows_inside_groups_permutes_the_advantages(batch, alpha, options, data):
    rewards, confidence, group_size = batch
    num_groups = rewards.numel() // group_size
    order = torch.cat(
        [
            torch.tensor(data.draw(st.permutations(range(group_size)))) + g * group_size
            for g in range(num_groups)
        ]
    )
    before = icpo_advantages(rewards, confidence, group_size, alpha, **options)
    after = icpo_advantages(rewards[order], confidence[order], group_size, alpha, **options)
    torch.testing.assert_close(after, before[order], rtol=1e-5, atol=1e-4)


@PROPERTY
@given(batch=batches(max_groups=5), alpha=st.floats(0, 3), options=OPTIONS, data=st.data())
def test_reordering_groups_reorders_the_advantages(batch, alpha, options, data):
    rewards, confidence, group_size = batch
    group_order = data.draw(st.permutations(range(rewards.numel() // group_size)))
    order = torch.cat([torch.arange(g * group_size, (g + 1) * group_size) for g in group_order])
    before = icpo_advantages(rewards, confidence, group_size, alpha, **options)
    after = icpo_advantages(rewards[order], confidence[order], group_size, alpha, **options)
    torch.testing.assert_close(after, before[order], rtol=1e-5, atol=1e-4)


# --- what the preference term is for --------------------------------------------------------------


@PROPERTY
@given(batch=batches(), alpha=st.floats(0, 3), options=OPTIONS)
def test_among_equal_rewards_lower_confidence_never_gets_a_lower_advantage(batch, alpha, options):
    rewards, confidence, group_size = batch
    advantages = icpo_advantages(rewards, confidence, group_size, alpha, **options)
    favoured = 1.0 if options["direction"] == "low" else -1.0  # "high" reverses the preference
    for r, c, a in by_group(group_size, rewards, confidence, advantages):
        for i in range(group_size):
            for k in range(group_size):
                comparable = math.isfinite(r[i]) and r[i] == r[k] and math.isfinite(c[i] + c[k])
                if comparable and favoured * c[i] < favoured * c[k]:
                    assert a[i] >= a[k], (i, k, r, c, a)


@PROPERTY
@given(
    batch=batches(reward=st.sampled_from([0.0, 1.0, NAN])),
    alpha=st.floats(0, 0.99),
    options=OPTIONS,
)
def test_with_binary_rewards_and_alpha_below_one_correct_outranks_wrong(batch, alpha, options):
    # reward: r + alpha * p is >= 1 for a correct row and < 1 for a wrong one, and GRPO keeps that order.
    # advantage: GRPO's gap between a correct and a wrong row is 1 (scale "none") or 1 / std >= sqrt(2)
    # (a std of 0/1 values is at most sqrt(1/2)), and alpha * (p_correct - p_wrong) >= -alpha > -1.
    rewards, confidence, group_size = batch
    advantages = icpo_advantages(rewards, confidence, group_size, alpha, **options)
    for r, a in by_group(group_size, rewards, advantages):
        correct = [adv for reward, adv in zip(r, a, strict=True) if reward == 1.0]
        wrong = [adv for reward, adv in zip(r, a, strict=True) if reward == 0.0]
        if correct and wrong:
            assert min(correct) > max(wrong), (r, a)
    assert rank_flip_rate(rewards, advantages, group_size) == 0.0


@PROPERTY
@given(
    group_size=st.integers(2, 8),
    # Rewards whose group mean is exact in float32, so GRPO's advantage is exactly 0 (with 0.3 it is
    # 3e-4: float32 rounding of the mean, divided by eps; TRL computes the same).
    reward=st.sampled_from([0.0, 1.0, 0.5]),
    alpha=st.floats(0.01, 3),
    options=OPTIONS,
    data=st.data(),
)
def test_equal_rewards_with_distinct_confidences_still_give_a_signal(
    group_size, reward, alpha, options, data
):
    levels = data.draw(st.lists(st.integers(-800, 0), min_size=group_size, max_size=group_size, unique=True))
    confidence = torch.tensor(levels, dtype=torch.float32) / 100
    rewards = torch.full((group_size,), reward)
    assert torch.equal(grpo_advantages(rewards, group_size, scale=options["scale"]), torch.zeros(group_size))
    advantages = icpo_advantages(rewards, confidence, group_size, alpha, **options)
    if options["combine"] == "unlikeliness" and reward == 0.0:
        assert (advantages == 0).all()  # it scales rewards: an all-wrong group has no signal, as in GRPO
        return
    favoured = confidence.argmin() if options["direction"] == "low" else confidence.argmax()
    assert advantages[favoured] > 0 and advantages[favoured] == advantages.max()


@PROPERTY
@given(batch=batches(), alpha=st.floats(0, 3), options=OPTIONS)
def test_fallback_is_grpo_in_groups_with_a_signal_and_advantage_in_flat_ones(batch, alpha, options):
    rewards, confidence, group_size = batch
    options = {**options, "combine": "fallback"}
    got = icpo_advantages(rewards, confidence, group_size, alpha, **options)
    as_advantage = icpo_advantages(
        rewards, confidence, group_size, alpha, **{**options, "combine": "advantage"}
    )
    as_grpo = icpo_advantages(rewards, confidence, group_size, 0.0, **options)
    for r, a, want_flat, want_grpo in by_group(group_size, rewards, got, as_advantage, as_grpo):
        flat = len({x for x in r if math.isfinite(x)}) <= 1
        assert a == (want_flat if flat else want_grpo), (r, a)


# --- invalid rows ---------------------------------------------------------------------------------

ANY_FLOAT = st.one_of(st.floats(width=32), st.sampled_from([NAN, INF, -INF, 3e38, -3e38]))


@PROPERTY
@given(batch=batches(reward=ANY_FLOAT, confidence=ANY_FLOAT), alpha=st.floats(0, 1e6), options=OPTIONS)
def test_nothing_non_finite_leaves_and_unscorable_rows_get_exactly_zero(batch, alpha, options):
    rewards, confidence, group_size = batch
    advantages = icpo_advantages(rewards, confidence, group_size, alpha, **options)
    assert torch.isfinite(advantages).all()
    assert (advantages[~torch.isfinite(rewards)] == 0).all()
    scores = preference_scores(confidence, group_size, method=options["method"], tau=options["tau"])
    assert torch.isfinite(scores).all()


@PROPERTY
@given(batch=batches(), alpha=st.floats(0, 3), options=OPTIONS, replacement=CONFIDENCE)
def test_an_unscorable_rows_confidence_changes_nothing(batch, alpha, options, replacement):
    rewards, confidence, group_size = batch
    unscorable = ~torch.isfinite(rewards)
    changed = torch.where(unscorable, torch.tensor(replacement), confidence)
    torch.testing.assert_close(
        icpo_advantages(rewards, changed, group_size, alpha, **options),
        icpo_advantages(rewards, confidence, group_size, alpha, **options),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("options", [dict(method=m, combine=c) for m in METHODS for c in COMBINES])
@pytest.mark.parametrize(
    "rewards, token_logps, mask",
    [
        pytest.param([1.0, 0.0], [[-INF, -1.0], [-0.5, -0.5]], [[1, 1], [1, 1]], id="-inf log-prob, G=2"),
        pytest.param([1.0, 0.0], [[-1.0, -1.0], [-0.5, -0.5]], [[0, 0], [1, 1]], id="empty completion, G=2"),
        pytest.param([1.0, 0.0, 0.0], [[-1.0], [-1.0], [-1.0]], [[1], [1], [1]], id="all-equal confidences"),
        pytest.param([NAN, NAN, NAN], [[-1.0], [-2.0], [-3.0]], [[1], [1], [1]], id="all-NaN rewards"),
        pytest.param([0.0, 0.0], [[-INF], [NAN]], [[1], [1]], id="no confidence at all"),
    ],
)
def test_extreme_inputs_stay_finite(rewards, token_logps, mask, options):
    rewards = torch.tensor(rewards)
    confidence = sequence_confidence(torch.tensor(token_logps), torch.tensor(mask))
    group_size = rewards.numel()
    for scale in SCALES:
        for direction in DIRECTIONS:
            advantages = icpo_advantages(
                rewards, confidence, group_size, 0.5, scale=scale, direction=direction, **options
            )
            assert torch.isfinite(advantages).all()
            if torch.isnan(rewards).all():
                assert torch.equal(advantages, torch.zeros(group_size))


def test_numpy_scalars_work_as_alpha_and_group_size():
    rewards, confidence = torch.tensor([1.0, 0.0, 0.0, 1.0]), torch.tensor([-1.0, -2.0, -3.0, -0.5])
    want = icpo_advantages(rewards, confidence, 2, 0.25)
    assert torch.equal(icpo_advantages(rewards, confidence, np.int64(2), np.float32(0.25)), want)


def test_an_empty_batch_gives_empty_results():
    empty = torch.zeros(0)
    for options in (dict(method=m, combine=c, scale=s) for m in METHODS for c in COMBINES for s in SCALES):
        assert icpo_advantages(empty, empty, 4, 0.5, **options).shape == (0,)
    assert grpo_advantages(empty, 4).shape == (0,)
    assert preference_scores(empty, 4).shape == (0,)
    assert sequence_confidence(torch.zeros(0, 3), torch.zeros(0, 3)).shape == (0,)
    assert rank_flip_rate(empty, empty, 4) == 0.0
    assert math.isnan(overconfident_error_rate(empty, empty.bool(), 4))


# --- sequence_confidence --------------------------------------------------------------------------


def test_sequence_confidence_is_the_mean_log_prob_under_the_mask():
    token_logps = torch.tensor(
        [
            [-1.0, -2.0, -3.0, -INF],  # padding holds -inf
            [-0.5, NAN, NAN, NAN],  # padding holds NaN
            [-1.0, -1.0, 0.0, 0.0],  # empty completion
            [-1.0, -INF, 0.0, 0.0],  # a real token with probability 0
            [-0.2, -0.4, -0.6, -0.8],
        ]
    )
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]])
    want = torch.tensor([-2.0, -0.5, NAN, NAN, -0.5])
    for mask_as in (mask, mask.bool(), mask.float()):
        got = sequence_confidence(token_logps, mask_as)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, equal_nan=True)
    torch.testing.assert_close(sequence_confidence(token_logps.double(), mask), want, equal_nan=True)


def test_sequence_confidence_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=re.escape("(2, 3)") + ".*" + re.escape("(2, 4)")):
        sequence_confidence(torch.zeros(2, 3), torch.ones(2, 4))


# --- error messages name the numbers --------------------------------------------------------------


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: icpo_advantages(torch.zeros(4), torch.zeros(4), 1, 0.5), "group_size.*got 1"),
        (lambda: icpo_advantages(torch.zeros(4), torch.zeros(4), 2.0, 0.5), "group_size.*got 2.0"),
        (lambda: icpo_advantages(torch.zeros(8), torch.zeros(8), 3, 0.5), "8 rows.*group_size=3"),
        (
            lambda: icpo_advantages(torch.zeros(6), torch.zeros(4), 2, 0.5),
            "confidence has 4 rows.*rewards has 6",
        ),
        (lambda: icpo_advantages(torch.zeros(4), torch.zeros(4), 2, -0.1), "alpha.*got -0.1"),
        (lambda: icpo_advantages(torch.zeros(4), torch.zeros(4), 2, NAN), "alpha.*got nan"),
        (lambda: icpo_advantages(torch.zeros(4), torch.zeros(4), 2, 0.5, combine="sum"), "combine='sum'"),
        (lambda: icpo_advantages(torch.zeros(4), torch.zeros(4), 2, 0.5, scale="std"), "scale='std'"),
        (lambda: icpo_advantages(torch.zeros(2, 2), torch.zeros(2, 2), 2, 0.5), r"shape \(2, 2\)"),
        (lambda: preference_scores(torch.zeros(4), 2, tau=0.0), "tau.*got 0.0"),
        (lambda: preference_scores(torch.zeros(4), 2, method="elo"), "method='elo'"),
        (lambda: preference_scores(torch.zeros(4), 2, direction="up"), "direction='up'"),
        (lambda: grpo_advantages(torch.zeros(5), 2), "5 rows.*group_size=2"),
        (lambda: rank_flip_rate(torch.zeros(4), torch.zeros(6), 2), "advantages has 6 rows.*rewards has 4"),
        (lambda: overconfident_error_rate(torch.zeros(3), torch.zeros(3), 2), "3 rows.*group_size=2"),
        (lambda: scheduled_alpha(0.5, "cosine", 0, 10), "schedule='cosine'"),
    ],
)
def test_bad_input_raises_a_value_error_that_names_the_numbers(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- preference_scores ----------------------------------------------------------------------------


def test_rank_ties_share_their_mean_rank():
    confidence = torch.tensor([-1.0, -2.0, -2.0, -3.0, -0.1, -0.1, -0.1, NAN])
    # group 1: ascending ranks -3 -> 0, -2 -> (1 + 2) / 2, -1 -> 3, so p = 1 - k / 3.
    # group 2: three tied rows share rank 1 of {0, 1, 2}; the NaN row takes no part.
    want = torch.tensor([0.0, 0.5, 0.5, 1.0, 0.5, 0.5, 0.5, 0.5])
    assert torch.equal(preference_scores(confidence, 4, method="rank"), want)


def test_bt_scores_on_a_hand_computed_pair():
    # Two rows: z = -/+ (d/2) / (d / sqrt(2) + eps) ~ -/+ 1/sqrt(2), so p_low = sigmoid(sqrt(2) / tau).
    tau = 0.5
    p = preference_scores(torch.tensor([-3.0, -1.0]), 2, method="bt", tau=tau)
    expected = _sigmoid(math.sqrt(2) / tau)
    torch.testing.assert_close(p, torch.tensor([expected, 1 - expected]))


@PROPERTY
@given(batch=batches(max_group=10), method=st.sampled_from(METHODS), tau=st.floats(0.05, 20))
def test_scores_lie_in_unit_interval_with_group_mean_one_half(batch, method, tau):
    _, confidence, group_size = batch
    p = preference_scores(confidence, group_size, method=method, tau=tau)
    assert ((p >= 0) & (p <= 1)).all()
    for scores, conf in by_group(group_size, p, confidence):
        taking_part = [s for s, c in zip(scores, conf, strict=True) if math.isfinite(c)]
        if len(taking_part) >= 2:
            assert _mean(taking_part) == pytest.approx(0.5, abs=1e-6)
        assert all(
            s == 0.5
            for s, c in zip(scores, conf, strict=True)
            if not math.isfinite(c) or len(taking_part) < 2
        )


@PROPERTY
@given(batch=batches(), method=st.sampled_from(METHODS), tau=st.floats(0.05, 20))
def test_direction_high_is_one_minus_direction_low(batch, method, tau):
    _, confidence, group_size = batch
    low = preference_scores(confidence, group_size, method=method, tau=tau, direction="low")
    high = preference_scores(confidence, group_size, method=method, tau=tau, direction="high")
    torch.testing.assert_close(high, 1 - low, rtol=0, atol=1e-6)


# --- scheduled_alpha ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule, step, total_steps, expected",
    [
        ("constant", 0, 100, 0.4),
        ("constant", 100, 100, 0.4),
        ("linear", 0, 100, 0.4),
        ("linear", 25, 100, 0.3),
        ("linear", 100, 100, 0.0),
        ("linear", 150, 100, 0.0),
        ("linear", 7, 0, 0.4),  # unknown length: nothing to decay over
    ],
)
def test_scheduled_alpha(schedule, step, total_steps, expected):
    assert scheduled_alpha(0.4, schedule, step, total_steps) == pytest.approx(expected)


# --- diagnostics ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rewards, advantages, group_size, expected",
    [
        ([1.0, 0.0, 0.0, 1.0], [1.0, -1.0, -1.0, 1.0], 4, 0.0),
        ([1.0, 0.0], [-1.0, 1.0], 2, 1.0),
        ([1.0, 0.0], [0.0, 0.0], 2, 1.0),  # a tie where the rewards differ counts as a flip
        ([1.0, 0.0, 0.0, 0.0], [0.5, 0.6, -1.0, -1.0], 4, 1 / 3),
        ([1.0, 1.0, 0.0, 0.0], [0.9, -0.9, 0.1, -0.1], 4, 2 / 4),
        ([0.5, 0.5, 0.5, 0.5], [1.0, -1.0, 0.2, -0.2], 4, 0.0),  # equal rewards: no ordered pair
        ([1.0, NAN, 0.0, 0.0], [1.0, 5.0, -1.0, -1.0], 4, 0.0),  # the NaN row takes no part
        ([1.0, 0.0, 0.0, 1.0], [1.0, -1.0, 1.0, -1.0], 2, 1 / 2),  # pairs never cross groups
    ],
)
def test_rank_flip_rate_on_hand_made_cases(rewards, advantages, group_size, expected):
    rate = rank_flip_rate(torch.tensor(rewards), torch.tensor(advantages), group_size)
    assert rate == pytest.approx(expected)


@pytest.mark.parametrize(
    "confidence, correct, group_size, expected",
    [
        ([-0.1, -0.2, -0.3, -0.4], [0, 1, 1, 0], 4, 1 / 2),  # best right -0.2: -0.1 above it, -0.4 not
        ([-0.1, -0.2, -0.3, -0.4], [1, 1, 1, 1], 4, NAN),  # no wrong answer
        ([-0.1, -0.2, -0.3, -0.4], [0, 0, 0, 0], 4, NAN),  # all wrong: nothing to be overconfident against
        ([-1.0, -2.0, -3.0, -3.0], [0, 0, 0, 1], 2, 0.0),  # group 1 not mixed; group 2: tie is not above
        ([NAN, -1.0, -2.0, -3.0], [0, 0, 1, 1], 4, 1.0),  # no confidence: not counted
        ([-1.0, -2.0, -3.0, -4.0, -5.0], [0, 0, 0, 1, 0], 5, 3 / 4),  # three of four wrong ones above -4
    ],
)
def test_overconfident_error_rate_on_hand_made_cases(confidence, correct, group_size, expected):
    rate = overconfident_error_rate(torch.tensor(confidence), torch.tensor(correct), group_size)
    assert rate == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    "confidence, correct, group_size, expected",
    [
        ([-0.1, -0.2, -0.3, -0.4], [1, 0, 1, 0], 4, 3 / 4),  # pairs (r, w): (-.1,-.2) (-.1,-.4) (-.3,-.4) won
        ([-0.1, -0.2, -0.3, -0.4], [0, 0, 0, 0], 4, NAN),  # all wrong
        ([-0.5, -0.5, -1.0, -2.0], [1, 0, 0, 1], 2, 0.25),  # group 1 a tie (1/2), group 2 a lost pair (0)
    ],
)
def test_within_group_auroc_on_hand_made_cases(confidence, correct, group_size, expected):
    value = within_group_auroc(torch.tensor(confidence), torch.tensor(correct), group_size)
    assert value == pytest.approx(expected, nan_ok=True)


def test_within_group_auroc_weighs_each_mixed_group_once_and_skips_the_others():
    confidence = torch.tensor([-1.0, -2.0, -3.0, -1.0, -2.0, -3.0, -1.0, -2.0, -3.0])
    correct = torch.tensor(
        [1, 0, 0, 0, 0, 1, 0, 0, 0]
    )  # group 1: AUROC 1; group 2: AUROC 0; group 3: all wrong
    assert group_auroc(confidence, correct, 3).tolist()[:2] == [1.0, 0.0]
    assert math.isnan(group_auroc(confidence, correct, 3)[2])
    assert within_group_auroc(confidence, correct, 3) == pytest.approx(0.5)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_overconfidence_metrics_are_undefined_exactly_when_no_group_is_mixed(data):
    group_size = data.draw(st.integers(2, 6))
    groups = data.draw(st.integers(1, 5))
    confidence = torch.tensor(
        data.draw(st.lists(st.floats(-5, 0), min_size=group_size * groups, max_size=group_size * groups))
    )
    correct = torch.tensor(
        data.draw(st.lists(st.booleans(), min_size=group_size * groups, max_size=group_size * groups))
    )
    grid = correct.reshape(groups, group_size)
    any_mixed = bool((grid.any(dim=1) & (~grid).any(dim=1)).any())
    rate = overconfident_error_rate(confidence, correct, group_size)
    auc = within_group_auroc(confidence, correct, group_size)
    assert math.isnan(rate) == math.isnan(auc) == (not any_mixed)
    if any_mixed:
        assert 0.0 <= rate <= 1.0 and 0.0 <= auc <= 1.0
        # shifting every wrong answer far below every right one gives perfect separation, no overconfidence
        lowered = torch.where(correct, confidence, confidence - 100.0)
        assert overconfident_error_rate(lowered, correct, group_size) == 0.0
        assert within_group_auroc(lowered, correct, group_size) == 1.0


def test_group_outcome_shares_count_all_wrong_mixed_and_all_correct_groups():
    correct = torch.tensor([0, 0, 1, 0, 1, 1, 1, 0])
    assert group_outcome_shares(correct, 2) == {"all_wrong": 0.25, "mixed": 0.5, "all_correct": 0.25}
    unscored_wrong = torch.tensor([1, 1, 1, 0, 1, 1, 1, 1]).bool()  # row 3 (wrong) unscorable
    assert group_outcome_shares(correct, 2, unscored_wrong)["mixed"] == 0.25


def test_step_metrics_leave_unscorable_rows_out():
    rewards = torch.tensor([1.0, 0.0, NAN, 0.0])
    confidence = torch.tensor([-3.0, -1.0, -0.5, -2.0])
    metrics = step_metrics(rewards, confidence, torch.zeros(4), 4, alpha=0.5, correct_threshold=0.5)
    assert metrics["icpo/confidence_mean"] == pytest.approx(-2.0)
    assert metrics["icpo/overconfident_error_rate"] == 1.0  # both scored wrong answers beat the right one
    assert metrics["icpo/within_group_auroc"] == 0.0
    assert metrics["icpo/mixed_group_share"] == 1.0
    assert metrics["icpo/alpha"] == 0.5


# --- the worked example in docs/method.md ------------------------------------------------------------


def test_the_worked_example_in_the_method_doc():
    token_logps = torch.tensor(
        [[-0.1, -0.2, -0.3, 0.0], [-0.9, -1.2, -0.6, -0.9], [-0.05, -0.15, 0.0, 0.0], [-0.4, -0.8, 0.0, 0.0]]
    )
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]])
    confidence = sequence_confidence(token_logps, mask)
    mixed, all_wrong = torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.zeros(4)
    table = {
        "c": (confidence, [-0.2, -0.9, -0.1, -0.6]),
        "p bt": (preference_scores(confidence, 4), [0.3171, 0.8195, 0.2471, 0.6163]),
        "p rank": (preference_scores(confidence, 4, method="rank"), [1 / 3, 1.0, 0.0, 2 / 3]),
        "GRPO": (grpo_advantages(mixed, 4), [0.8659, 0.8659, -0.8659, -0.8659]),
        "reward bt": (
            icpo_advantages(mixed, confidence, 4, 0.5, combine="reward"),
            [0.6486, 1.0474, -0.9946, -0.7015],
        ),
        "reward rank": (
            icpo_advantages(mixed, confidence, 4, 0.5, method="rank", combine="reward"),
            [0.5947, 1.0705, -1.0705, -0.5947],
        ),
        "advantage bt": (
            icpo_advantages(mixed, confidence, 4, 0.5, combine="advantage"),
            [0.7744, 1.0256, -0.9923, -0.8077],
        ),
        "all wrong reward": (
            icpo_advantages(all_wrong, confidence, 4, 0.5, combine="reward"),
            [-0.6860, 1.1981, -0.9483, 0.4362],
        ),
        "all wrong advantage": (
            icpo_advantages(all_wrong, confidence, 4, 0.5, combine="advantage"),
            [-0.0915, 0.1598, -0.1265, 0.0582],
        ),
    }
    for row, (got, doc) in table.items():
        torch.testing.assert_close(
            got, torch.tensor(doc), rtol=0, atol=5e-5, msg=lambda m, row=row: f"{row}: {m}"
        )


def test_unlikeliness_is_he_fried_and_welleck_formula():
    """Their released code, one group at a time: r_i * (1 - beta * k_i / G), k_i the ascending rank of
    response i's mean token log-prob (0 = least likely), beta = 0.25, then GRPO's group normalisation with
    the Bessel std and eps 1e-6."""
    generator = torch.Generator().manual_seed(0)
    group_size, groups = 8, 6
    rewards = torch.randint(0, 2, (groups * group_size,), generator=generator).float()
    confidence = -torch.rand(groups * group_size, generator=generator) * 3  # distinct: no ties
    got = icpo_advantages(rewards, confidence, group_size, alpha=0.25, combine="unlikeliness", eps=1e-6)
    expected = []
    for r, c in by_group(group_size, rewards, confidence):
        order = sorted(range(group_size), key=lambda i: c[i])
        rank = {row: position for position, row in enumerate(order)}
        shaped = [r[i] * (1 - 0.25 * rank[i] / group_size) for i in range(group_size)]
        mean, std = float(np.mean(shaped)), float(np.std(shaped, ddof=1))
        expected += [(x - mean) / (std + 1e-6) for x in shaped]
    torch.testing.assert_close(got, torch.tensor(expected), atol=1e-5, rtol=1e-5)
    # It lifts the rare correct answer: among correct answers of a group the least likely gets the most.
    for r, c, a in by_group(group_size, rewards, confidence, got):
        correct = [i for i in range(group_size) if r[i] == 1]
        if 1 <= len(correct) < group_size:
            assert max(correct, key=lambda i: a[i]) == min(correct, key=lambda i: c[i])


def test_rewards_float32_cannot_square_keep_their_grpo_order():
    """Rewards of 1e20 overflowed float32's group variance: the GRPO part was 0 and the preference put a
    wrong answer above a right one. They are computed in float64 and returned in float32."""
    rewards = torch.tensor([1e20, 0.0, 1e20, 0.0])
    confidence = torch.tensor([-0.1, -2.0, -0.2, -3.0])  # the right answers are the confident ones
    for combine in COMBINES:
        advantages = icpo_advantages(rewards, confidence, 4, alpha=0.5, combine=combine)
        assert advantages.dtype == torch.float32, combine
        assert advantages[[0, 2]].min() > advantages[[1, 3]].max(), combine
    torch.testing.assert_close(
        grpo_advantages(rewards, 4), torch.tensor([0.866, -0.866, 0.866, -0.866]), atol=1e-3, rtol=0
    )


def test_float64_inputs_are_computed_in_float64():
    rewards = torch.tensor([1e8, 1e8 + 1, 1e8, 1e8 + 1], dtype=torch.float64)  # equal in float32
    advantages = grpo_advantages(rewards, 4)
    assert advantages.dtype == torch.float64
    torch.testing.assert_close(
        advantages, torch.tensor([-0.866, 0.866, -0.866, 0.866], dtype=torch.float64), atol=1e-3, rtol=0
    )
    confidence = torch.tensor([-1.0, -1.0 - 1e-12, -2.0, -2.0 - 1e-12], dtype=torch.float64)
    scores = preference_scores(confidence, 2, method="rank")
    assert scores.dtype == torch.float64 and scores.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert rank_flip_rate(rewards, -advantages, 4) == 1.0
