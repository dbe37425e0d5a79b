"""Output folders that nothing can corrupt: atomic writes, one writer at a time, duplicate-free JSONL.

- ``write_atomically`` / ``write_json_atomically``: write a sibling temporary file, fsync, then
  ``os.replace`` it over the target, so a reader or a killed writer never sees half a file.
- ``locked_folder``: an exclusive ``fcntl.flock`` on ``<folder>/.lock`` for as long as a command writes
  there. The kernel drops the lock when its process dies, so a lock left by a killed run is taken over
  safely; a second live writer gets ``FolderInUse`` naming the holder's PID. The lock file is never
  followed through a symlink nor truncated unless it is a lock file (a small, singly linked regular file):
  anything else there is refused with ``UnsafeFile``, so a planted ``.lock`` cannot empty another file.
- Files written here follow the umask like any other file (``tempfile.mkstemp`` would make them 0600);
  ``follow_umask`` gives that mode to files another library wrote privately (safetensors' weights).
- ``read_jsonl``: one record per line; a record whose key appears twice is an error, never averaged in.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Callable, Hashable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

LOCK_FILE = ".lock"
LOCK_FILE_MAX_BYTES = 64  # a lock file holds one PID line; anything bigger is someone's data


class FolderInUse(RuntimeError):
    """Another live process holds the folder's lock."""


class UnsafeFile(FolderInUse):
    """A file icpo keeps in the folder (its ``.lock``, a log) is a symlink or not icpo's: it is left
    untouched and the folder is not used."""


class DuplicateRecord(ValueError):
    """A JSONL file holds the same record key twice."""


def write_atomically(path: str | Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text is UTF-8) in one step: readers see the old or the new file."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    handle, staging = _create_staging(path)
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


def _create_staging(path: Path) -> tuple[int, Path]:
    """A new hidden sibling of ``path`` opened for writing, with the mode the umask gives (0666 & ~umask)."""
    while True:
        staging = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), staging
        except FileExistsError:
            continue


def current_umask() -> int:
    """This process's umask (read from /proc where it can be, else set and restored at once)."""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(*paths: str | Path) -> None:
    """Give each existing file (0666) or folder (0777) the mode the umask allows, as if just created."""
    mask = current_umask()
    for path in map(Path, paths):
        if path.is_file():
            path.chmod(0o666 & ~mask)
        elif path.is_dir():
            path.chmod(0o777 & ~mask)


def read_json(path: str | Path, fix: str) -> Any:
    """The JSON a command wrote to ``path``; a one-line ValueError naming the file and ``fix`` (what to do)
    when it is not UTF-8 JSON (cut short, edited, or not ours)."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, IsADirectoryError):
        raise ValueError(f"{path} is damaged (not JSON); {fix}") from None


def write_json_atomically(path: str | Path, payload: Any) -> None:
    """``write_atomically`` of ``payload`` as indented JSON."""
    write_atomically(path, json.dumps(payload, indent=2) + "\n")


@contextlib.contextmanager
def locked_folder(folder: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if missing) for the ``with`` block.

    Raises ``FolderInUse`` at once (no waiting) when another live process holds it; the message names
    that process and the fix. A lock file left by a killed process does not block: the lock itself died
    with its holder. A ``.lock`` that is a symlink or not a lock file raises ``UnsafeFile`` (a
    ``FolderInUse``) and is left as it is."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    handle = _open_lock_file(folder / LOCK_FILE)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, LOCK_FILE_MAX_BYTES, 0).decode(errors="replace").strip() or "unknown"
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


def _open_without_following(path: Path, flags: int) -> int:
    """``os.open`` of ``path`` with ``flags``, created with the umask's mode when missing, never through a
    symlink; ``UnsafeFile`` when it is one or cannot be opened."""
    try:
        return os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as error:
        if path.is_symlink():
            raise UnsafeFile(
                f"{path} is a symlink (to {os.readlink(path)}); icpo does not follow it. "
                "Delete the link, or write to another folder."
            ) from None
        raise UnsafeFile(f"{path} cannot be opened ({error.strerror}); write to another folder.") from None


def _open_lock_file(lock_path: Path) -> int:
    """Open (or create) ``lock_path`` without following a symlink or truncating it; ``UnsafeFile``
    when it is anything but a lock file icpo could have written."""
    handle = _open_without_following(lock_path, os.O_RDWR)
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or info.st_size > LOCK_FILE_MAX_BYTES:
        os.close(handle)
        raise UnsafeFile(
            f"{lock_path} is not an icpo lock file (a {info.st_size}-byte file with {info.st_nlink} "
            "links); it is left untouched: move it away, or write to another folder."
        )
    return handle


def open_for_append(path: str | Path) -> TextIO:
    """``path`` opened for appending text (created with the umask's mode when missing), never through a
    symlink: one there raises ``UnsafeFile`` and is left as it is."""
    return os.fdopen(_open_without_following(Path(path), os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")


def numbered_jsonl(path: str | Path, keep_unterminated: bool = False) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) for each non-blank line of a JSONL file; a line that is not JSON raises
    with file and line. A last line without its newline is a killed writer's partial record and is
    dropped, unless ``keep_unterminated`` (a file a person wrote, where the final newline is optional)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text (byte {error.start}); write it as UTF-8 JSON lines."
        ) from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, not a JSONL file; move it away.") from None
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
    path: str | Path,
    key: Callable[[dict[str, Any]], Hashable] | None = None,
    fields: Mapping[str, tuple[type, ...]] | None = None,
) -> list[dict[str, Any]]:
    """The complete records of a JSONL file that a program appends to ([] when it does not exist); with
    ``fields``, each record must be an object holding every named field with a value of exactly one of
    its types (a ValueError naming file, line and field); with ``key``, a key seen twice raises
    ``DuplicateRecord`` naming both lines."""
    path = Path(path)
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    seen: dict[Hashable, int] = {}
    for number, record in numbered_jsonl(path):
        if fields is not None:
            _check_fields(f"{path}:{number}", record, fields)
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


def _check_fields(where: str, record: Any, fields: Mapping[str, tuple[type, ...]]) -> None:
    if not isinstance(record, dict):
        raise ValueError(f"{where} is not a JSON object; delete that line (it is not a record of this run).")
    for name, kinds in fields.items():
        if name not in record or type(record[name]) not in kinds:
            wanted = " or ".join("null" if kind is type(None) else kind.__name__ for kind in kinds)
            found = f"{record[name]!r:.40}" if name in record else "missing"
            raise ValueError(
                f"{where}: field {name!r} is {found}, not {wanted}; delete that line (it is damaged)."
            )
