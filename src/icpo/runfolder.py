"""Output folders that nothing can corrupt: atomic writes, one writer at a time, duplicate-free JSONL.

- ``write_atomically`` / ``write_json_atomically``: write a sibling temporary file, fsync, then
  ``os.replace`` it over the target, so a reader or a killed writer never sees half a file.
- ``locked_folder``: an exclusive ``fcntl.flock`` on ``<folder>/.lock`` for as long as a command writes
  there. The kernel drops the lock when its process dies, so a lock left by a killed run is taken over
  safely; a second live writer gets ``FolderInUse`` naming the holder's PID.
- ``read_jsonl``: one record per line; a record whose key appears twice is an error, never averaged in.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any

LOCK_FILE = ".lock"


class FolderInUse(RuntimeError):
    """Another live process holds the folder's lock."""


class DuplicateRecord(ValueError):
    """A JSONL file holds the same record key twice."""


def write_atomically(path: str | Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8) in one step: readers see the old or the new file."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staging, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise


def write_json_atomically(path: str | Path, payload: Any) -> None:
    """``write_atomically`` of ``payload`` as indented JSON."""
    write_atomically(path, json.dumps(payload, indent=2) + "\n")


@contextlib.contextmanager
def locked_folder(folder: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if missing) for the ``with`` block.

    Raises ``FolderInUse`` at once (no waiting) when another live process holds it; the message names
    that process and the fix. A lock file left by a killed process does not block: the lock itself died
    with its holder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock_path = folder / LOCK_FILE
    handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 64, 0).decode(errors="replace").strip() or "unknown"
            raise FolderInUse(
                f"{folder} is in use by another icpo process (PID {holder}); wait for it to finish, "
                "or write to another folder."
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        try:
            yield folder
        finally:
            os.ftruncate(handle, 0)
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


def numbered_jsonl(path: str | Path, keep_unterminated: bool = False) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) for each non-blank line of a JSONL file; a line that is not JSON raises
    with file and line. A last line without its newline is a killed writer's partial record and is
    dropped, unless ``keep_unterminated`` (a file a person wrote, where the final newline is optional)."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines[-1] != "" and not keep_unterminated:
        lines = lines[:-1]
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}:{number}: not valid JSON ({error.msg}); fix or delete that line."
            ) from None


def read_jsonl(
    path: str | Path, key: Callable[[dict[str, Any]], Hashable] | None = None
) -> list[dict[str, Any]]:
    """The complete records of a JSONL file that a program appends to ([] when it does not exist); with
    ``key``, a key seen twice raises ``DuplicateRecord`` naming both lines."""
    path = Path(path)
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    seen: dict[Hashable, int] = {}
    for number, record in numbered_jsonl(path):
        if key is not None:
            record_key = key(record)
            if record_key in seen:
                raise DuplicateRecord(
                    f"{path}:{number} repeats the record of line {seen[record_key]} ({record_key!r}); "
                    "two writers shared this file. Delete the folder and run again."
                )
            seen[record_key] = number
        records.append(record)
    return records
