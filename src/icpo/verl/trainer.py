"""The ``icpo`` trainer mode for verl's V1 trainer: ``trainer.v1.trainer_mode=icpo``.

verl 0.9.1 calls registered advantage estimators with rewards, response mask, uid and the algorithm
config only, so the ``icpo`` estimator cannot see the old-policy log-probs it needs. This mode is verl's
synchronous trainer (``PPOTrainerSync``) with one addition around its advantage step:

1. read ``old_log_probs`` and ``response_mask`` of the step's rows from verl's TransferQueue (the same rows,
   in the same order, that verl's own advantage step reads next);
2. c_i = ``icpo.core.sequence_confidence(old_log_probs, response_mask)``;
3. run verl's advantage step unchanged inside ``icpo.verl.estimator.supply(c, step, total_steps)``, so the
   registered ``icpo`` estimator finds them;
4. add the estimator's ``icpo/*`` metrics to the step's metric dict (logged by verl's trackers).

``step`` is ``global_steps - 1`` (verl counts steps from 1; the linear alpha schedule starts at full alpha)
and ``total_steps`` is verl's ``total_training_steps``.

verl branches on ``trainer_mode == "sync"`` in several places (replay buffer, refill); this class sets
``config.trainer.v1.trainer_mode`` back to ``sync`` before verl's constructor reads it, so all of those
take the synchronous path, exactly as for ``trainer_mode=sync``.
"""

from __future__ import annotations

import transfer_queue as tq
from omegaconf import DictConfig
from transfer_queue import KVBatchMeta
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync

from icpo.core import sequence_confidence
from icpo.verl.estimator import ESTIMATOR_NAME, supply

TRAINER_MODE = "icpo"
BASE_TRAINER_MODE = "sync"


@register_trainer(TRAINER_MODE)
class ICPOTrainerSync(PPOTrainerSync):
    """verl's synchronous PPO trainer that supplies the ``icpo`` advantage estimator with its inputs."""

    def __init__(self, config: DictConfig):
        estimator = config.algorithm.adv_estimator
        if estimator != ESTIMATOR_NAME:
            raise ValueError(
                f"trainer.v1.trainer_mode={TRAINER_MODE} runs ICPO but algorithm.adv_estimator={estimator!r}; "
                f"set algorithm.adv_estimator={ESTIMATOR_NAME}, or trainer.v1.trainer_mode={BASE_TRAINER_MODE} "
                "to train without ICPO."
            )
        config.trainer.v1.trainer_mode = BASE_TRAINER_MODE
        super().__init__(config)

    def _compute_advantage(self, batch: KVBatchMeta, metrics: dict) -> KVBatchMeta:
        fields = tq.kv_batch_get(
            keys=batch.keys, partition_id=batch.partition_id, select_fields=["old_log_probs", "response_mask"]
        ).to_padded_tensor()
        confidence = sequence_confidence(fields["old_log_probs"], fields["response_mask"])
        with supply(confidence, step=self.global_steps - 1, total_steps=self.total_training_steps) as record:
            batch = super()._compute_advantage(batch, metrics=metrics)
        metrics.update(record.metrics)
        return batch
