"""Shared fixtures for the evaluation tests: the real benchmark folder and a tiny local policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[2]


def benchmark_dir() -> Path:
    """``$ICPO_BENCHMARKS_DIR`` when set, else ``../shared/benchmarks`` beside the repository (CI layout)."""
    return Path(os.environ.get("ICPO_BENCHMARKS_DIR", REPO_ROOT.parent / "shared" / "benchmarks"))


@pytest.fixture(scope="session")
def benchmarks_path() -> Path:
    path = benchmark_dir()
    if not (path / "math500.jsonl").exists():
        pytest.skip(f"real benchmark files not found at {path} (CI clones the repo with ../shared beside it)")
    return path


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    from icpo.tiny import build_tiny_policy

    return build_tiny_policy(tmp_path_factory.mktemp("tiny-policy"))
