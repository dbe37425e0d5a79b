"""ICPOTrainer against TRL itself: equivalence at alpha = 0, agreement with icpo.core at alpha > 0,
multi-process groups, and checkpoint/resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from icpo.core import icpo_advantages, sequence_confidence
from icpo.trl import ICPOConfig, ICPOTrainer
from tests.trl_setup import (
    config_kwargs,
    digit_reward,
    launch_two_processes,
    length_reward,
    prompt_dataset,
    summed_rewards,
)

pytestmark = pytest.mark.slow


def record_steps(trainer: GRPOTrainer, with_confidence: bool = False) -> list[dict[str, torch.Tensor]]:
    """Wrap the trainer's scoring step and keep, per generation batch, what it returned.

    With ``with_confidence`` it also recomputes each row's confidence with a plain forward pass of the model
    (no TRL code involved), as an independent reference.
    """
    steps: list[dict[str, torch.Tensor]] = []
    score = trainer._generate_and_score_completions

    def recording(inputs):
        batch = score(inputs)
        step = {"advantages": batch["advantages"].clone()}
        if with_confidence:
            step["rewards_per_func"] = trainer._gathered_rewards_per_func.clone()
            step["confidence"] = independent_confidence(trainer.model, batch, trainer.args.temperature)
        steps.append(step)
        return batch

    trainer._generate_and_score_completions = recording
    return steps


@torch.no_grad()
def independent_confidence(model, batch, temperature: float) -> torch.Tensor:
    completion_ids = batch["completion_ids"]
    input_ids = torch.cat([batch["prompt_ids"], completion_ids], dim=1)
    attention_mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    logits = logits[:, -completion_ids.size(1) - 1 : -1].float() / temperature
    token_logps = logits.log_softmax(dim=-1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    return sequence_confidence(token_logps, batch["completion_mask"])


def losses(trainer: GRPOTrainer) -> list[float]:
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


@pytest.mark.parametrize("generation_logps", [True, False], ids=["recorded-logps", "no-free-logps"])
def test_alpha_zero_reproduces_trl_grpo_bit_for_bit(tiny_policy, tmp_path, monkeypatch, generation_logps):
    """Same seed, same data: TRL's GRPOTrainer and ICPOTrainer(icpo_alpha=0) give identical advantages and
    losses over three steps, unscorable (None) rewards included; and alpha = 0 never costs a forward pass,
    even where generation gives no log-probs."""
    grpo = GRPOTrainer(
        model=str(tiny_policy),
        reward_funcs=[length_reward],
        args=GRPOConfig(**config_kwargs(tmp_path / "grpo")),
        train_dataset=prompt_dataset(),
    )
    grpo_steps = record_steps(grpo)
    grpo.train()

    icpo = ICPOTrainer(
        model=str(tiny_policy),
        reward_funcs=[length_reward],
        args=ICPOConfig(**config_kwargs(tmp_path / "icpo", icpo_alpha=0.0)),
        train_dataset=prompt_dataset(),
    )
    if not generation_logps:
        monkeypatch.setattr(icpo, "_can_record_generation_logps", lambda: False)
    monkeypatch.setattr(icpo, "_policy_logps", lambda batch: pytest.fail("alpha = 0 ran a forward pass"))
    icpo_steps = record_steps(icpo)
    icpo.train()

    assert len(grpo_steps) == len(icpo_steps) == 3
    for grpo_step, icpo_step in zip(grpo_steps, icpo_steps, strict=True):
        assert torch.equal(grpo_step["advantages"], icpo_step["advantages"])
    assert any(step["advantages"].abs().sum() > 0 for step in grpo_steps), "the run must produce a signal"
    assert losses(grpo) == losses(icpo)
    confidence_means = [e["icpo/confidence_mean"] for e in icpo.state.log_history if "icpo/alpha" in e]
    assert len(confidence_means) == 3
    # NaN is logged as None: with no free log-probs, alpha = 0 computes no confidence at all
    assert all((c is not None and math.isfinite(c)) == generation_logps for c in confidence_means)


@pytest.mark.parametrize(
    ("steps_per_generation", "confidence_source"),
    [(1, "generation"), (1, "forward"), (2, "TRL's old_per_token_logps")],
)
def test_alpha_positive_equals_core_on_the_same_rewards_and_logps(
    tiny_policy, tmp_path, monkeypatch, steps_per_generation, confidence_source
):
    args = ICPOConfig(
        **config_kwargs(
            tmp_path,
            icpo_alpha=0.7,
            icpo_method="rank",
            icpo_combine="advantage",
            max_steps=2 * steps_per_generation,
            steps_per_generation=steps_per_generation,
            per_device_train_batch_size=8 // steps_per_generation,
        )
    )
    trainer = ICPOTrainer(
        model=str(tiny_policy),
        reward_funcs=[digit_reward, length_reward],
        args=args,
        train_dataset=prompt_dataset(),
    )
    if confidence_source == "forward":  # as on a generation path that records nothing (e.g. paged)
        monkeypatch.setattr(trainer, "_can_record_generation_logps", lambda: False)
    extra_passes = []
    policy_logps = trainer._policy_logps
    trainer._policy_logps = lambda batch: extra_passes.append(1) or policy_logps(batch)
    steps = record_steps(trainer, with_confidence=True)
    trainer.train()

    assert len(steps) == 2
    assert len(extra_passes) == (2 if confidence_source == "forward" else 0)
    assert trainer._logged_sources == {confidence_source}
    for step in steps:
        rewards = summed_rewards(step["rewards_per_func"])
        expected = icpo_advantages(
            rewards, step["confidence"], 4, alpha=0.7, method="rank", combine="advantage", scale="group"
        )
        torch.testing.assert_close(step["advantages"], expected, atol=1e-5, rtol=1e-5)
    table_advantages = torch.tensor(list(trainer._logs["advantages"]))
    torch.testing.assert_close(table_advantages, steps[-1]["advantages"], atol=1e-6, rtol=0)
    logged = [entry for entry in trainer.state.log_history if "icpo/alpha" in entry]
    assert logged and all(entry["icpo/alpha"] == pytest.approx(0.7) for entry in logged)
    assert all(0.0 <= entry["icpo/rank_flip_rate"] <= 1.0 for entry in logged)


class StopAfterFirstCheckpoint(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        control.should_training_stop = True


def test_checkpoint_resume_matches_uninterrupted_run(tiny_policy, tmp_path):
    """A run stopped after a checkpoint and resumed ends with the same weights as an uninterrupted run,
    with a linear alpha schedule whose value depends on the restored step."""

    def make_trainer(output_dir: Path, max_steps: int = 4) -> ICPOTrainer:
        args = ICPOConfig(
            **config_kwargs(
                output_dir,
                icpo_alpha=0.8,
                icpo_alpha_schedule="linear",
                max_steps=max_steps,
                save_strategy="steps",
                save_steps=2,
            )
        )
        return ICPOTrainer(
            model=str(tiny_policy), reward_funcs=[digit_reward], args=args, train_dataset=prompt_dataset()
        )

    full = make_trainer(tmp_path / "full")
    full.train()

    interrupted = make_trainer(tmp_path / "resumed")
    interrupted.add_callback(StopAfterFirstCheckpoint())  # as a kill right after checkpoint-2 would
    interrupted.train()
    assert interrupted.state.global_step == 2
    assert (tmp_path / "resumed" / "checkpoint-2").is_dir()
    resumed = make_trainer(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-2"))

    for (name, expected), (_, actual) in zip(
        full.model.named_parameters(), resumed.model.named_parameters(), strict=True
    ):
        torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5, msg=f"parameter {name} differs")
    full_alphas = [e["icpo/alpha"] for e in full.state.log_history if "icpo/alpha" in e]
    resumed_alphas = [e["icpo/alpha"] for e in resumed.state.log_history if "icpo/alpha" in e]
    assert full_alphas == pytest.approx([0.8, 0.6, 0.4, 0.2])
    assert resumed_alphas[-2:] == pytest.approx(full_alphas[-2:])


def test_groups_spanning_two_processes(tiny_policy, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` on CPU (gloo): a group of 8 is split across both processes; the
    advantages the processes train on, put together, equal icpo.core on the whole gathered batch."""
    script = Path(__file__).with_name("multiprocess_advantages.py")
    dump = tmp_path / "steps.json"
    result = launch_two_processes(str(script), str(tiny_policy), str(tmp_path / "run"), str(dump))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    steps = json.loads(dump.read_text())
    assert len(steps) == 2
    for step in steps:
        rewards = torch.tensor(step["rewards"])
        confidence = torch.tensor(step["confidence"])
        trained = torch.tensor(step["advantages"])  # rank 0's slice, then rank 1's
        assert (
            rewards.numel() == confidence.numel() == trained.numel() == 8
        )  # one group of 8: 4 rows per process
        expected = icpo_advantages(rewards, confidence, 8, alpha=0.5)  # the trainer's defaults
        torch.testing.assert_close(trained, expected, atol=1e-6, rtol=1e-6)
        # A per-process computation (groups of 8 cut into halves) would disagree.
        assert not torch.allclose(trained[:4], icpo_advantages(rewards[:4], confidence[:4], 4, alpha=0.5))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"icpo_method": "elo"}, "icpo_method='elo' is not supported"),
        ({"icpo_combine": "sum"}, "icpo_combine='sum' is not supported"),
        ({"icpo_alpha_schedule": "cosine"}, "icpo_alpha_schedule='cosine' is not supported"),
        ({"icpo_alpha": -1.0}, "icpo_alpha must be a finite number >= 0"),
        ({"icpo_tau": 0.0}, "icpo_tau must be a finite number > 0"),
        ({"multi_objective_aggregation": "normalize_then_sum"}, "sum_then_normalize"),
        ({"icpo_sampler": "fast"}, "icpo_sampler must be one of trl, static, got 'fast'"),
        ({"icpo_sampler": "static", "min_p": 0.1}, r"icpo_sampler='static' supports .* got min_p=0.1\."),
        ({"icpo_sampler": "static", "repetition_penalty": 1.2}, "got repetition_penalty=1.2"),
    ],
)
def test_config_rejects_bad_options_with_a_clear_message(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        ICPOConfig(**config_kwargs(tmp_path, **overrides))


def test_trainer_requires_icpo_config(tiny_policy, tmp_path):
    with pytest.raises(TypeError, match="ICPOConfig"):
        ICPOTrainer(
            model=str(tiny_policy),
            reward_funcs=[digit_reward],
            args=GRPOConfig(**config_kwargs(tmp_path)),
            train_dataset=prompt_dataset(),
        )


@pytest.fixture(scope="module")
def eos_prone_policy(tiny_policy, tmp_path_factory) -> Path:
    """The tiny policy with its EOS logit raised where the final hidden state aligns with the norm's gain, so
    that some completions end early and others run to the length limit."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_policy)
    tokenizer = AutoTokenizer.from_pretrained(tiny_policy)
    with torch.no_grad():
        model.lm_head.weight[tokenizer.eos_token_id] += 0.3 * model.model.norm.weight
    path = tmp_path_factory.mktemp("eos-prone-policy")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize(
    "sampling",
    [
        {"temperature": 0.7, "top_k": 20, "top_p": 0.9, "repetition_penalty": 1.3},
        {"temperature": 1.6, "min_p": 0.05},
        {"temperature": 0.7, "top_k": 20, "top_p": 0.9, "icpo_sampler": "static"},
        {"temperature": 1.3, "icpo_sampler": "static"},
    ],
    ids=["T0.7-topk-topp-penalty", "T1.6-minp", "static-T0.7-topk-topp", "static-T1.3"],
)
def test_log_probs_recorded_during_generation_equal_the_forward_pass(eos_prone_policy, tmp_path, sampling):
    """On-policy, the confidences come from the generation TRL runs (no forward pass) and equal, token by
    token, TRL's own scoring forward pass: the policy at the training temperature, whatever top-k/top-p,
    min-p or penalty shaped the sampling; with left-padded prompts of different lengths and completions
    that end with EOS before the length limit. The same holds when icpo.static_sampler generates."""
    prompts = ["1+2=", "12+345=", "7=", "100+2000="] * 4
    args = ICPOConfig(
        **config_kwargs(tmp_path, icpo_alpha=0.5, max_steps=3, max_completion_length=16, **sampling)
    )
    trainer = ICPOTrainer(
        model=str(eos_prone_policy),
        reward_funcs=[digit_reward],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
    )
    compared = []
    token_logps = trainer._token_logps
    forward = trainer._policy_logps
    trainer._policy_logps = lambda batch: pytest.fail("on-policy ICPO ran an extra forward pass")

    def compare(batch, alpha):
        recorded, source = token_logps(batch, alpha)
        assert source == "generation"
        mask = batch["completion_mask"].bool()
        reference = forward(batch)
        assert recorded.shape == reference.shape
        torch.testing.assert_close(recorded[mask], reference[mask], atol=2e-5, rtol=1e-5)
        assert (recorded[~mask] == 0).all()
        compared.append((batch["completion_mask"].sum(1), (batch["prompt_mask"] == 0).sum(1)))
        return recorded, source

    trainer._token_logps = compare
    trainer.train()

    assert len(compared) == 3
    lengths = torch.cat([length for length, _ in compared])
    left_padding = torch.cat([padding for _, padding in compared])
    assert (lengths < 16).any() and (lengths == 16).any(), "need completions ending early and at the limit"
    assert (left_padding > 0).any()


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (lambda n: ["1.0"] * n, r"reward function 'text_reward' returned str '1.0' for completion 0"),
        (lambda n: None, r"reward function 'text_reward' returned NoneType None"),
        (lambda n: [[1.0]] * n, r"reward function 'text_reward' returned list \[1.0\] for completion 0"),
    ],
)
def test_a_reward_function_returning_the_wrong_type_is_named(tiny_policy, tmp_path, returned, message):
    def text_reward(completions, **_):
        return returned(len(completions))

    trainer = ICPOTrainer(
        model=str(tiny_policy),
        reward_funcs=[digit_reward, text_reward],
        args=ICPOConfig(**config_kwargs(tmp_path, max_steps=1)),
        train_dataset=prompt_dataset(),
    )
    with pytest.raises(TypeError, match=message):
        trainer.train()


def test_the_logged_metrics_leave_an_unscorable_row_out_as_in_the_verl_engine():
    """The same batch tests/verl feeds to verl's estimator (tests/engine_batch.py) gives the same metrics here."""
    from collections import defaultdict, deque
    from types import SimpleNamespace

    from tests import engine_batch

    rewards, confidence = torch.tensor(engine_batch.REWARDS), torch.tensor(engine_batch.CONFIDENCE)
    advantages = icpo_advantages(rewards, confidence, engine_batch.GROUP_SIZE, alpha=engine_batch.ALPHA)
    trainer = SimpleNamespace(
        args=ICPOConfig(output_dir="unused", use_cpu=True, bf16=False),
        _metrics={"train": defaultdict(list)},
        _logs={"advantages": deque(maxlen=8), "extra": defaultdict(list)},
    )
    ICPOTrainer._log_icpo_step(trainer, "train", rewards, confidence, advantages, engine_batch.ALPHA, 4)
    logged = {name: values[-1] for name, values in trainer._metrics["train"].items()}
    assert {k: logged[k] for k in engine_batch.EXPECTED_METRICS} == pytest.approx(
        engine_batch.EXPECTED_METRICS
    )


def test_undefined_metrics_reach_no_logging_backend(tiny_policy, tmp_path):
    """A constant reward makes every group all-equal, so the confidence metrics are undefined (None) at every
    step: the backends (and any user callback) never see a None, while log_history keeps it."""

    class Seen(TrainerCallback):
        def __init__(self):
            self.logs: list[dict] = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.logs.append(dict(logs))

    def constant_reward(completions, **_):
        return [1.0] * len(completions)

    trainer = ICPOTrainer(
        model=str(tiny_policy),
        reward_funcs=[constant_reward],
        args=ICPOConfig(**config_kwargs(tmp_path, max_steps=2)),
        train_dataset=prompt_dataset(),
        callbacks=[seen_by_user := Seen()],
    )
    trainer.train()
    step_logs = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert len(step_logs) == 2 and all(entry["icpo/within_group_auroc"] is None for entry in step_logs)
    seen = [entry for entry in seen_by_user.logs if "reward" in entry]
    assert len(seen) == 2 and all(None not in entry.values() for entry in seen)
    assert all("icpo/within_group_auroc" not in entry and "icpo/confidence_mean" in entry for entry in seen)


def test_a_default_config_warns_nothing_and_keeps_trls_checkpointing_default(tmp_path):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = ICPOConfig(**config_kwargs(tmp_path))
        reference = GRPOConfig(**config_kwargs(tmp_path))
    grpo_warnings = [w for w in caught if issubclass(w.category, FutureWarning)]
    assert len(grpo_warnings) == 1 and "gradient_checkpointing" in str(grpo_warnings[0].message)  # TRL's own
    assert (config.activation_checkpointing, config.gradient_checkpointing) == (
        reference.activation_checkpointing,
        reference.gradient_checkpointing,
    )
    with pytest.warns(FutureWarning, match="gradient_checkpointing"):  # the old name: warned and obeyed
        assert (
            ICPOConfig(**config_kwargs(tmp_path), gradient_checkpointing=False).activation_checkpointing
            is False
        )


def test_the_model_card_names_icpo_and_cites_its_paper(tiny_policy, tmp_path):
    trainer = ICPOTrainer(
        model=str(tiny_policy),
        reward_funcs=digit_reward,
        args=ICPOConfig(**config_kwargs(tmp_path)),
        train_dataset=prompt_dataset(),
    )
    trainer.create_model_card(model_name="my-policy")
    card = (tmp_path / "README.md").read_text()
    assert "trained with ICPO, a method introduced in" in card and "papers/2511.21005" in card
    assert "Intrinsic Confidence-Driven Group Relative Preference Optimization" in card
    assert "trained with GRPO" not in card and "- icpo" in card
