"""Compose and validate a verl recipe without GPUs, Ray or a model download.

    python -m icpo.verl.recipe recipes/verl icpo_qwen2_5_7b_rlpr trainer.nnodes=4

runs the checks ``verl.trainer.main_ppo`` runs before it starts Ray, on the same composed config:

1. Hydra composition of verl's ``ppo_trainer`` config, the recipe and the overrides;
2. ``verl.utils.config.validate_config`` (batch sizes against GPU counts, micro-batch options, the actor's
   typed config ``ActorConfig`` and its ``validate``);

and three checks verl does not make:

3. every key the composed config holds exists in verl's own ``ppo_trainer`` config, apart from
   ``algorithm.icpo``: Hydra merges a misspelt key from a recipe file silently and verl then ignores it;
4. ``algorithm.adv_estimator`` and ``trainer.v1.trainer_mode`` are registered names, and the ``icpo``
   estimator runs under the ``icpo`` trainer mode (the only one that supplies its log-probs);
5. ``algorithm.icpo`` holds valid ICPO options (``ICPOSettings``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import verl
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.trainer.ppo.v1 import get_trainer_cls
from verl.utils.config import validate_config

from icpo.verl.estimator import CONFIG_KEY, ESTIMATOR_NAME, ICPOSettings
from icpo.verl.trainer import TRAINER_MODE

VERL_CONFIG_DIR = Path(verl.__file__).parent / "trainer" / "config"
ICPO_KEY_PATH = f"algorithm.{CONFIG_KEY}"


def compose_config(config_dir: str | Path, config_name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The config verl's ``main_ppo --config-path config_dir --config-name config_name overrides`` would run."""
    with initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None):
        return compose(config_name=config_name, overrides=list(overrides))


def _key_paths(node: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _key_paths(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip(".")


def unknown_keys(config: DictConfig) -> list[str]:
    """Keys of ``config`` that verl's ``ppo_trainer`` config does not have (``algorithm.icpo`` excepted)."""
    reference = set(_key_paths(OmegaConf.to_container(compose_config(VERL_CONFIG_DIR, "ppo_trainer"))))
    return sorted(
        path
        for path in _key_paths(OmegaConf.to_container(config))
        if path not in reference and not (path + ".").startswith(ICPO_KEY_PATH + ".") and path != "hydra"
    )


def validate_recipe(config: DictConfig) -> None:
    """Raise ValueError, or verl's own AssertionError / Hydra InstantiationException, naming the first problem."""
    validate_config(
        config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config)
    )

    misspelt = unknown_keys(config)
    if misspelt:
        raise ValueError(f"keys that verl 0.9.1 does not know (misspelt? verl would ignore them): {misspelt}")

    estimator, mode = config.algorithm.adv_estimator, config.trainer.v1.trainer_mode
    if estimator not in ADV_ESTIMATOR_REGISTRY:
        raise ValueError(f"algorithm.adv_estimator={estimator!r} is not registered with verl.")
    get_trainer_cls(mode)  # raises ValueError listing the registered modes
    if (estimator == ESTIMATOR_NAME) != (mode == TRAINER_MODE):
        raise ValueError(
            f"algorithm.adv_estimator={estimator!r} with trainer.v1.trainer_mode={mode!r}: ICPO needs both set to "
            f"'{ESTIMATOR_NAME}' (the trainer mode supplies the log-probs the estimator needs)."
        )
    if estimator == ESTIMATOR_NAME:
        ICPOSettings.from_algorithm_config(config.algorithm)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m icpo.verl.recipe", description=__doc__.split("\n")[0])
    parser.add_argument("config_dir", help="the recipe folder, e.g. recipes/verl")
    parser.add_argument("config_name", help="the recipe, e.g. icpo_qwen2_5_7b_rlpr")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as given to verl.trainer.main_ppo")
    args = parser.parse_args(argv)
    config = compose_config(args.config_dir, args.config_name, args.overrides)
    try:
        validate_recipe(config)
    except (AssertionError, ValueError, InstantiationException) as error:
        print(f"{args.config_name}: INVALID: {error}", file=sys.stderr)
        return 1
    gpus = config.trainer.nnodes * config.trainer.n_gpus_per_node
    print(
        f"{args.config_name}: valid for verl {verl.__version__}: adv_estimator={config.algorithm.adv_estimator}, "
        f"trainer_mode={config.trainer.v1.trainer_mode}, {config.trainer.nnodes} node(s) x "
        f"{config.trainer.n_gpus_per_node} GPUs = {gpus}, {config.data.train_batch_size} prompts x "
        f"{config.actor_rollout_ref.rollout.n} rollouts per step."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
