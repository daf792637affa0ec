"""The `jetx` command line: one module per subcommand, each with `register(subparsers)`.

Every failure that is not a bug is one line on stderr, never a traceback, with the exit code of
its class (`jetx.errors.classify`): 2 for bad input (`JetxInputError`, or an OS error on a user's
path), 1 for the machine's errors (disk full, an I/O error: the path and the system error), 75
for out of memory, 69 for a busy source. SIGTERM (an operator, a pod's shutdown) stops a command
as Ctrl-C does: the `finally` blocks of its atomic writes remove their temporary files, one line
says so, and the exit code is 143 (128 + 15, what a shell reports). `main` takes extra command
modules: the orchestration layer adds `run` and
`serve` (flows/cli.py), which need Prefect, a thing this library never imports.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from jetx import __version__
from jetx.cli import (
    compare,
    evaluate,
    export,
    features,
    ingest,
    memory,
    plan,
    predict,
    promote,
    synth,
    train,
    walk_forward,
)
from jetx.cli.common import Command, HelpFormatter, Parser, exit_codes_text
from jetx.errors import classify
from jetx.runtime import configure_tensorflow, import_tensorflow

#: Subcommand modules, in the order `jetx --help` lists them.
COMMANDS = (
    synth,
    ingest,
    features,
    memory,
    plan,
    train,
    evaluate,
    compare,
    walk_forward,
    export,
    predict,
    promote,
)


def build_parser(extra: Sequence[Command] = ()) -> argparse.ArgumentParser:
    """The parser with every subcommand registered (`extra` modules after the library's)."""
    parser = Parser(  # its subcommands' parsers are of its class too
        prog="jetx",
        description="Prepare crash-game multiplier histories and train memory-planned staged "
        "models; each command is one step of the jetx pipeline. `jetx COMMAND -h` says more.",
        epilog=exit_codes_text(),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"jetx {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log at DEBUG level (also after COMMAND)"
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (*COMMANDS, *extra):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, extra: Sequence[Command] = ()) -> int:
    """Entry point of the `jetx` command; returns the process exit code."""
    args = build_parser(extra).parse_args(argv)
    configure_tensorflow(verbose=args.verbose)
    if getattr(args, "needs_tensorflow", False):
        import_tensorflow()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per Prefect API request
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print(f"jetx {args.command}: interrupted", file=sys.stderr)
        return 130
    except StoppedBySigterm:
        print(f"jetx {args.command}: stopped by SIGTERM; {_stopped(args.command)}", file=sys.stderr)
        return EXIT_SIGTERM
    except Exception as error:
        failure = classify(error)
        if failure is None:
            raise
        kind = "" if failure.kind == "input" else f"{failure.kind}: "
        print(f"jetx {args.command}: error: {kind}{failure.message}", file=sys.stderr)
        return failure.exit_code
    finally:
        signal.signal(signal.SIGTERM, previous)


class StoppedBySigterm(BaseException):
    """Raised in the main thread by SIGTERM; a BaseException, so that no `except Exception`
    takes it for a failure of the step it interrupts."""


def _stop(signum: int, frame) -> None:
    raise StoppedBySigterm


#: Exit code of a command stopped by SIGTERM (128 + 15), and what its line says.
EXIT_SIGTERM = 128 + signal.SIGTERM
_RESUMES = {"train": "resume from its last checkpoint", "run": "resume (finished steps are kept)"}


def _stopped(command: str) -> str:
    again = _RESUMES.get(command, "finish")
    return f"the files it had finished are kept, none half-written; run it again to {again}"


if __name__ == "__main__":
    sys.exit(main())
