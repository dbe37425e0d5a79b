"""Figures and defaults the docs quote are read back from the code and from the result files they cite,
so a rerun that changes a number, or a changed default, fails here until the prose follows."""

from __future__ import annotations

import json
import re

import pytest

from icpo.trl import ICPOConfig
from tests.conftest import REPO_ROOT

METHOD = (REPO_ROOT / "docs" / "method.md").read_text()
README = (REPO_ROOT / "README.md").read_text()
GRID = json.loads((REPO_ROOT / "docs" / "results-grid.json").read_text())

# (document, variant, start, reward noise, metric as the JSON names it, how the document writes it)
GRID_QUOTES = [(METHOD, "advantage", 0.1, 0.0, "avg_at_32", "avg@32")]


def _paired(cell: dict, variant: str, metric: str) -> str:
    difference = cell["vs_baseline"][variant][metric]
    low, high = difference["ci95"]
    return f"{difference['mean']:+.3f} [{low:+.3f}, {high:+.3f}]"


@pytest.mark.parametrize(("document", "variant", "start", "noise", "metric", "written"), GRID_QUOTES)
def test_grid_differences_quoted_in_the_docs_are_the_grids(document, variant, start, noise, metric, written):
    (cell,) = [c for c in GRID["cells"] if c["start_target"] == start and c["reward_noise"] == noise]
    assert f"{written} {_paired(cell, variant, metric)}" in " ".join(document.split())


def test_the_docs_name_the_default_combination():
    default = ICPOConfig.__dataclass_fields__["icpo_combine"].default
    opening = " ".join(METHOD.split("\n\n")[1].split())
    by_default = re.search(r"By default[^.]*\.", opening)
    assert by_default and f'icpo_combine="{default}"' in by_default.group(), opening
    assert f'`icpo_combine="{default}"`' in README and "(our measured default)" in README
    assert f'**`combine = "{default}"` (the default' in METHOD


REAL_LM_STUDIES = sorted((REPO_ROOT / "docs").glob("results-smollm2-*-it2/claims.json"))


@pytest.mark.parametrize("claims_file", REAL_LM_STUDIES, ids=lambda path: path.parent.name)
def test_results_quote_each_real_lm_study_as_its_files_say(claims_file):
    """docs/results.md gives GRPO's own change of every two-pass SmolLM2 study, and every difference from GRPO
    whose interval excludes 0 there, with that interval, as the study's claims.json has them."""
    results = " ".join((REPO_ROOT / "docs" / "results.md").read_text().split())
    records = json.loads(claims_file.read_text())
    greedy = next(r for r in records if r["metric"] == "greedy_accuracy")
    assert f"{greedy['grpo_start']:.3f} -> {greedy['grpo_end']:.3f}" in results
    for record in records:
        if record["verdict"] in ("supported", "contradicted"):
            quoted = f"{record['delta']:+.3f} [{record['ci_low']:+.3f}, {record['ci_high']:+.3f}]"
            assert quoted in results, (record["method"], record["metric"], quoted)
