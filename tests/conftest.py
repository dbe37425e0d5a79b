"""Shared fixtures. Every test runs offline: nothing may reach a model or dataset hub."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_BENCHMARKS = REPO_ROOT.parent / "shared" / "benchmarks"


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory) -> Path:
    """A randomly initialised tiny Llama policy with a character tokenizer, as a Hugging Face folder."""
    from icpo.tiny import build_tiny_policy

    return build_tiny_policy(tmp_path_factory.mktemp("tiny-policy"), seed=0, hidden_size=32, num_layers=2)


@pytest.fixture(scope="session")
def shared_benchmarks() -> Path:
    """The real benchmark files: ``$ICPO_BENCHMARKS_DIR`` when set (a checkout without ../shared beside it),
    else ``../shared/benchmarks`` beside the repository (the CI layout); the test skips when absent."""
    path = Path(os.environ.get("ICPO_BENCHMARKS_DIR", SHARED_BENCHMARKS))
    if not (path / "math500.jsonl").exists():
        pytest.skip(f"real benchmark files not found at {path} (../shared/benchmarks beside the repo)")
    return path


@pytest.fixture
def icpo_fails(capsys):
    """Run ``icpo ARGS`` in this process; assert exit status 2 and exactly one stderr line; return it."""
    import icpo.cli

    def run(*args: str) -> str:
        capsys.readouterr()
        try:
            status = icpo.cli.main(list(args))
        except SystemExit as exit:  # a usage error found by the argument parser
            status = exit.code
        assert status == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines  # one clear line, no traceback
        return lines[0]

    return run
