"""benchmarks/study_grid.py --report: the claim table and the grid report from finished runs, for the
full grid and for a narrowed one (its own cells, methods and report name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from icpo.core import ICPOOptions
from icpo.study.engine import run_folder_name
from icpo.study.methods import METHODS, Method, options_method
from icpo.study.rl_run import StudySettings

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "study_grid.py"
GRPO = METHODS["grpo"]
DEFAULT = options_method(ICPOOptions(alpha=0.5, combine="advantage"))
FALLBACK = options_method(ICPOOptions(alpha=0.5, combine="fallback"))


def finished_run(out: Path, variant: Method, settings: StudySettings, seed: int, accuracy: float) -> None:
    """A result.json as ``icpo.study.rl_run.run_rl`` writes it, reduced to what the report reads."""
    folder = out / "runs" / run_folder_name(variant, settings, seed)
    folder.mkdir(parents=True)
    start = settings.start_accuracy
    result = {
        "variant": variant.name,
        "variant_options": asdict(variant.options),
        "trainer": variant.trainer,
        "seed": seed,
        "settings": asdict(settings),
        "history": [{"step": 1, "entropy": 1.0}],
        "eval_curve": [{"step": 0, "accuracy": start}, {"step": 15, "accuracy": accuracy}],
        "final": {"greedy_accuracy": accuracy, "avg_at_32": accuracy, "mixed_group_share": 0.5},
        "warm_start": {"heldout_accuracy": start},
    }
    (folder / "result.json").write_text(json.dumps(result))


def report(out: Path, docs: Path, *flags: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(SCRIPT), "--out", str(out), "--report", "--docs", str(docs), *flags]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_narrowed_grid_reports_only_its_cells_and_methods_under_its_own_name(tmp_path):
    out, docs = tmp_path / "grid", tmp_path / "docs"
    long_sparse = StudySettings(avg_k=32, start_accuracy=0.1, reward_noise=0.0, steps=600)
    for seed in range(3):
        finished_run(out, GRPO, long_sparse, seed, 0.2)
        finished_run(out, FALLBACK, long_sparse, seed, 0.3 + 0.01 * seed)
        finished_run(out, DEFAULT, long_sparse, seed, 0.2)  # a method not asked for: left out
    flags = ["--steps", "600", "--starts", "0.1", "--noises", "0", "--methods", "fallback", "--seeds", "3"]
    report(out, docs, *flags, "--name", "results-long", "--curves")
    assert (docs / "results-long-start0.1-noise0-accuracy.png").read_bytes()[:4] == b"\x89PNG"

    text = (docs / "results-long.md").read_text()
    assert (docs / "results-long-accuracy.png").exists() and not (docs / "results-grid.md").exists()
    # Claims, cell by cell: the sparse cell, fallback +0.110 on greedy accuracy with its t-interval.
    assert "| sparse rewards: helps where groups carry no signal | greedy_accuracy | 0.1 | 0 | 3 |" in text
    assert "| 0.1 | 0 | 3 | 0.200 | +0.110 [+0.085, +0.135] |" in text
    assert "Δ advantage" not in text
    (cell,) = json.loads((docs / "results-long.json").read_text())["cells"]
    assert cell["seeds"] == [0, 1, 2] and set(cell["vs_baseline"]) == {"fallback"}

    # The claim table reads the grid's report: named after the file, GRPO's own gain 0.2 - 0.1 beside it.
    claims, table = tmp_path / "claims.json", tmp_path / "claims.md"
    command = [sys.executable, str(SCRIPT.with_name("claims_table.py")), "--grid", str(docs / "results-long.json"),
               "--json", str(claims), "--markdown", str(table)]  # fmt: skip
    assert subprocess.run(command, capture_output=True, text=True, timeout=300).returncode == 0
    (greedy,) = [r for r in json.loads(claims.read_text()) if r["metric"] == "greedy_accuracy"]
    assert greedy["testbed"] == "tiny, results-long" and greedy["method"] == "icpo-fallback"
    assert greedy["grpo_gain"] == pytest.approx(0.1) and greedy["verdict"] == "supported"
    assert "**tiny, results-long / start 0.1, noise 0** (3 seeds)" in table.read_text()


def test_the_full_grid_marks_the_claimed_direction(tmp_path):
    out, docs = tmp_path / "grid", tmp_path / "docs"
    noisy = StudySettings(avg_k=32, start_accuracy=0.4, reward_noise=0.2)
    for seed in range(3):
        finished_run(out, GRPO, noisy, seed, 0.5)
        finished_run(out, DEFAULT, noisy, seed, 0.4 - 0.01 * seed)  # loses: "-" on a "helps" claim
    report(out, docs, "--seeds", "3")
    text = (docs / "results-grid.md").read_text()
    assert (
        "| noisy rewards: more robust | greedy_accuracy | 0.4 | 0.2 | 3 | -0.110 [-0.135, -0.085] - |" in text
    )


def test_seeds_whose_warm_up_missed_the_start_are_replaced_by_the_next_and_named(tmp_path):
    from icpo.study.engine import warm_up_plan
    from icpo.warmup import MARKER, START

    out, docs = tmp_path / "grid", tmp_path / "docs"
    cell = StudySettings(avg_k=32, start_accuracy=0.4, reward_noise=0.0)
    for seed in (0, 1, 3, 4):
        finished_run(out, GRPO, cell, seed, 0.5)
        finished_run(out, DEFAULT, cell, seed, 0.6 if seed == 1 else 0.5)
    # Seed 1's warm-up stalled at 0.08 (as seed 5 of the real grid did) after its runs were made, and seed
    # 2's stalled before any: neither may count, and both are named.
    for seed, closest in ((1, 0.08), (2, 0.165)):
        folder, warm_settings = warm_up_plan(out, cell, seed)
        folder.mkdir()
        (folder / MARKER).write_text(json.dumps(asdict(warm_settings)))
        checks = [{"step": 20, "dev_accuracy": 0.05}, {"step": 40, "dev_accuracy": closest}]
        record = {"step": 40, "dev_accuracy": closest, "target_accuracy": 0.4, "checks": checks}
        (folder / START).write_text(json.dumps(record))
    report(out, docs, "--starts", "0.4", "--noises", "0", "--methods", "advantage", "--seeds", "2")

    text = (docs / "results-grid.md").read_text()
    assert "**Left out:** start 0.4: seed 1 left out: its warm-up never reached start accuracy 0.4" in text
    assert "**Left out:** start 0.4: seed 2 left out: its warm-up never reached start accuracy 0.4 " in text
    (summary_cell,) = json.loads((docs / "results-grid.json").read_text())["cells"]
    assert summary_cell["seeds"] == [0, 3]  # seed 3 takes seed 1's place; seed 4 is beyond --seeds 2
    assert summary_cell["vs_baseline"]["advantage"]["greedy_accuracy"]["mean"] == 0.0


def test_a_grid_folder_in_use_or_with_nothing_to_report_gives_one_line(tmp_path):
    from icpo.runfolder import locked_folder

    out = tmp_path / "grid"
    command = [sys.executable, str(SCRIPT), "--out", str(out), "--report", "--docs", str(tmp_path / "docs")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with locked_folder(out):  # another grid (here: this test) is writing there
        busy = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert (
        busy.returncode == 2 and f"{out} is in use by another icpo process (PID {os.getpid()})" in busy.stderr
    )
    empty = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert (empty.returncode, empty.stderr.strip()) == (2, "no finished grid runs to report on.")
    assert not (tmp_path / "docs").exists()


def test_group_size_and_learning_rate_select_the_runs_a_report_reads(tmp_path):
    """--num-generations and --learning-rate are part of a cell: runs made with 16 samples per prompt at lr 1e-3
    are reported under those flags, and not under the defaults; a group of one sample, or a share of slips
    in the warm-up outside [0, 1], is refused."""
    out, docs = tmp_path / "grid", tmp_path / "docs"
    wide = StudySettings(
        avg_k=32, start_accuracy=0.1, reward_noise=0.0, num_generations=16, learning_rate=1e-3
    )
    for seed in range(3):
        finished_run(out, GRPO, wide, seed, 0.3)
        finished_run(out, FALLBACK, wide, seed, 0.3)
    flags = ["--starts", "0.1", "--noises", "0", "--methods", "fallback", "--seeds", "3", "--name", "wide"]
    report(out, docs, *flags, "--num-generations", "16", "--learning-rate", "1e-3")
    (cell,) = json.loads((docs / "wide.json").read_text())["cells"]
    assert cell["seeds"] == [0, 1, 2]

    command = [sys.executable, str(SCRIPT), "--out", str(out), "--report", "--docs", str(docs), *flags]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    defaults = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert (defaults.returncode, defaults.stderr.strip()) == (2, "no finished grid runs to report on.")
    one = subprocess.run(
        [*command, "--num-generations", "1"], capture_output=True, text=True, env=env, timeout=300
    )
    assert one.returncode == 2 and "--num-generations at least 2" in one.stderr
    slips = subprocess.run(
        [*command, "--mistake-rate", "1.5"], capture_output=True, text=True, env=env, timeout=300
    )
    assert slips.returncode == 2 and "--mistake-rate in [0, 1]" in slips.stderr


def test_a_grid_of_grpo_alone_reports_its_own_change_without_a_heat_map(tmp_path):
    """A headroom probe (--methods grpo): GRPO's held-out accuracy against its warm start, nothing to compare."""
    out, docs = tmp_path / "grid", tmp_path / "docs"
    sparse = StudySettings(avg_k=32, start_accuracy=0.1, reward_noise=0.0)
    for seed in range(3):
        finished_run(out, GRPO, sparse, seed, 0.2 + 0.1 * seed)
    report(
        out, docs, "--starts", "0.1", "--noises", "0", "--methods", "grpo", "--seeds", "3", "--name", "probe"
    )
    (cell,) = json.loads((docs / "probe.json").read_text())["cells"]
    assert (cell["mean"]["grpo"]["greedy_accuracy"], cell["start_actual"][1]) == pytest.approx((0.3, 0.1))
    text = (docs / "probe.md").read_text()
    assert "| 0.1 | 0 | 3 | 0.300 |\n" in text and "| start target | noise | seeds | grpo |\n" in text
    assert "Claims" not in text  # nothing is compared with GRPO
    assert "| 0.1 | 0 | 0: 0.100 -> 0.200; 1: 0.100 -> 0.300; 2: 0.100 -> 0.400 |" in text
    assert not (docs / "probe-accuracy.png").exists()
