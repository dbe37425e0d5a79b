"""The ``icpo`` command line: ``icpo demo | compare | train | eval``.

Each command lives in the module that owns its idea; that module exposes ``register(subparsers)``
(adds its sub-commands, each with ``set_defaults(run=callable)``) and keeps heavy imports inside
functions so that ``icpo --help`` stays fast. Command modules import what they share from
``icpo.command``, never from this module.
"""

from __future__ import annotations

import importlib
import sys

from icpo.command import OneLineParser

COMMAND_MODULES = ("icpo.study_cli", "icpo.eval.cli")


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog="icpo", description="ICPO for RL with verifiable rewards.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
