"""Run under `accelerate launch --num_processes 2`: two ICPO steps (max_steps=2) whose groups span both processes.

Writes, per step, the gathered rewards and confidences and the advantages each process trained on
(gathered in process order) to the JSON file named by argv[3]. Used by tests/test_trl.py.
"""

from __future__ import annotations

import json
import sys

from icpo.core import sequence_confidence
from icpo.trl import ICPOConfig, ICPOTrainer
from tests.trl_setup import config_kwargs, length_reward, prompt_dataset, summed_rewards


def main(model_dir: str, output_dir: str, dump_path: str) -> None:
    # 4 rows per process and groups of 8: every group is split across the two processes.
    args = ICPOConfig(
        **config_kwargs(
            output_dir, icpo_alpha=0.5, per_device_train_batch_size=4, num_generations=8, max_steps=2
        )
    )
    trainer = ICPOTrainer(
        model=model_dir, reward_funcs=[length_reward], args=args, train_dataset=prompt_dataset()
    )
    steps = []
    score = trainer._generate_and_score_completions

    def recording(inputs):
        batch = score(inputs)
        rewards = summed_rewards(trainer._gathered_rewards_per_func)
        # The trainer took its confidences from generation; the reference recomputes them with a forward pass.
        local = sequence_confidence(trainer._policy_logps(batch), batch["completion_mask"])
        confidence = trainer.accelerator.gather(local)
        steps.append(
            {
                "rewards": rewards.tolist(),
                "confidence": confidence.tolist(),
                "advantages": trainer.accelerator.gather(batch["advantages"]).tolist(),
            }
        )
        return batch

    trainer._generate_and_score_completions = recording
    trainer.train()
    if trainer.accelerator.is_main_process:
        with open(dump_path, "w") as handle:
            json.dump(steps, handle, allow_nan=True)
    trainer.accelerator.end_training()  # as `icpo train` does: no live gloo group at interpreter exit


if __name__ == "__main__":
    main(*sys.argv[1:4])
