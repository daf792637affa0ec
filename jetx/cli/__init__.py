"""The `jetx` command line: one module per subcommand, each with `register(subparsers)`.

Bad input (`JetxInputError`, or an OS error on a user's path) is reported as one line on stderr
with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from jetx import __version__
from jetx.cli import compare, evaluate, features, ingest, memory, synth, train, walk_forward
from jetx.errors import JetxInputError
from jetx.runtime import configure_tensorflow, import_tensorflow

#: Subcommand modules, in the order `jetx --help` lists them.
COMMANDS = (synth, ingest, features, memory, train, evaluate, compare, walk_forward)


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
    except JetxInputError as error:
        print(f"jetx {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f"jetx {args.command}: error: {error.strerror or error}: {error.filename or ''}".rstrip(
                ": "
            ),
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
