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


def _python_block_after(heading: str) -> str:
    section = README[README.index(heading) :]
    return section[
        section.index("```python\n") + len("```python\n") : section.index("\n```", section.index("```python"))
    ]


@pytest.mark.slow
def test_the_readme_python_example_runs_on_cpu_offline(tiny_policy, tmp_path, monkeypatch):
    """The README's GRPO-to-ICPO block as written, with only the two hub names replaced by local stand-ins
    (the tiny policy; a folder laid out like openai/gsm8k, config main) and the run cut to two steps."""
    import json

    import datasets

    repository = tmp_path / "gsm8k"
    (repository / "main").mkdir(parents=True)
    rows = [
        {"question": f"{a}+{b}=", "answer": f"{a} + {b} = {a + b}\n#### {a + b}"}
        for a in range(4)
        for b in range(4)
    ]
    (repository / "main" / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (repository / "README.md").write_text(
        "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n    path: main/train.jsonl\n---\n"
    )
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    code = _python_block_after("## Switching a GRPO script to ICPO")
    replacements = {
        '"openai/gsm8k"': repr(str(repository)),
        '"Qwen/Qwen2.5-1.5B-Instruct"': repr(str(tiny_policy)),
        'output_dir="qwen-icpo",': 'output_dir="qwen-icpo", max_steps=2, max_completion_length=8, '
        'per_device_train_batch_size=8, report_to=[], save_strategy="no",',
    }
    for old, new in replacements.items():
        assert code.count(old) == 1, f"the README example no longer contains {old}"
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    history = namespace["trainer"].state.log_history
    assert namespace["trainer"].state.global_step == 2 and any(
        "rewards/number_reward/mean" in e for e in history
    )
