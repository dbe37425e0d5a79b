"""The registered ``icpo`` estimator, driven through verl's own advantage step with a real ``DataProto``.

References: ``icpo.core`` on the same tensors, and verl's built-in GRPO estimator (alpha = 0).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip(
    "verl", reason="verl is not installed here; tests/verl runs in .venv-verl (`make test-verl`)"
)

import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.config import AlgoConfig  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage  # noqa: E402
from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories  # noqa: E402

from icpo.core import (  # noqa: E402
    icpo_advantages,
    sequence_confidence,
    step_metrics,
)
from icpo.verl import ICPOSettings, compute_icpo_outcome_advantage, supply  # noqa: E402
from icpo.verl.estimator import icpo_step  # noqa: E402
from tests import engine_batch  # noqa: E402

TOKENS = 6
VERL_EPS = 1e-6


def make_batch(group_sizes: list[int], seed: int, shuffle: bool, binary_rewards: bool = True) -> DataProto:
    """A verl batch: groups of responses (uid per prompt), outcome reward on each response's last token."""
    generator = torch.Generator().manual_seed(seed)
    uids = np.array([f"prompt-{g}" for g, size in enumerate(group_sizes) for _ in range(size)], dtype=object)
    rows = len(uids)
    lengths = torch.randint(1, TOKENS + 1, (rows,), generator=generator)
    mask = (torch.arange(TOKENS).unsqueeze(0) < lengths.unsqueeze(1)).float()
    if binary_rewards:
        outcome = torch.randint(0, 2, (rows,), generator=generator).float()
    else:
        outcome = torch.rand(rows, generator=generator)
    token_rewards = torch.zeros(rows, TOKENS)
    token_rewards[torch.arange(rows), lengths - 1] = outcome
    old_log_probs = -3.0 * torch.rand(rows, TOKENS, generator=generator)
    order = torch.randperm(rows, generator=generator) if shuffle else torch.arange(rows)
    return DataProto.from_dict(
        tensors={
            "token_level_rewards": token_rewards[order],
            "response_mask": mask[order],
            "old_log_probs": old_log_probs[order],
        },
        non_tensors={"uid": uids[order.numpy()]},
    )


def algorithm_config(norm_adv_by_std: bool = True, **icpo_options) -> OmegaConf:
    return OmegaConf.create(
        {"adv_estimator": "icpo", "norm_adv_by_std_in_grpo": norm_adv_by_std, "icpo": icpo_options}
    )


def confidence_of(batch: DataProto) -> torch.Tensor:
    return sequence_confidence(batch.batch["old_log_probs"], batch.batch["response_mask"])


def verl_icpo(batch: DataProto, config, step: int = 0, total_steps: int = 0):
    """verl's advantage step with adv_estimator=icpo, inputs supplied as the icpo trainer mode does."""
    with supply(confidence_of(batch), step=step, total_steps=total_steps) as record:
        out = compute_advantage(
            batch, adv_estimator="icpo", norm_adv_by_std_in_grpo=config.norm_adv_by_std_in_grpo, config=config
        )
    return out, record.metrics


options = st.fixed_dictionaries(
    {
        "alpha": st.sampled_from([0.0, 0.3, 0.5, 1.0, 2.0]),
        "method": st.sampled_from(["bt", "rank"]),
        "tau": st.sampled_from([0.5, 1.0, 2.0]),
        "combine": st.sampled_from(["reward", "advantage"]),
        "direction": st.sampled_from(["low", "high"]),
    }
)


