"""``icpo train`` as a user meets it: its help lists the recipe keys, it says where it writes, and a
service the run cannot reach (a logging backend not installed, the Hub offline) is one line before any
model is loaded or any folder created."""

from __future__ import annotations

import contextlib
import importlib.util

import pytest

import icpo.cli
from icpo.recipe import RECIPE_KEY_HELP
from tests.conftest import REPO_ROOT

ADDITION = REPO_ROOT / "recipes" / "addition_icpo.yaml"


def test_train_help_lists_every_recipe_key_and_where_output_dir_is(capsys):
    with contextlib.suppress(SystemExit):
        icpo.cli.main(["train", "--help"])
    text = capsys.readouterr().out
    for key in RECIPE_KEY_HELP:
        assert f"\n  {key}: " in text, key
    assert "relative to the current folder" in text and "absolute path is printed" in text


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--report_to", "[wandb]"], "report_to ['wandb'] is not installed here (pip install wandb)"),
        (["--push_to_hub", "true"], "push_to_hub needs the Hub, and HF_HUB_OFFLINE is set"),
    ],
)
def test_an_unreachable_service_is_one_line_before_any_work(
    icpo_fails, tmp_path, monkeypatch, override, message
):
    if "wandb" in message and importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here; the check is for a backend that is missing")
    monkeypatch.chdir(tmp_path)
    assert message in icpo_fails("train", "--config", str(ADDITION), *override)
    assert not (tmp_path / "runs").exists(), "nothing may be created before the check"


@pytest.mark.slow
def test_train_says_where_it_wrote(tmp_path, tiny_policy, monkeypatch, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"model: {tiny_policy}\ndataset: {tmp_path / 'rows.jsonl'}\nreward_funcs: [math_reward]\n"
        "output_dir: out\nmax_steps: 1\nper_device_train_batch_size: 4\nnum_generations: 4\n"
        "max_completion_length: 4\nsave_strategy: 'no'\nreport_to: []\nuse_cpu: true\nbf16: false\n"
    )
    (tmp_path / "rows.jsonl").write_text(
        "".join(f'{{"prompt": "{i}+1=", "answer": "{i + 1}"}}\n' for i in range(4))
    )
    monkeypatch.chdir(tmp_path)
    assert icpo.cli.main(["train", "--config", str(recipe)]) == 0
    err = capsys.readouterr().err
    assert f"icpo train: the policy and metrics.jsonl are in {tmp_path / 'out'}" in err
    assert (tmp_path / "out" / "metrics.jsonl").is_file()
