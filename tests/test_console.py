"""icpo.console: the libraries' output goes to a log file, never through a symlink planted there."""

from __future__ import annotations

import logging

import pytest

from icpo.console import library_output_to
from icpo.runfolder import UnsafeFile


def test_library_output_goes_to_the_log_and_never_through_a_symlink(tmp_path):
    with library_output_to(tmp_path / "icpo.log"):
        logging.getLogger("transformers").warning("to the log")
    assert "to the log" in (tmp_path / "icpo.log").read_text()
    victim = tmp_path / "victim.txt"
    victim.write_text("kept\n")
    (tmp_path / "linked.log").symlink_to(victim)
    with pytest.raises(UnsafeFile, match="is a symlink"), library_output_to(tmp_path / "linked.log"):
        pass
    assert victim.read_text() == "kept\n"
