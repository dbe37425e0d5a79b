"""ICPO for verl 0.9.x: a plugin, not a fork (install next to verl: docs/scale.md).

Installing icpo registers the entry point ``icpo = "icpo.verl"`` in verl's ``verl.plugins`` group;
``import verl`` loads it in every process (the driver, the TaskRunner and every Ray worker), and loading it
registers two names with verl:

- advantage estimator ``icpo`` (:mod:`icpo.verl.estimator`), selected with ``algorithm.adv_estimator=icpo``;
- V1 trainer mode ``icpo`` (:mod:`icpo.verl.trainer`), selected with ``trainer.v1.trainer_mode=icpo``: verl's
  synchronous trainer that hands the estimator the old-policy log-probs and the step, which verl 0.9.1
  does not pass to estimators itself.

A run selects both and sets the ICPO options under ``algorithm.icpo``::

    python -m verl.trainer.main_ppo ... algorithm.adv_estimator=icpo trainer.v1.trainer_mode=icpo \\
        +algorithm.icpo.alpha=0.5 +algorithm.icpo.method=bt

verl swallows exceptions raised while loading a plugin (it logs them at debug level), so a broken install
shows up later as "Unknown advantage estimator simply: icpo"; ``python -c "import icpo.verl"`` shows the
real error. ``recipes/verl/`` holds a complete configuration.
"""

# Importing the two modules registers their names with verl (the estimator first: it needs less of verl).
from icpo.verl.estimator import (
    ESTIMATOR_NAME,
    ICPOSettings,
    compute_icpo_outcome_advantage,
    icpo_step,
    supply,
)
from icpo.verl.trainer import TRAINER_MODE, ICPOTrainerSync

__all__ = [
    "ESTIMATOR_NAME",
    "TRAINER_MODE",
    "ICPOSettings",
    "ICPOTrainerSync",
    "compute_icpo_outcome_advantage",
    "icpo_step",
    "supply",
]
