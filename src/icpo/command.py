"""What every ``icpo`` sub-command shares: input checked before any work, and errors as one line.

A command module (``icpo.study.cli``, ``icpo.eval.cli``, ...) imports from here, never from ``icpo.cli``
(the dispatcher that imports the command modules), so no two modules import each other.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``icpo compare: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that wraps only at spaces (never inside a name such as ``step-by-step``) and shows an
    option's default only when it has one its help text does not already state."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


RESUME_HINT = "run the same command again to resume; finished work is kept"
INTERRUPTED = 130  # the shell's status for a command stopped by SIGINT


def checked_command(
    prepare: Callable[[argparse.Namespace], Any],
    execute: Callable[[argparse.Namespace, Any], int],
    folder: Callable[[argparse.Namespace], str | Path] | None = None,
    resume_hint: str = RESUME_HINT,
) -> Callable[[argparse.Namespace], int]:
    """A command runner: ``prepare(args)`` checks the input and does no work and no write; a ValueError or
    FileNotFoundError it raises becomes one ``icpo COMMAND: error: ...`` line and exit status 2. Then, with
    ``folder``, the command's output folder ``folder(args)`` is locked (``icpo.runfolder.locked_folder``; a
    folder another live process holds is one line and exit status 2) while ``execute(args, prepared)`` runs.
    Ctrl-C is one line with ``resume_hint`` and exit status 130, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        from icpo.runfolder import FolderInUse, locked_folder

        try:
            try:
                prepared = prepare(args)
            except (ValueError, FileNotFoundError) as error:
                return _fail(args, error)
            if folder is None:
                return execute(args, prepared)
            try:
                with locked_folder(folder(args)):
                    return execute(args, prepared)
            except FolderInUse as error:
                return _fail(args, error)
        except KeyboardInterrupt:
            print(f"\nicpo {args.command}: interrupted; {resume_hint}.", file=sys.stderr)
            return INTERRUPTED

    return run


def _fail(args: argparse.Namespace, error: Exception) -> int:
    print(f"icpo {args.command}: error: {error}", file=sys.stderr)
    return 2


def check_output_folder(folder: str | Path, flag: str = "--out") -> Path:
    """Raise a ValueError unless ``folder`` is, or can be created as, a writable folder. Writes nothing:
    writability is probed with a temporary folder in the nearest existing ancestor, removed at once."""
    if not str(folder).strip():
        raise ValueError(f"{flag} is empty; give a folder (it holds the command's output).")
    folder = Path(folder).absolute()
    existing = next(path for path in (folder, *folder.parents) if path.exists())
    if not existing.is_dir():
        where = "is a file" if existing == folder else f"is inside {existing}, which is a file"
        raise ValueError(f"{flag} {folder} {where}; give a folder (it holds the command's output).")
    try:
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".icpo-probe-"))
    except OSError as error:
        raise ValueError(
            f"{flag} {folder} cannot be written ({error.strerror} in {existing}); choose a writable folder."
        ) from None
    return folder
