"""One home for the ICPO options: ``icpo.core.ICPOOptions`` drives the TRL config, the study's variants
and the ``demo``/``compare`` flags, and every entry point refuses a bad value with a message naming it."""

from __future__ import annotations

import argparse
import math
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

import icpo.core
from icpo.core import (
    METHODS,
    OPTION_CHOICES,
    OPTION_NAMES,
    ICPOOptions,
    grpo_advantages,
    icpo_advantages,
    overconfident_error_rate,
    preference_scores,
    rank_flip_rate,
    sequence_confidence,
    step_metrics,
)
from icpo.study.methods import METHODS as STUDY_METHODS
from icpo.study.methods import options_method
from icpo.trl import CONFIG_FIELDS, ICPOConfig


def study_parser() -> argparse.ArgumentParser:
    from icpo.cli import build_parser

    return build_parser()


def config(**options) -> ICPOConfig:
    return ICPOConfig(output_dir="unused", use_cpu=True, bf16=False, report_to="none", **options)


def test_the_trl_config_and_the_variants_carry_every_option_with_its_default_and_help():
    config_fields = {f.name: f for f in fields(ICPOConfig)}
    for option in fields(ICPOOptions):
        declared = config_fields[CONFIG_FIELDS[option.name]]
        assert declared.default == option.default and declared.metadata["help"] == option.metadata["help"]
    options = ICPOOptions(
        alpha=0.3, method="rank", combine="reward", schedule="linear", correct_threshold=0.9
    )
    method = options_method(options)
    assert method.name == "icpo-a0.3-rank-t1-reward-low-linear" and method.trainer == {}
    config = ICPOConfig(**method.config_kwargs(), output_dir="unused", use_cpu=True)
    assert config.icpo_options == options
    assert options_method(ICPOOptions()).name == "icpo-a0.5-bt-t1-advantage-low"
    assert options_method(ICPOOptions(alpha=0.0)) is STUDY_METHODS["grpo"]


def test_the_cli_flags_are_the_options_with_their_choices_and_defaults():
    args = study_parser().parse_args(["compare"])
    assert {name: getattr(args, name) for name in OPTION_NAMES} == {
        option.name: option.default for option in fields(ICPOOptions)
    }
    compare = study_parser()._subparsers._group_actions[0].choices["compare"]
    flags = {action.dest: action for action in compare._actions}
    for name, choices in OPTION_CHOICES.items():
        assert tuple(flags[name].choices) == choices
    assert "(default: bt)" in compare.format_help()


def test_a_new_choice_in_core_reaches_the_cli_and_every_config(monkeypatch):
    """Adding a preference method is one edit in core: its Literal type (here: the derived choice table)."""
    assert OPTION_CHOICES["method"] == METHODS
    with pytest.raises(ValueError, match="icpo_method='third' is not supported"):
        config(icpo_method="third")
    with pytest.raises(SystemExit):
        study_parser().parse_args(["compare", "--method", "third"])

    monkeypatch.setitem(icpo.core.OPTION_CHOICES, "method", (*METHODS, "third"))
    assert config(icpo_method="third").icpo_options.method == "third"
    assert study_parser().parse_args(["compare", "--method", "third"]).method == "third"
    ICPOOptions(method="third").validate()
    assert options_method(ICPOOptions(method="third")).name == "icpo-a0.5-third-t1-advantage-low"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"icpo_correct_threshold": "abc"}, "icpo_correct_threshold must be a finite number, got 'abc'"),
        ({"icpo_correct_threshold": math.nan}, "icpo_correct_threshold must be a finite number, got nan"),
        ({"icpo_alpha": True}, "icpo_alpha must be a finite number >= 0, got True"),
        ({"icpo_tau": "1"}, "icpo_tau must be a finite number > 0, got '1'"),
        ({"icpo_method": ["bt"]}, r"icpo_method=\['bt'\] is not supported"),
    ],
)
def test_the_trl_config_refuses_values_of_the_wrong_kind(options, message):
    with pytest.raises(ValueError, match=message):
        config(**options)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: icpo_advantages(torch.zeros(4), torch.zeros(4), 2, alpha=True), "alpha.*got True"),
        (lambda: preference_scores(torch.zeros(4), 2, tau="1"), "tau must be a finite number > 0, got '1'"),
        (lambda: preference_scores(torch.zeros(4), 2, method=None), "method=None is not supported"),
    ],
)
def test_core_functions_refuse_values_of_the_wrong_kind(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_core_functions_take_lists_and_numpy_arrays_as_tensors():
    rewards = [1.0, 0.0, math.nan, 0.0, 1.0, 1.0, 0.0, 0.0]
    confidence = np.array([-0.5, -0.1, -1.0, -2.0, -0.3, -0.9, -0.2, -0.4], dtype=np.float32)
    tensors = torch.tensor(rewards), torch.from_numpy(confidence)
    want = icpo_advantages(*tensors, 4, 0.5)
    assert torch.equal(icpo_advantages(rewards, confidence, 4, 0.5), want)
    assert torch.equal(preference_scores(list(confidence), 4), preference_scores(tensors[1], 4))
    assert torch.equal(grpo_advantages(rewards, 4), grpo_advantages(tensors[0], 4))
    assert rank_flip_rate(rewards, want.numpy(), 4) == rank_flip_rate(tensors[0], want, 4)
    correct = [r == 1.0 for r in rewards]
    assert overconfident_error_rate(confidence, correct, 4) == overconfident_error_rate(
        tensors[1], torch.tensor(correct), 4
    )
    assert step_metrics(rewards, confidence, want.tolist(), 4, 0.5, 0.5) == pytest.approx(
        step_metrics(*tensors, want, 4, 0.5, 0.5), nan_ok=True
    )
    logps = [[-0.5, -1.0], [-2.0, 0.0]]
    assert torch.equal(sequence_confidence(logps, [[1, 1], [1, 0]]), torch.tensor([-0.75, -2.0]))


def test_core_functions_name_an_argument_that_is_not_numbers():
    with pytest.raises(
        TypeError, match="rewards must be a tensor, a numpy array or a list of numbers, got list"
    ):
        icpo_advantages(["a", "b"], [0.0, 0.0], 2, 0.5)


@pytest.mark.parametrize(
    "recipe", sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml")), ids=lambda p: p.name
)
def test_shipped_recipes_keep_the_measured_defaults_besides_alpha(recipe):
    """The study chose the defaults (docs/results.md); a recipe must not bring back a rejected option."""
    import yaml

    keys = yaml.safe_load(recipe.read_text())
    for name, config_field in CONFIG_FIELDS.items():
        if name != "alpha" and config_field in keys:
            assert keys[config_field] == getattr(ICPOOptions, name), f"{recipe.name}: {config_field}"
