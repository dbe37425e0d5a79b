"""The prepared GPU check (benchmarks/gpu_check.py) runs end to end at tiny sizes on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_the_gpu_check_dry_run_writes_every_figure(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["dry_run"] and report["device"] == "cpu" and report["parameters"] > 0
    assert set(report["trainer"]["median_step_seconds"]) == {"grpo", "icpo"}
    assert report["trainer"]["runs"]["icpo"]["sources"] == ["generation"]  # recorded: no extra forward pass
    assert all(seconds > 0 for seconds in report["icpo_advantages_seconds"].values())
    assert report["generation"]["tokens_per_second"] > 0
