"""The ``icpo`` command line: ``icpo demo | compare | train | eval`` (also ``python -m icpo``), ``icpo --version``.

Each command lives in the module that owns its idea; that module exposes ``register(subparsers)``
(adds its sub-commands, each with ``set_defaults(run=callable)``) and keeps heavy imports inside
functions so that ``icpo --help`` stays fast. Command modules import what they share from
``icpo.command``, never from this module.
"""

from __future__ import annotations

import importlib
import sys

from icpo.command import OneLineParser

COMMAND_MODULES = ("icpo.study.cli", "icpo.recipe", "icpo.eval.cli")


def build_parser() -> OneLineParser:
    from icpo import __version__

    parser = OneLineParser(prog="icpo", description="ICPO for RL with verifiable rewards.")
    parser.add_argument("--version", action="version", version=f"icpo {__version__}")
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
