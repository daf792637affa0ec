"""The `jetx` command line: one module per subcommand, each with `register(subparsers)`.

Every failure that is not a bug is one line on stderr, never a traceback, with the exit code of
its class (`jetx.errors.classify`): 2 for bad input (`JetxInputError`, or an OS error on a user's
path), 1 for the machine's errors (disk full, an I/O error: the path and the system error), 75
for out of memory.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from jetx import __version__
from jetx.cli import compare, evaluate, features, ingest, memory, synth, train
from jetx.errors import classify
from jetx.runtime import configure_tensorflow, import_tensorflow

#: Subcommand modules, in the order `jetx --help` lists them.
COMMANDS = (synth, ingest, features, memory, train, evaluate, compare)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="jetx",
        description="Prepare crash-game multiplier histories and train memory-planned staged "
        "models; each command is one step of the jetx pipeline.",
    )
    parser.add_argument("--version", action="version", version=f"jetx {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `jetx` console script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    configure_tensorflow(verbose=args.verbose)
    if getattr(args, "needs_tensorflow", False):
        import_tensorflow()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args) or 0)
    except Exception as error:
        failure = classify(error)
        if failure is None:
            raise
        kind = "" if failure.kind == "input" else f"{failure.kind}: "
        print(f"jetx {args.command}: error: {kind}{failure.message}", file=sys.stderr)
        return failure.exit_code


if __name__ == "__main__":
    sys.exit(main())
