"""File-system primitives of every step: atomic writes, content hashes, one writer per directory.

A crash in the middle of a write must never leave a half file that a later step (or a cache
lookup) would take as complete, so every output goes to a temporary name in the same directory
and is renamed into place: `os.replace` is atomic on POSIX file systems.

Two writers in one directory destroy each other's files, so a writer holds the directory's
advisory exclusive lock (`exclusive`): `fcntl.flock` on POSIX, `msvcrt.locking` on Windows. The
kernel drops the lock of a process that dies, SIGKILL included, so a lock is never stale. Our own
rather than the `filelock` package because the holder's pid is kept in the lock file, for the
"in use by pid N" message, and filelock truncates that file on every attempt to take it. A lock
guards its directory's tree down to the next directory with a lock of its own; whoever takes it
first removes the temporary files (`.NAME.*.tmp`) that killed writers left in that tree.

A test can hold a process just before it publishes an output, to kill it right there: the
`hold` hook of `jetx.testing.faults`, consulted only when its `active()` says a test turned it on.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jetx.errors import DirectoryInUseError
from jetx.testing import faults

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

logger = logging.getLogger(__name__)

#: The lock file of a directory: it stays (removing it would race with a waiting writer).
LOCK_FILE = ".lock"
_POLL_SECONDS = 0.1
_WINDOWS_BYTE = 1 << 30
_ERRNO = re.compile(r"\[errno (\d+)\]", re.IGNORECASE)
_held: dict[tuple[str, int], list] = {}


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the same directory so that the rename never crosses a file
    system. It is fsynced before the rename so that a power loss cannot publish an empty file.

    Raises:
        OSError: naming `path` (or its directory, when no temporary file can be made there),
            never the temporary name, with the system error.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise error_at(error, path.parent) from None
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; published files get the usual mode under the process umask.
    umask = os.umask(0)
    os.umask(umask)
    try:
        tmp.chmod(0o666 & ~umask)
        yield tmp
        if (injected := faults.active()) is not None:  # a test's hook, None in production
            injected.hold_before_publishing(path.name)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        if error.filename not in (None, str(tmp)):
            raise  # about another file that the block read
        raise error_at(error, path) from None
    finally:
        tmp.unlink(missing_ok=True)


def error_at(error: OSError, path: Path) -> OSError:
    """The same error, naming `path` instead of a temporary file (or nothing)."""
    code = error.errno
    if code is None and (match := _ERRNO.search(str(error))):
        code = int(match.group(1))
    reason = os.strerror(code) if code else (error.strerror or str(error))
    return OSError(code, reason, str(path))


def write_json(path: Path, payload: Any) -> None:
    """Write `payload` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def write_parquet(path: Path, table: pa.Table, **kwargs: Any) -> None:
    """Write a pyarrow table as Parquet, atomically (`kwargs` go to `pq.write_table`)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | None]]:
    """(line number, record) of each non-empty line of a JSON-lines file, oldest first; the
    record is None where the line is not a JSON object (each reader decides what that means).
    An absent file has no line."""
    path = Path(path)
    if not path.is_file():
        return
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            yield number, record if isinstance(record, dict) else None


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes (`hashlib.file_digest`: read in chunks, out of memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@contextmanager
def exclusive(directory: Path, *, what: str, wait: float | None = 0.0) -> Iterator[None]:
    """Hold the advisory exclusive lock of `directory` (created if missing) for the block.

    Re-entrant within a thread: a writer that holds a directory may call writers that lock it
    too. Two threads, like two processes, exclude each other.

    Args:
        directory: the directory to write.
        what: how the message names it (RUN_DIR, FEATURES_DIR, SERIES_DIR).
        wait: seconds to wait for another writer to finish; 0 fails at once, None waits for as
            long as it takes.

    Raises:
        DirectoryInUseError: another process (or thread) still holds it after `wait`.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise error_at(error, directory) from None
    key = (str(directory.resolve()), threading.get_ident())
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    fd = acquire(directory / LOCK_FILE, what=f"{what} {directory}", wait=wait)
    _held[key] = [fd, 1]
    try:
        _remove_leftovers(directory)
        yield
    finally:
        del _held[key]
        release(fd)


def _remove_leftovers(directory: Path) -> None:
    """Remove the temporary files of interrupted atomic writes in a locked directory's tree."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not (Path(root) / d / LOCK_FILE).exists()]
        for name in files:
            if name.startswith(".") and name.endswith(".tmp"):
                Path(root, name).unlink(missing_ok=True)
                logger.info("removed %s, left by an interrupted write", Path(root, name))


def acquire(lock_file: Path, *, what: str, wait: float | None = 0.0) -> int:
    """Take the exclusive lock of `lock_file` and write this pid into it; returns its fd.

    Raises:
        DirectoryInUseError: `what` is still locked after `wait` seconds (None: no limit).
    """
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise error_at(error, Path(lock_file).parent) from None
    deadline = None if wait is None else time.monotonic() + wait
    waiting = False
    while not _try_lock(fd):
        pid = lock_holder(lock_file)
        if deadline is not None and time.monotonic() >= deadline:
            os.close(fd)
            raise DirectoryInUseError(
                f"{what} is in use by pid {pid}; wait for that process to finish or choose "
                "another directory"
            )
        if not waiting:
            logger.info("waiting for %s, in use by pid %s", what, pid)
            waiting = True
        time.sleep(_POLL_SECONDS)
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def release(fd: int) -> None:
    """Drop a lock that `acquire` took and close its fd."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        else:
            os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
    finally:
        os.close(fd)


def lock_holder(lock_file: Path) -> int | None:
    """The pid written by the last holder of `lock_file`, or None."""
    try:
        text = Path(lock_file).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def is_locked(lock_file: Path) -> bool:
    """Whether some process (or thread) holds `lock_file` right now."""
    if not Path(lock_file).exists():
        return False
    fd = os.open(lock_file, os.O_RDWR)
    try:
        if not _try_lock(fd):
            os.close(fd)
            return True
    except BaseException:
        os.close(fd)
        raise
    release(fd)
    return False


def _try_lock(fd: int) -> bool:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:  # Windows: lock one byte far past the pid, which others must still read
            os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
            return False
        raise
    return True
