"""File-system primitives of every step: atomic writes, content hashes, one writer per directory.

A crash in the middle of a write must never leave a half file that a later step (or a cache
lookup) would take as complete, so every output goes to a temporary name in the same directory
and is renamed into place: `os.replace` is atomic on POSIX file systems.

Two writers in one directory destroy each other's files, so a writer holds the directory's
advisory exclusive lock (`exclusive`): `fcntl.flock` on POSIX, `msvcrt.locking` on Windows. The
kernel drops the lock of a process that dies, SIGKILL included, so a lock is never stale. Our own
rather than the `filelock` package because the holder's pid is kept in the lock file, for the
"in use by pid N" message, and filelock truncates that file on every attempt to take it. The
lock file (`LOCK_FILE`, `.jetx.lock`) is opened without following a symbolic link, and a file of
that name that is not a jetx lock (anything but a pid) is refused, never truncated.

Every temporary name jetx makes starts with `TMP_PREFIX` (`.jetx-tmp-`): atomic writes,
checkpoint writes, bundle staging folders. Whoever takes a directory's lock first removes the
temporary *files* of that prefix that killed writers left in its tree, down to the next directory
with a lock of its own, and never inside a hidden directory (another program's `.cache/`, a
staging folder of a running export): a name jetx does not make is never deleted. Leftovers of
jetx versions before that prefix (`.NAME.*.tmp`) are left alone: they cannot be told apart
from a user's files, so a person removes them.

A test can hold a process just before it publishes an output, to kill it right there: the
`hold` hook of `jetx.testing.faults`, consulted only when its `active()` says a test turned it on.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import json
import logging
import os
import re
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from jetx.errors import DirectoryInUseError, JetxInputError
from jetx.testing import faults

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

logger = logging.getLogger(__name__)

#: The lock file of a directory: it stays (removing it would race with a waiting writer).
LOCK_FILE = ".jetx.lock"
#: The start of every temporary name jetx makes, and the only names its sweeps remove.
TMP_PREFIX = ".jetx-tmp-"
_TMP_SUFFIX = ".tmp"
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2
_POLL_SECONDS = 0.1
_WINDOWS_BYTE = 1 << 30
_ERRNO = re.compile(r"\[errno (\d+)\]", re.IGNORECASE)
_held: dict[tuple[str, int], list] = {}


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    The temporary file lives in the same directory so that the rename never crosses a file
    system. It is fsynced before the rename, and its directory after it, so that a power loss
    can neither publish an empty file nor lose the rename.

    Raises:
        OSError: naming `path` (or its directory, when no temporary file can be made there),
            never the temporary name, with the system error.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f"{TMP_PREFIX}{path.name}.", suffix=_TMP_SUFFIX, dir=path.parent
        )
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
        fsync_dir(path.parent)
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


def fsync_dir(directory: Path) -> None:
    """Flush a directory's entries (a rename into it) to disk; a no-op where directories cannot
    be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (PermissionError, IsADirectoryError):
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths in one atomic step (Linux `renameat2(RENAME_EXCHANGE)`), so that
    neither name is ever missing; False where the system or file system cannot.

    Raises:
        OSError: the exchange was possible but failed (naming both paths).
    """
    renameat2 = getattr(_libc(), "renameat2", None) if sys.platform.startswith("linux") else None
    if renameat2 is None:
        return False
    names = (os.fsencode(first), os.fsencode(second))
    if renameat2(_AT_FDCWD, names[0], _AT_FDCWD, names[1], _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


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
    """Remove the temporary files of interrupted atomic writes in a locked directory's tree:
    only jetx's own names (`TMP_PREFIX`), never inside a hidden directory or one with a lock of
    its own, never through a symbolic link."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = [
            d for d in dirs if not d.startswith(".") and not (Path(root) / d / LOCK_FILE).exists()
        ]
        for name in files:
            if is_temporary(name) and name.endswith(_TMP_SUFFIX):
                Path(root, name).unlink(missing_ok=True)
                logger.info("removed %s, left by an interrupted write", Path(root, name))


def is_temporary(name: str) -> bool:
    """Whether `name` is one of jetx's temporary names (`TMP_PREFIX`)."""
    return name.startswith(TMP_PREFIX)


def acquire(lock_file: Path, *, what: str, wait: float | None = 0.0) -> int:
    """Take the exclusive lock of `lock_file` and write this pid into it; returns its fd.

    Raises:
        DirectoryInUseError: `what` is still locked after `wait` seconds (None: no limit).
        JetxInputError: `lock_file` is a symbolic link, not a regular file, or a file that is
            no jetx lock (it is left as it is).
    """
    fd = _open_lock(Path(lock_file), create=True)
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
    os.lseek(fd, 0, os.SEEK_SET)
    if os.read(fd, 64).strip() and lock_holder(lock_file) is None:
        release(fd)
        raise JetxInputError(f"{lock_file} is not a jetx lock file; move it away or rename it")
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _open_lock(lock_file: Path, *, create: bool) -> int:
    """The lock file's fd, opened without following a link and never truncated."""
    flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(lock_file, flags | (os.O_CREAT if create else 0), 0o666)
    except OSError as error:
        if lock_file.is_symlink():
            raise JetxInputError(
                f"{lock_file} is a symbolic link; jetx does not follow it (remove it)"
            ) from None
        raise error_at(error, lock_file.parent) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise JetxInputError(f"{lock_file} is not a regular file; jetx needs it as its lock file")
    return fd


@contextmanager
def held(lock_file: Path, *, what: str, wait: float | None = 0.0) -> Iterator[None]:
    """Hold the lock of `lock_file` for the block (no sweep; see `acquire`)."""
    fd = acquire(lock_file, what=what, wait=wait)
    try:
        yield
    finally:
        release(fd)


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
    fd = _open_lock(Path(lock_file), create=False)
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
