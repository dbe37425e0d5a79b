"""icpo reaches verl only through verl's plugin entry points: ``import verl`` in a fresh process, and in a
Ray worker, registers the ``icpo`` estimator and trainer mode without anything importing icpo."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip(
    "verl", reason="verl is not installed here; tests/verl runs in .venv-verl (`make test-verl`)"
)


PROBE = """
import json, sys
import verl
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY
print(json.dumps({
    "estimator": "icpo" in ADV_ESTIMATOR_REGISTRY,
    "trainer_mode": "icpo" in TRAINER_REGISTRY,
    "loaded_by": [name for name in sys.modules if name.startswith("icpo")],
}))
"""


def probe_fresh_interpreter(plugins_policy: str) -> dict:
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": plugins_policy, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_verl_loads_the_plugin_through_its_entry_point():
    loaded = probe_fresh_interpreter("auto")
    assert loaded["estimator"] and loaded["trainer_mode"]
    assert "icpo.verl" in loaded["loaded_by"]


def test_without_verls_plugin_loading_nothing_is_registered():
    """The control: the registration above came from the entry point, not from verl itself."""
    loaded = probe_fresh_interpreter("none")
    assert not loaded["estimator"] and not loaded["trainer_mode"]
    assert loaded["loaded_by"] == []


def test_ray_workers_register_icpo_on_import(ray_with_transfer_queue):
    import ray

    @ray.remote
    def registered_in_worker() -> tuple[bool, bool, int]:
        import verl  # noqa: F401  (the plugin loads here, inside the worker process)
        from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
        from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

        return "icpo" in ADV_ESTIMATOR_REGISTRY, "icpo" in TRAINER_REGISTRY, os.getpid()

    estimator, trainer_mode, worker_pid = ray.get(registered_in_worker.remote(), timeout=120)
    assert estimator and trainer_mode
    assert worker_pid != os.getpid()
