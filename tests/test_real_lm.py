"""ICPO on a real pretrained LM: SmolLM2-135M-Instruct (the model preset) on real word problems with the
number reward. Two ICPO steps log finite losses and the icpo/ metrics; at icpo_alpha=0 a step equals TRL's
GRPOTrainer's. Kept cheap: 2 prompts x 4 samples, 12 new tokens, only the top 2 of 30 layers trained."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM
from trl import GRPOConfig, GRPOTrainer

from icpo import models
from icpo.rewards import completion_text, number_reward
from icpo.trl import ICPOConfig, ICPOTrainer
from icpo.wordproblems import chat_rows, load_word_problems
from tests.test_trl import losses, record_steps
from tests.trl_setup import config_kwargs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2() -> str:
    try:
        models.check_preset_available("smollm2-135m-instruct")
    except ValueError as missing:
        pytest.skip(f"SmolLM2 preset unavailable: {missing}")
    return models.resolve_model("smollm2-135m-instruct")


@pytest.fixture(scope="module")
def word_problems(shared_benchmarks) -> Dataset:
    return Dataset.from_list(chat_rows(load_word_problems(["mawps"], shared_benchmarks)[:2]))


def digit_reward(completions, **_) -> list[float]:
    """1 when the (chat) completion holds a digit: a varied signal beside the sparse number reward."""
    return [float(any(ch.isdigit() for ch in completion_text(c))) for c in completions]


def trainer(cls, config_cls, model_dir: str, dataset: Dataset, output_dir, **overrides):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    models.train_only_top_layers(model, 2)
    cheap = dict(
        per_device_train_batch_size=8, num_generations=4, max_completion_length=12, learning_rate=1e-5
    )
    settings = config_kwargs(output_dir, **{**cheap, "max_steps": 1, "beta": 0.0, **overrides})
    # digit_reward beside the number reward: a varied signal, so that equality below is not 0 == 0
    return cls(
        model=model,
        reward_funcs=[number_reward, digit_reward],
        args=config_cls(**settings),
        train_dataset=dataset,
    )


def test_two_icpo_steps_on_smollm2_log_finite_losses_and_icpo_metrics(smollm2, word_problems, tmp_path):
    icpo = trainer(
        ICPOTrainer, ICPOConfig, smollm2, word_problems, tmp_path / "icpo", max_steps=2, icpo_alpha=0.5
    )
    icpo.train()
    logged = [entry for entry in icpo.state.log_history if "loss" in entry]
    assert len(logged) == 2 and all(math.isfinite(entry["loss"]) for entry in logged)
    for entry in logged:
        assert entry["icpo/alpha"] == pytest.approx(0.5) and math.isfinite(entry["icpo/confidence_mean"])
        assert entry["icpo/confidence_mean"] < 0 and 0.0 <= entry["icpo/rank_flip_rate"] <= 1.0
        assert "rewards/number_reward/mean" in entry


def test_alpha_zero_step_equals_trl_grpo_on_smollm2(smollm2, word_problems, tmp_path):
    grpo = trainer(GRPOTrainer, GRPOConfig, smollm2, word_problems, tmp_path / "grpo")
    grpo_steps = record_steps(grpo)
    grpo.train()
    icpo = trainer(ICPOTrainer, ICPOConfig, smollm2, word_problems, tmp_path / "icpo", icpo_alpha=0.0)
    icpo_steps = record_steps(icpo)
    icpo.train()

    assert torch.equal(grpo_steps[0]["advantages"], icpo_steps[0]["advantages"])
    assert grpo_steps[0]["advantages"].abs().sum() > 0, "the step must carry a learning signal"
    assert losses(grpo) == losses(icpo)
    trained = {n: p for n, p in icpo.model.named_parameters() if p.requires_grad}
    for name, parameter in grpo.model.named_parameters():
        if parameter.requires_grad:
            assert torch.equal(parameter, trained[name]), name
