"""Errors told apart by whose fault they are, each with its exit code and its one-line report.

- The user's (`JetxInputError`, or an `OSError` on a path that is missing, unreadable or not
  writable): a file, a parameter or a configuration that cannot be used. Exit code 2; the same
  input fails the same way again.
- The machine's (any other `OSError`: disk full, an I/O error, a name collision): exit code 1,
  one line naming the path and the system error; the same input may well work elsewhere.
- Out of memory (`MemoryError`, TensorFlow's `ResourceExhaustedError`): exit code 75
  (EX_TEMPFAIL), the one class that a retry with a smaller micro-batch can fix.
- A busy source (`SourceBusyError`: a SQLite database its writer kept locked for longer than
  jetx waits): exit code 69 (EX_UNAVAILABLE). Nothing is wrong with the input and the same command
  later will work; it is not 75, which the flow reads as out of memory.

Anything else is a bug and keeps its traceback. The command line and the flow's stage child
report every failure through `classify`, so that each class reads the same everywhere.
"""

from __future__ import annotations

import errno
import sys
from dataclasses import dataclass

#: Exit codes of the three classes (see the module docstring).
EXIT_MACHINE, EXIT_INPUT, EXIT_OUT_OF_MEMORY = 1, 2, 75
EXIT_BUSY = 69
#: OS errors that a user's own path causes: the path is wrong, or its permissions are.
USER_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ELOOP,
        errno.ENAMETOOLONG,
    }
)


class JetxInputError(Exception):
    """Bad input from a user: a file, a parameter or a configuration that cannot be used.

    The message must name the argument or file, what was expected and what came in.
    """


class DirectoryInUseError(JetxInputError):
    """Another process is writing the directory (its holder's pid is in the message)."""


class SourceBusyError(Exception):
    """A source locked by its writer for longer than jetx waits: transient, not bad input."""


@dataclass(frozen=True)
class Failure:
    """How one error is reported: its class, the process's exit code and one line of text."""

    kind: str
    exit_code: int
    message: str


def describe_os_error(error: OSError) -> str:
    """`path: system error (ERRNO)`, the path (or both paths of a rename) first."""
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    reason = error.strerror or str(error)
    name = errno.errorcode.get(error.errno) if error.errno else None
    text = f"{reason} ({name})" if name else reason
    return f"{' -> '.join(paths)}: {text}" if paths else text


def is_out_of_memory(error: BaseException) -> bool:
    """A MemoryError, or TensorFlow's ResourceExhaustedError when TensorFlow is loaded."""
    if isinstance(error, MemoryError):
        return True
    tensorflow = sys.modules.get("tensorflow")
    errors = getattr(tensorflow, "errors", None)
    exhausted = getattr(errors, "ResourceExhaustedError", None)
    return exhausted is not None and isinstance(error, exhausted)


def classify(error: BaseException) -> Failure | None:
    """The class of `error` and its one-line report, or None for a bug (keep its traceback)."""
    if isinstance(error, JetxInputError):
        return Failure("input", EXIT_INPUT, _one_line(str(error)))
    if isinstance(error, SourceBusyError):
        return Failure("busy", EXIT_BUSY, _one_line(str(error)))
    if is_out_of_memory(error):
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        return Failure("out of memory", EXIT_OUT_OF_MEMORY, _one_line(message))
    if isinstance(error, OSError):
        user = error.errno in USER_ERRNOS
        kind, code = ("input", EXIT_INPUT) if user else ("machine", EXIT_MACHINE)
        return Failure(kind, code, _one_line(describe_os_error(error)))
    return None


def _one_line(text: str) -> str:
    return " | ".join(line for line in text.splitlines() if line.strip()) or text
