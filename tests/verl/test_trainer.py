"""The ``icpo`` trainer mode: verl's sync trainer whose advantage step reads the rows' log-probs from verl's
TransferQueue (real Ray actors) and hands them to the registered estimator."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip(
    "verl", reason="verl is not installed here; tests/verl runs in .venv-verl (`make test-verl`)"
)

import torch  # noqa: E402
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer  # noqa: E402
from verl.utils.tensordict_utils import list_of_dict_to_tensordict  # noqa: E402

from icpo.core import icpo_advantages, sequence_confidence  # noqa: E402
from icpo.verl import ICPOTrainerSync  # noqa: E402
from icpo.verl.recipe import compose_config  # noqa: E402

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "verl"


def test_runs_as_verls_sync_trainer():
    """verl branches on trainer_mode == "sync" (replay buffer, refills): the icpo mode must take those paths."""
    config = compose_config(RECIPES, "icpo_qwen2_5_7b_rlpr")
    trainer = ICPOTrainerSync(config)
    assert trainer.trainer_mode == "sync" == config.trainer.v1.trainer_mode
    assert type(trainer.replay_buffer) is ReplayBuffer


def test_refuses_to_run_another_estimator():
    config = compose_config(RECIPES, "grpo_qwen2_5_7b_rlpr", ["trainer.v1.trainer_mode=icpo"])
    with pytest.raises(ValueError, match="set algorithm.adv_estimator=icpo"):
        ICPOTrainerSync(config)


def test_advantage_step_through_the_transfer_queue_equals_core(ray_with_transfer_queue):
    tq = ray_with_transfer_queue
    generator = torch.Generator().manual_seed(0)
    group_size, rows, keys = 4, [], []
    for prompt in range(3):
        for sample in range(group_size):
            length = int(torch.randint(2, 7, (1,), generator=generator))
            response_mask = torch.ones(length, dtype=torch.int64)
            response_mask[length // 2] = 0  # a tool-output token inside the response (multi-turn)
            scores = torch.zeros(length)
            scores[-1] = float(torch.randint(0, 2, (1,), generator=generator))
            rows.append(
                {
                    "uid": f"prompt-{prompt}",
                    "response_mask": response_mask,
                    "rm_scores": scores,
                    "old_log_probs": -3.0 * torch.rand(length, generator=generator),
                }
            )
            keys.append(f"prompt-{prompt}_{sample}_0")  # verl's key format: {uid}_{session}_{output}
    batch = tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(rows))

    config = compose_config(RECIPES, "icpo_qwen2_5_7b_rlpr", ["algorithm.icpo.schedule=linear"])
    trainer = ICPOTrainerSync(config)
    trainer.global_steps, trainer.total_training_steps = 3, 4  # as fit() sets them: third of four steps
    metrics: dict = {}
    trainer._compute_advantage(batch, metrics=metrics)

    stored = tq.kv_batch_get(keys=keys, partition_id="train", select_fields=["advantages"])
    advantages = stored["advantages"].to_padded_tensor(0.0)
    padded = list_of_dict_to_tensordict(rows).to_padded_tensor()
    mask = padded["response_mask"]
    confidence = sequence_confidence(padded["old_log_probs"], mask)
    alpha = 0.5 * (1 - 2 / 4)  # linear schedule at 0-based step 2 of 4
    expected = icpo_advantages(padded["rm_scores"].sum(-1), confidence, group_size, alpha, eps=1e-6)
    torch.testing.assert_close(advantages, expected.unsqueeze(-1) * mask, rtol=0, atol=0)
    assert metrics["icpo/alpha"] == pytest.approx(alpha)
    assert metrics["icpo/confidence_mean"] == pytest.approx(confidence.mean().item())
    assert set(metrics) == {
        "icpo/alpha",
        "icpo/confidence_mean",
        "icpo/confidence_std",
        "icpo/rank_flip_rate",
        "icpo/overconfident_error_rate",
        "icpo/within_group_auroc",
        "icpo/mixed_group_share",
    }
