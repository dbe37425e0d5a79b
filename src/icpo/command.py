"""What every ``icpo`` sub-command shares: input checked before any work, and errors as one line.

A command module (``icpo.experiment``, ``icpo.eval.cli``, ...) imports from here, never from ``icpo.cli``
(the dispatcher that imports the command modules), so no two modules import each other.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``icpo compare: error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def checked_command(
    prepare: Callable[[argparse.Namespace], Any], execute: Callable[[argparse.Namespace, Any], int]
) -> Callable[[argparse.Namespace], int]:
    """A command runner: ``prepare(args)`` checks the input and does no work; a ValueError or
    FileNotFoundError it raises becomes one ``icpo COMMAND: error: ...`` line and exit status 2; then
    ``execute(args, prepared)``."""

    def run(args: argparse.Namespace) -> int:
        try:
            prepared = prepare(args)
        except (ValueError, FileNotFoundError) as error:
            print(f"icpo {args.command}: error: {error}", file=sys.stderr)
            return 2
        return execute(args, prepared)

    return run