@settings(max_examples=40, deadline=None)
@given(
    groups=st.integers(1, 4),
    group_size=st.integers(2, 6),
    icpo=options,
    norm=st.booleans(),
    binary=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_registered_icpo_equals_core_on_the_same_tensors(groups, group_size, icpo, norm, binary, seed):
    batch = make_batch([group_size] * groups, seed, shuffle=False, binary_rewards=binary)
    config = algorithm_config(norm, **icpo)
    rewards = batch.batch["token_level_rewards"].sum(-1)
    mask = batch.batch["response_mask"]
    expected = icpo_advantages(
        rewards, confidence_of(batch), group_size, eps=VERL_EPS, scale="group" if norm else "none", **icpo
    )

    out, _ = verl_icpo(batch, config)

    assert torch.equal(out.batch["advantages"], expected.unsqueeze(-1) * mask)
    assert torch.equal(out.batch["returns"], out.batch["advantages"])


@settings(max_examples=40, deadline=None)
@given(
    group_sizes=st.lists(st.integers(2, 7), min_size=1, max_size=5),
    norm=st.booleans(),
    binary=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_alpha_zero_equals_verls_grpo_estimator(group_sizes, norm, binary, seed):
    """Rows shuffled and groups of different sizes, as verl may hand them over."""
    config = algorithm_config(norm, alpha=0.0)
    icpo, _ = verl_icpo(make_batch(group_sizes, seed, shuffle=True, binary_rewards=binary), config)
    grpo = compute_advantage(
        make_batch(group_sizes, seed, shuffle=True, binary_rewards=binary),
        adv_estimator="grpo",
        norm_adv_by_std_in_grpo=norm,
        config=config,
    )
    torch.testing.assert_close(icpo.batch["advantages"], grpo.batch["advantages"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(icpo.batch["returns"], grpo.batch["returns"], rtol=1e-5, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(
    group_sizes=st.lists(st.integers(2, 7), min_size=2, max_size=5), icpo=options, seed=st.integers(0, 10_000)
)
def test_shuffled_uneven_groups_equal_core_group_by_group(group_sizes, icpo, seed):
    batch = make_batch(group_sizes, seed, shuffle=True)
    out, _ = verl_icpo(batch, algorithm_config(**icpo))

    uids = batch.non_tensor_batch["uid"]
    rewards = batch.batch["token_level_rewards"].sum(-1)
    confidence = confidence_of(batch)
    first_token = out.batch["advantages"][:, 0]  # every response has at least one token
    for uid in set(uids):
        rows = torch.from_numpy(np.flatnonzero(uids == uid))
        expected = icpo_advantages(rewards[rows], confidence[rows], len(rows), eps=VERL_EPS, **icpo)
        torch.testing.assert_close(first_token[rows], expected, rtol=1e-5, atol=1e-6)


def test_single_response_group_gets_zero_advantage():
    batch = make_batch([4, 1, 3], seed=3, shuffle=True)
    out, _ = verl_icpo(batch, algorithm_config(alpha=0.5))
    alone = np.flatnonzero(batch.non_tensor_batch["uid"] == "prompt-1")
    assert torch.count_nonzero(out.batch["advantages"][alone]) == 0


def test_v1_trainer_advantage_path_matches():
    """verl's V1 trainer calls compute_advantage_for_multi_trajectories, which must reach the estimator too."""
    config = algorithm_config(alpha=0.7, method="rank")
    direct, _ = verl_icpo(make_batch([3, 5, 4], seed=11, shuffle=True), config)
    batch = make_batch([3, 5, 4], seed=11, shuffle=True)
    keys = [f"{uid}_0_{row}" for row, uid in enumerate(batch.non_tensor_batch["uid"])]
    with supply(confidence_of(batch), step=0, total_steps=0):
        via_v1 = compute_advantage_for_multi_trajectories(
            batch, batch_keys=keys, adv_estimator="icpo", norm_adv_by_std_in_grpo=True, config=config
        )
    assert torch.equal(via_v1.batch["advantages"], direct.batch["advantages"])


def test_metrics_are_the_core_step_metrics_under_the_trl_names():
    group_size = 4
    batch = make_batch([group_size] * 5, seed=5, shuffle=False)
    out, metrics = verl_icpo(batch, algorithm_config(alpha=0.5, correct_threshold=0.5))

    rewards = batch.batch["token_level_rewards"].sum(-1)
    advantages = out.batch["advantages"][:, 0]
    expected = step_metrics(rewards, confidence_of(batch), advantages, group_size, 0.5, 0.5)
    assert metrics == pytest.approx(expected, nan_ok=True)


def test_an_unscorable_row_is_left_out_of_the_metrics_as_in_the_trl_engine():
    rewards, confidence = torch.tensor(engine_batch.REWARDS), torch.tensor(engine_batch.CONFIDENCE)
    _, metrics = icpo_step(
        rewards,
        confidence,
        ["q"] * engine_batch.GROUP_SIZE,
        ICPOSettings(alpha=engine_batch.ALPHA),
        norm_adv_by_std=True,
        step=0,
        total_steps=0,
    )
    assert {k: metrics[k] for k in engine_batch.EXPECTED_METRICS} == pytest.approx(
        engine_batch.EXPECTED_METRICS
    )


def test_linear_schedule_uses_the_supplied_step():
    batch = make_batch([4, 4], seed=8, shuffle=False)
    out, metrics = verl_icpo(batch, algorithm_config(alpha=0.8, schedule="linear"), step=3, total_steps=4)
    assert metrics["icpo/alpha"] == pytest.approx(0.2)
    expected = icpo_advantages(
        batch.batch["token_level_rewards"].sum(-1), confidence_of(batch), 4, 0.2, eps=VERL_EPS
    )
    assert torch.equal(out.batch["advantages"][:, 0], expected)


def test_direct_call_with_old_log_probs_equals_supplied_confidence():
    batch = make_batch([3, 3, 3], seed=2, shuffle=True)
    config = algorithm_config(alpha=1.0)
    supplied, _ = verl_icpo(batch, config)
    direct, returns = compute_icpo_outcome_advantage(
        batch.batch["token_level_rewards"],
        batch.batch["response_mask"],
        index=batch.non_tensor_batch["uid"],
        config=config,
        old_log_probs=batch.batch["old_log_probs"],
    )
    assert torch.equal(direct, supplied.batch["advantages"])
    assert returns is direct


def test_without_log_probs_the_error_names_the_trainer_mode():
    with pytest.raises(ValueError, match="trainer.v1.trainer_mode=icpo"):
        compute_advantage(
            make_batch([2, 2], seed=0, shuffle=False), adv_estimator="icpo", config=algorithm_config()
        )


def test_confidence_for_another_batch_is_rejected():
    batch = make_batch([2, 2], seed=0, shuffle=False)
    with (
        supply(torch.zeros(3), step=0, total_steps=0),
        pytest.raises(ValueError, match="one entry per response"),
    ):
        compute_advantage(batch, adv_estimator="icpo", config=algorithm_config())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"alpah": 0.5}, r"unknown option\(s\) \['alpah'\]"),
        ({"method": "elo"}, "algorithm.icpo.method='elo' is not supported"),
        ({"combine": "sum"}, "algorithm.icpo.combine='sum' is not supported"),
        ({"alpha": -1.0}, "alpha must be a finite number >= 0"),
        ({"tau": 0.0}, "tau must be a finite number > 0"),
        ({"alpha": True}, "algorithm.icpo.alpha must be a finite number >= 0, got True"),
        ({"correct_threshold": "abc"}, "algorithm.icpo.correct_threshold must be a finite number, got 'abc'"),
    ],
)
def test_bad_options_are_reported_with_their_config_path(options, message):
    with pytest.raises(ValueError, match=message):
        ICPOSettings.from_algorithm_config(algorithm_config(**options))


def test_settings_default_when_the_algorithm_config_has_no_icpo_key():
    """verl's typed AlgoConfig has no ``icpo`` field: the defaults (those of icpo.trl.ICPOConfig) apply."""
    assert ICPOSettings.from_algorithm_config(AlgoConfig(adv_estimator="icpo")) == ICPOSettings()
    assert ICPOSettings() == ICPOSettings(
        alpha=0.5, schedule="constant", method="bt", tau=1.0, combine="advantage", direction="low"
    )
