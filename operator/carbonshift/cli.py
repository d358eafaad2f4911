"""The ``carbonshift`` command: one entry point, each subcommand lives in its own module.

Subcommand modules are imported lazily so that ``carbonshift simulate`` never pays for
importing the Kubernetes client, and the operator never pays for the simulator.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, help). Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("carbonshift.sim.command", "replay a carbon-intensity trace and report savings as JSON"),
    "exporter": ("carbonshift.signals.exporter", "serve trace replay, solar and battery series as Prometheus metrics"),
    "run": ("carbonshift.operator.command", "run the operator (Kopf) against the hub cluster"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carbonshift", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(_module=module_name)
        # Only the chosen subcommand's module is imported (see module docstring).
        if name in sys.argv[1:2] or "-h" in sys.argv[1:2] or "--help" in sys.argv[1:2]:
            try:
                importlib.import_module(module_name).add_arguments(sub)
            except ModuleNotFoundError:
                pass
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Re-parse with the chosen module's arguments loaded, whatever argv was given.
    if argv and argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
        sub = argparse.ArgumentParser(prog=f"carbonshift {argv[0]}", description=SUBCOMMANDS[argv[0]][1])
        module.add_arguments(sub)
        args = sub.parse_args(argv[1:])
        return int(module.run(args))
    parser.parse_args(argv)
    return 2
