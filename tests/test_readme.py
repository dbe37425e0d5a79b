"""What the README promises about the TRL engine matches the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from trl import GRPOTrainer

from icpo.trl import ICPOConfig, ICPOTrainer

README = (Path(__file__).parents[1] / "README.md").read_text()
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}


def test_readme_names_every_trl_method_the_trainer_overrides():
    overridden = sorted(
        name
        for name, value in vars(ICPOTrainer).items()
        if callable(value) and not name.startswith("__") and hasattr(GRPOTrainer, name)
    )
    said = re.search(r"overrides (\w+) TRL methods? \(([^)]*)", README)
    assert said, "the README no longer says which TRL methods ICPOTrainer overrides"
    assert said.group(1) == NUMBERS[len(overridden)], overridden
    assert sorted(re.findall(r"`(\w+)`", said.group(2))) == overridden


def test_readme_names_the_one_grpo_option_icpo_refuses():
    assert "every GRPOConfig option works" not in README
    assert (
        "except\n`multi_objective_aggregation`" in README or "except `multi_objective_aggregation`" in README
    )
    with pytest.raises(ValueError, match="sum_then_normalize"):
        ICPOConfig(output_dir="unused", use_cpu=True, multi_objective_aggregation="normalize_then_sum")
