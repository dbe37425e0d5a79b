"""tests/verl run against the real verl package, which lives in its own virtual environment (.venv-verl).

In the main environment (no verl) every module here skips itself with ``pytest.importorskip``. With
``ICPO_REQUIRE_VERL=1`` (set by ``make test-verl``) a missing verl is an error instead, so CI cannot pass
by skipping this suite.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

import pytest

VERL_MISSING = importlib.util.find_spec("verl") is None

if VERL_MISSING and os.environ.get("ICPO_REQUIRE_VERL") == "1":
    raise pytest.UsageError(
        "ICPO_REQUIRE_VERL=1 but verl is not importable from this interpreter; run `make test-verl`, which builds "
        ".venv-verl from constraints-verl.txt."
    )

# verl's engine registry warns once per missing optional backend (megatron, torchtitan, ...) on import.
warnings.filterwarnings("ignore", message=r".* engine is not available", category=UserWarning)


@pytest.fixture(scope="session")
def ray_with_transfer_queue():
    """A local Ray cluster with verl's TransferQueue running on it, as verl's TaskRunner sets up.

    4 logical CPUs (not cores): TransferQueue's controller and storage actors hold two of them.
    """
    import ray
    import transfer_queue as tq
    from omegaconf import OmegaConf

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
    yield tq
    tq.close()
    ray.shutdown()
