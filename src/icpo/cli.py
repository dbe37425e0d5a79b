"""The ``icpo`` command line: ``icpo demo | compare | train | eval``.

Each command lives in the module that owns its idea; that module exposes ``register(subparsers)``
(adds its sub-commands, each with ``set_defaults(run=callable)``) and keeps heavy imports inside
functions so that ``icpo --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from typing import Any

COMMAND_MODULES = ("icpo.experiment", "icpo.recipe", "icpo.eval.cli")


def checked_command(
    prepare: Callable[[argparse.Namespace], Any], execute: Callable[[argparse.Namespace, Any], int]
) -> Callable[[argparse.Namespace], int]:
    """A command runner: ``prepare(args)`` checks the input and does no work; a ValueError or
    FileNotFoundError it raises becomes one ``icpo COMMAND: error: ...`` line and exit status 2; then ``execute(args, prepared)``."""

    def run(args: argparse.Namespace) -> int:
        try:
            prepared = prepare(args)
        except (ValueError, FileNotFoundError) as error:
            print(f"icpo {args.command}: error: {error}", file=sys.stderr)
            return 2
        return execute(args, prepared)

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icpo", description="ICPO for RL with verifiable rewards.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra  # `icpo train --config r.yaml --learning_rate 1e-5`: TRL-style key overrides
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
