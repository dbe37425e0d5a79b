"""recipes/verl composes and validates with verl's own config machinery (Hydra + validate_config + typed
configs), for one node and several, and the GRPO baseline differs from the ICPO run only in the estimator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip(
    "verl", reason="verl is not installed here; tests/verl runs in .venv-verl (`make test-verl`)"
)

from hydra.errors import InstantiationException  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from icpo.verl import ICPOSettings  # noqa: E402
from icpo.verl.recipe import compose_config, unknown_keys, validate_recipe  # noqa: E402

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "verl"
ICPO, GRPO = "icpo_qwen2_5_7b_rlpr", "grpo_qwen2_5_7b_rlpr"


@pytest.mark.parametrize("recipe", [ICPO, GRPO])
@pytest.mark.parametrize("nodes", [1, 4])
def test_recipe_validates_on_one_node_and_several(recipe, nodes):
    config = compose_config(RECIPES, recipe, [f"trainer.nnodes={nodes}"])
    validate_recipe(config)
    assert config.trainer.nnodes * config.trainer.n_gpus_per_node == 8 * nodes
    assert config.actor_rollout_ref.rollout.n == 8
    assert config.actor_rollout_ref.model.path == "Qwen/Qwen2.5-7B"
    assert config.data.train_files.endswith("rlpr_train.parquet")


def flat(config) -> dict[str, object]:
    return {
        path: value
        for path, value in _walk(OmegaConf.to_container(config, resolve=False))  # interpolations kept as text
    }


def _walk(node, prefix=""):
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _walk(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), node


def test_grpo_baseline_differs_only_in_the_estimator():
    icpo, grpo = flat(compose_config(RECIPES, ICPO)), flat(compose_config(RECIPES, GRPO))
    differing = {path for path in icpo.keys() | grpo.keys() if icpo.get(path) != grpo.get(path)}
    assert {path for path in differing if not path.startswith("algorithm.icpo.")} == {
        "algorithm.adv_estimator",
        "trainer.v1.trainer_mode",
        "trainer.experiment_name",
    }
    assert (icpo["algorithm.adv_estimator"], grpo["algorithm.adv_estimator"]) == ("icpo", "grpo")
    assert (icpo["trainer.v1.trainer_mode"], grpo["trainer.v1.trainer_mode"]) == ("icpo", "sync")


def test_icpo_options_are_the_documented_defaults():
    config = compose_config(RECIPES, ICPO)
    assert ICPOSettings.from_algorithm_config(config.algorithm) == ICPOSettings()


def test_a_misspelt_key_is_reported():
    config = compose_config(RECIPES, ICPO, ["+data.train_batch_sise=512"])
    assert unknown_keys(config) == ["data.train_batch_sise"]
    with pytest.raises(ValueError, match="data.train_batch_sise"):
        validate_recipe(config)


def test_verls_typed_configs_reject_unknown_actor_options():
    with pytest.raises(InstantiationException, match="clip_ratio_hgh"):
        validate_recipe(compose_config(RECIPES, ICPO, ["+actor_rollout_ref.actor.clip_ratio_hgh=0.3"]))


def test_icpo_estimator_without_its_trainer_mode_is_refused():
    with pytest.raises(ValueError, match="ICPO needs both set to 'icpo'"):
        validate_recipe(compose_config(RECIPES, ICPO, ["trainer.v1.trainer_mode=sync"]))


def test_verls_own_checks_run():
    """Without dynamic batching verl's validate_config demands micro-batch sizes the recipe does not set."""
    with pytest.raises((AssertionError, ValueError, InstantiationException), match="micro_batch_size"):
        validate_recipe(compose_config(RECIPES, ICPO, ["actor_rollout_ref.actor.use_dynamic_bsz=false"]))


def test_launch_script_check_runs_the_validation():
    env = {**os.environ, "PYTHON": sys.executable, "NNODES": "2", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [str(RECIPES / "launch.sh"), "check", "icpo"], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "valid for verl 0.9.1" in done.stdout
    assert "2 node(s) x 8 GPUs = 16" in done.stdout
