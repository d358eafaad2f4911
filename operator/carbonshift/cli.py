"""The ``carbonshift`` command: one entry point, each subcommand lives in its own module.

Subcommand modules are imported lazily, so ``carbonshift simulate`` never pays for importing
the Kubernetes client and the operator never pays for the simulator. Each module exposes
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("carbonshift.sim.command", "replay a carbon-intensity trace and report savings as JSON"),
    "exporter": ("carbonshift.signals.exporter", "serve trace replay, solar and battery series as Prometheus metrics"),
    "run": ("carbonshift.controller.command", "run the operator (Kopf) against the hub cluster"),
}
# Optional dependencies (pyproject extras) a subcommand may need beyond what the operator needs.
EXTRAS = {"pandas": "sim", "scipy": "lp"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        module_name, help_text = SUBCOMMANDS[argv[0]]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            extra = EXTRAS.get((exc.name or "").split(".")[0])
            if extra is None:
                raise
            print(f"carbonshift {argv[0]} needs the optional dependency {exc.name} (left out of the operator "
                  f"image): pip install 'carbonshift[{extra}]'", file=sys.stderr)
            return 2
        parser = argparse.ArgumentParser(prog=f"carbonshift {argv[0]}", description=help_text)
        module.add_arguments(parser)
        return int(module.run(parser.parse_args(argv[1:])))
    parser = argparse.ArgumentParser(prog="carbonshift", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        subparsers.add_parser(name, help=help_text)
    parser.parse_args(argv)
    parser.print_help()
    return 2
