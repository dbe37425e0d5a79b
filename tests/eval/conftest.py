"""The real benchmark folder for the evaluation tests: ``$ICPO_BENCHMARKS_DIR`` when set (a checkout
without ../shared beside it), else ``../shared/benchmarks`` beside the repository (the CI layout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_BENCHMARKS = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"


@pytest.fixture(scope="session")
def benchmarks_path() -> Path:
    path = Path(os.environ.get("ICPO_BENCHMARKS_DIR", SHARED_BENCHMARKS))
    if not (path / "math500.jsonl").exists():
        pytest.skip(f"real benchmark files not found at {path} (../shared/benchmarks beside the repo)")
    return path
