"""Error classes: the user's (exit 2), the machine's (exit 1, path and system error), out of
memory (exit 75); anything else is a bug (None: keep the traceback). Every report is one line."""

import errno

import pytest

from jetx.errors import DirectoryInUseError, JetxInputError, SourceBusyError, classify


@pytest.mark.parametrize(
    ("error", "kind", "code", "message"),
    [
        (JetxInputError("h.csv: no `value` column"), "input", 2, "h.csv: no `value` column"),
        (DirectoryInUseError("RUN_DIR r is in use by pid 7"), "input", 2, "RUN_DIR r is in use"),
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/h.csv"),
            "input",
            2,
            "/x/h.csv: No such file or directory (ENOENT)",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/ro/out"),
            "input",
            2,
            "/ro/out: Permission denied (EACCES)",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/runs/ckpt-000004"),
            "machine",
            1,
            "/runs/ckpt-000004: No space left on device (ENOSPC)",
        ),
        (
            OSError(errno.ENOTEMPTY, "Directory not empty", "/c/.tmp-ckpt-1", None, "/c/ckpt-2"),
            "machine",
            1,
            "/c/.tmp-ckpt-1 -> /c/ckpt-2: Directory not empty (ENOTEMPTY)",
        ),
        (OSError(errno.EIO, "Input/output error"), "machine", 1, "Input/output error (EIO)"),
        (SourceBusyError("h.db: database is locked"), "busy", 69, "h.db: database is locked"),
        (MemoryError(), "out of memory", 75, "MemoryError"),
        (MemoryError("Unable to allocate 2.0 GiB"), "out of memory", 75, "Unable to allocate"),
        (JetxInputError("first line\nsecond line"), "input", 2, "first line | second line"),
    ],
)
def test_each_error_has_its_class_exit_code_and_one_line(error, kind, code, message):
    failure = classify(error)
    assert (failure.kind, failure.exit_code) == (kind, code)
    assert failure.message.startswith(message) and "\n" not in failure.message


@pytest.mark.parametrize("error", [ValueError("bad"), KeyError("x"), RuntimeError("boom")])
def test_a_bug_is_not_classified_so_that_its_traceback_is_kept(error):
    assert classify(error) is None
