"""What every `jetx` subcommand shares: its help layout, `-v` anywhere, `--json`, and the one
definition of each option that several commands (and the flows' command lines) take.

A subcommand is added with `add_command`, which gives it a description, an epilog with an
example, defaults shown in `-h`, and `-v/--verbose` after the subcommand as well as before it.
Output is for people by default; `--json` prints the same content for machines.
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path
from typing import Protocol

from jetx.config import PRESETS, VARIANTS

#: Exit codes of every command, listed in `jetx --help`.
EXIT_CODES = {
    0: "done",
    1: "the machine failed (a system error naming the path), or --strict found bad rows",
    2: "bad input: a file, a parameter or a configuration that cannot be used (one line)",
    69: "busy: the source is locked by its writer (a SQLite database); run it again later",
    75: "out of memory: a retry with a smaller micro-batch may work",
    130: "interrupted (Ctrl-C)",
    143: "stopped by SIGTERM: finished files are kept, none is half-written; run it again",
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


class Parser(argparse.ArgumentParser):
    """argparse with a bad option or value as one line (argparse prints its usage first): the
    house's rule for bad input; `-h` still shows the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} -h` shows the usage)\n")


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


#: `--stages N` everywhere: how many stages, from stage 1 (stage k starts from stage k - 1's
#: best weights, so a chain always starts at 1; a finished stage is not trained again).
STAGE_COUNTS = (1, 2, 3)


def add_preset(parser: argparse.ArgumentParser, default: str = "demo") -> None:
    """`--preset`: model size and schedule."""
    parser.add_argument(
        "--preset", default=default, choices=sorted(PRESETS), help="model size and schedule"
    )


def add_variant(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    """`--variant`: the model variant (default: the preset's own)."""
    parser.add_argument(
        "--variant",
        required=required,
        choices=sorted(VARIANTS),
        help="model variant" + ("" if required else " (default: the preset's)"),
    )


def add_stages(parser: argparse.ArgumentParser, default: int = 3) -> None:
    """`--stages N`: train stages 1 to N (`STAGE_COUNTS`)."""
    parser.add_argument(
        "--stages",
        type=_stage_count,
        default=default,
        metavar="N",
        help="train stages 1 to N (1, 2 or 3)",
    )


def add_seed(
    parser: argparse.ArgumentParser, *, required: bool = False, what: str = "weights and shuffling"
) -> None:
    """`--seed`: the seed of `what`."""
    parser.add_argument(
        "--seed", type=int, default=None if required else 0, required=required,
        help=f"seed of {what}",
    )  # fmt: skip


def check_out_dir(value: object) -> object:
    """`--out` (and the flows' `out`) must name a directory: an empty or blank path would write
    into the current directory, and a file's path cannot hold a step's files.

    Raises:
        ValueError: naming `out`, what it needs and what came in.
    """
    text = str(value) if isinstance(value, Path) else value
    if isinstance(text, str) and (not text.strip() or Path(text).is_file()):
        what = "an existing file" if text.strip() else "empty"
        raise ValueError(f"`out` must be a directory path; it is {what}. Received: out={text!r}")
    return value


def out_dir(text: str) -> Path:
    """The argparse type of every `--out` that names a directory (`check_out_dir`)."""
    try:
        return Path(check_out_dir(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _stage_count(text: str) -> int:
    if text.strip() not in {str(n) for n in STAGE_COUNTS}:
        raise argparse.ArgumentTypeError(
            f"must be how many stages to train, from stage 1: one of {STAGE_COUNTS} (stage k "
            f"starts from stage k - 1's best weights). Received: {text!r}"
        )
    return int(text)
