"""What every `jetx` subcommand shares: its help layout, `-v` anywhere, and `--json`.

A subcommand is added with `add_command`, which gives it a description, an epilog with an
example, defaults shown in `-h`, and `-v/--verbose` after the subcommand as well as before it.
Output is for people by default; `--json` prints the same content for machines.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Protocol

#: Exit codes of every command, listed in `jetx --help`.
EXIT_CODES = {
    0: "done",
    1: "the machine failed (a system error naming the path), or --strict found bad rows",
    2: "bad input: a file, a parameter or a configuration that cannot be used (one line)",
    75: "out of memory: a retry with a smaller micro-batch may work",
    130: "interrupted (Ctrl-C)",
}


class Command(Protocol):
    """A subcommand: a module (or object) that adds itself to the `jetx` parser."""

    def register(self, subparsers) -> None: ...


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help (when it has one worth showing); descriptions and
    epilogs kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        hidden = default is None or default is False or default == argparse.SUPPRESS
        shown = action.option_strings and not hidden
        if shown and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def common_options() -> argparse.ArgumentParser:
    """The options of every subcommand (a parent parser).

    `-v` defaults to SUPPRESS here so that `jetx -v train ...` is not undone by the
    subcommand's own default.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help="log at DEBUG level, TensorFlow's own lines included",
    )
    return parent


def add_command(
    subparsers, name: str, *, summary: str, description: str, example: str
) -> argparse.ArgumentParser:
    """A subcommand with its one-line summary (in `jetx --help`), description and example."""
    return subparsers.add_parser(
        name,
        help=summary,
        description=textwrap.dedent(description).strip(),
        epilog="example:\n  " + example.strip(),
        formatter_class=HelpFormatter,
        parents=[common_options()],
    )


def add_json(parser: argparse.ArgumentParser, what: str) -> None:
    """The `--json` option: the same content as one JSON document for machines."""
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def exit_codes_text() -> str:
    """The exit codes, for the main parser's epilog."""
    return "exit codes:\n" + "\n".join(f"  {code:<4} {what}" for code, what in EXIT_CODES.items())
