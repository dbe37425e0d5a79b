"""Output-folder safety: atomic writes, an exclusive lock that survives nothing but its holder, JSONL checks."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from icpo.runfolder import (
    DuplicateRecord,
    FolderInUse,
    UnsafeFile,
    follow_umask,
    locked_folder,
    open_for_append,
    read_jsonl,
    write_atomically,
    write_json_atomically,
)

HOLD_LOCK = """
import sys, time
from icpo.runfolder import locked_folder
with locked_folder(sys.argv[1]):
    print("held", flush=True)
    time.sleep(120)
"""


def _start_holder(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    holder = _start_holder(tmp_path / "run")
    try:
        with pytest.raises(FolderInUse, match=rf"PID {holder.pid}\b"), locked_folder(tmp_path / "run"):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path):
    holder = _start_holder(tmp_path / "run")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "run" / ".lock").exists()  # the file stays, the lock died with its process
    with locked_folder(tmp_path / "run") as folder:
        assert folder == tmp_path / "run"


def test_the_lock_is_free_again_after_the_block_and_reentry_in_sequence_works(tmp_path):
    with locked_folder(tmp_path):
        pass
    with locked_folder(tmp_path):
        pass


def test_atomic_writes_leave_no_temporary_files_and_replace_whole(tmp_path):
    target = tmp_path / "summary.json"
    write_json_atomically(target, {"a": 1})
    write_atomically(target, b'{"b": 2}')
    assert json.loads(target.read_text()) == {"b": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "result.json"
    write_json_atomically(target, {"kept": True})
    with pytest.raises(TypeError):
        write_json_atomically(target, {"bad": object()})
    assert json.loads(target.read_text()) == {"kept": True}
    assert len(list(tmp_path.iterdir())) == 1


def test_a_lock_file_that_is_a_symlink_is_refused_and_its_target_kept(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's data\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(victim)
    with pytest.raises(UnsafeFile, match=r"\.lock is a symlink"), locked_folder(tmp_path / "run"):
        pass
    assert victim.read_text() == "someone else's data\n"
    dangling = tmp_path / "dangling"
    dangling.mkdir()
    (dangling / ".lock").symlink_to(tmp_path / "created-through-the-link")
    with pytest.raises(UnsafeFile), locked_folder(dangling):
        pass
    assert not (tmp_path / "created-through-the-link").exists()


def test_appending_never_writes_through_a_symlink(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("kept\n")
    (tmp_path / "icpo.log").symlink_to(victim)
    with pytest.raises(UnsafeFile, match="icpo.log is a symlink"):
        open_for_append(tmp_path / "icpo.log")
    assert victim.read_text() == "kept\n"
    with open_for_append(tmp_path / "new.log") as handle:
        handle.write("one\n")
    with open_for_append(tmp_path / "new.log") as handle:
        handle.write("two\n")
    assert (tmp_path / "new.log").read_text() == "one\ntwo\n"


def test_a_lock_file_holding_data_or_other_links_is_left_untouched(tmp_path):
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / ".lock").write_text("x" * 1000)
    with pytest.raises(UnsafeFile, match="not an icpo lock file"), locked_folder(tmp_path / "big"):
        pass
    assert (tmp_path / "big" / ".lock").read_text() == "x" * 1000
    victim = tmp_path / "victim"
    victim.write_text("12\n")
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / ".lock").hardlink_to(victim)
    with pytest.raises(UnsafeFile, match="2 links"), locked_folder(tmp_path / "linked"):
        pass
    assert victim.read_text() == "12\n"


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_writes_and_follow_umask_give_the_umask_mode(tmp_path, umask):
    import os

    previous = os.umask(umask)
    try:
        write_json_atomically(tmp_path / "summary.json", {"a": 1})
        private = tmp_path / "model.safetensors"
        private.touch(mode=0o600)
        follow_umask(private)
    finally:
        os.umask(previous)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert private.stat().st_mode & 0o777 == 0o666 & ~umask


def test_read_jsonl_drops_an_unterminated_last_line_and_refuses_duplicates(tmp_path):
    path = tmp_path / "samples.jsonl"
    assert read_jsonl(path) == []
    path.write_text('{"id": 1}\n{"id": 2}\n{"id": 3')
    assert read_jsonl(path, key=lambda r: r["id"]) == [{"id": 1}, {"id": 2}]
    path.write_text('{"id": 1}\n{"id": 2}\n{"id": 1}\n')
    with pytest.raises(DuplicateRecord, match=r"samples.jsonl:3 repeats the record of line 1"):
        read_jsonl(path, key=lambda r: r["id"])
    path.write_text('{"id": 1}\nnot json\n{"id": 2}\n')
    with pytest.raises(ValueError, match=r"samples.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_two_processes_racing_for_one_folder_never_both_get_it(tmp_path):
    release = tmp_path / "release"
    racer = (
        "import os, sys, time\nfrom icpo.runfolder import locked_folder, FolderInUse\n"
        "try:\n    with locked_folder(sys.argv[1]):\n        print('won', flush=True)\n"
        "        while not os.path.exists(sys.argv[2]):\n            time.sleep(0.05)\n"
        "except FolderInUse:\n    print('refused', flush=True)\n"
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", racer, str(tmp_path / "run"), str(release)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outcomes = sorted(r.stdout.readline().strip() for r in racers)  # the winner holds until released
    release.touch()
    for r in racers:
        r.wait(timeout=60)
    assert outcomes == ["refused", "refused", "won"]
