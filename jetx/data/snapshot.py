"""The bytes one pass over a file reads, and whether the file stayed the file it was.

A pass reads a file's first `size` bytes, its size when it was opened, through one descriptor
(`HashedPrefix`, which hashes them on the way), and `FileWatch` looks at the file again at the
end: a file replaced, shrunk or rewritten in place (same size, new mtime) is `SourceChanged`, and
so is one whose last line has no line break while the file grows, or changes within
`SETTLE_SECONDS` of its last modification: a line still being written (`10459,2` of `10459,2.35`)
is never taken for a value. A file that only grew after a complete last line is a consistent
prefix, and its new rows are left for the next pass. An in-place rewrite that also grows the file
cannot be told from an append: writers that rewrite should write a new file and rename it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import time
from pathlib import Path
from typing import BinaryIO

logger = logging.getLogger(__name__)

#: A last line without a line break, in a file modified less than this long ago, is watched
#: this long for a writer that is still writing it.
SETTLE_SECONDS = 1.0


class SourceChanged(Exception):
    """The source changed while it was read; the message says how. Read it again."""


class HashedPrefix(io.RawIOBase):
    """The first `limit` bytes of an open file, hashed as they are read."""

    def __init__(self, handle: BinaryIO, limit: int) -> None:
        super().__init__()
        self.handle, self.remaining = handle, limit
        self.digest = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")[: max(self.remaining, 0)]
        count = self.handle.readinto(view) if len(view) else 0
        self.digest.update(view[:count])
        self.remaining -= count
        self.count += count
        return count


class Remainder(io.RawIOBase):
    """A stream after its first bytes: what was read ahead of it (`prefix`), then the rest."""

    def __init__(self, prefix: bytes, stream: BinaryIO, last: bytes) -> None:
        super().__init__()
        self.prefix, self.stream, self.last = prefix, stream, last
        self.quotes = 0  # quote characters passed on: an odd count may be an unclosed quote

    def readable(self) -> bool:
        return True

    def peek(self) -> bytes:
        """Read ahead one byte of the stream (kept as the prefix): b"" at its end."""
        self.prefix = self.stream.read(1)
        return self.prefix

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        if self.prefix:
            count = min(len(view), len(self.prefix))
            view[:count] = self.prefix[:count]
            self.prefix = self.prefix[count:]
        else:
            count = self.stream.readinto(view)
        if count:
            self.last = bytes(view[count - 1 : count])
            self.quotes += view[:count].tobytes().count(b'"')
        return count


class FileWatch:
    """What a file was when a pass opened it, to tell at the end whether it changed."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = Path(path)
        self.before = os.fstat(fd)

    @property
    def size(self) -> int:
        return self.before.st_size

    def change(self, read: int | None = None) -> str | None:
        """How the file differs from when it was opened, or None (`read`: bytes read by a
        pass that reached its end)."""
        try:
            now = os.stat(self.path)
        except OSError as error:
            return f"it was removed or renamed ({error.strerror})"
        before = self.before
        if (now.st_dev, now.st_ino) != (before.st_dev, before.st_ino):
            return "it was replaced by another file"
        if now.st_size < before.st_size or (read is not None and read < before.st_size):
            return "it shrank"
        if now.st_size == before.st_size and now.st_mtime_ns != before.st_mtime_ns:
            return "it was rewritten in place"
        return None

    def check_last_line(self, *, complete: bool) -> None:
        """Raise SourceChanged if an incomplete last line may still be being written.

        Args:
            complete: the bytes read end with a line break (or there were none).
        """
        before = self.before
        if complete:
            grown = os.stat(self.path).st_size - before.st_size
            if grown > 0:
                logger.info(
                    "%s grew by %d bytes while it was read; the rows after byte %d are left "
                    "for the next ingest",
                    self.path,
                    grown,
                    before.st_size,
                )
            return
        if os.stat(self.path).st_size > before.st_size:
            raise SourceChanged("its last line was still being written")
        wait = before.st_mtime_ns / 1e9 + SETTLE_SECONDS - time.time()
        if wait > 0:
            time.sleep(min(wait, SETTLE_SECONDS))
            now = os.stat(self.path)
            if (now.st_size, now.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
                raise SourceChanged("its last line was still being written")
