"""Cache policies: keys that mean what they say, and no cached record served for files gone.

Prefect's `INPUTS + TASK_SOURCE` keys a task on its arguments and its own lines only. Added here:

- `LibraryCode`: the digest of every project module the task's module can run
  (`jetx.provenance.code_digest`): a changed feature kernel, loss or stage loop recomputes.
- `ResolvedPreset`: the values of the preset a task is given by name, not the name.
- `IntactOutputs` wraps a policy and checks the record a key would serve: when the files it
  names are missing or changed, that key is skipped and the next generation of the key is used,
  so the task runs again instead of returning a record that points at nothing; the JSON schema
  of the returned record class is part of the key too.

Results persist in Prefect's result storage (`PREFECT_LOCAL_STORAGE_PATH`, by default
`$PREFECT_HOME/storage`) as JSON (`RECORDS`): the records are pydantic models, and nothing of
ours is ever unpickled from a shared volume.

Two runs never compute one key at once: the policies run at Prefect's SERIALIZABLE isolation
level, whose transaction holds a lock on the key while the task computes, so a second run waits
and then reads the first one's record. The lock is `KeyLocks`: an advisory lock file per key
(`jetx.io`), which the kernel drops when its holder dies; Prefect's own FileSystemLockManager
leaves a lock file behind a SIGKILLed holder, and every later run would wait for it forever.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger
from prefect.results import get_result_store
from prefect.settings import PREFECT_LOCAL_STORAGE_PATH
from prefect.transactions import IsolationLevel
from prefect.utilities.hashing import hash_objects
from pydantic import BaseModel

from jetx.config import get_preset
from jetx.errors import DirectoryInUseError
from jetx.io import acquire, is_locked, release
from jetx.provenance import code_digest
from tasks.records import FileSet

#: Generations of one key tried before giving up on caching (a file deleted that many times).
MAX_GENERATIONS = 64
#: The result serializer of every task that persists a record, and of the flows.
RECORDS = "json"
_POLL_SECONDS = 0.2


class KeyLocks:
    """Prefect's `LockManager` protocol over advisory lock files, one per cache key.

    The files live in `<result storage>/locks/` (shared by every process that shares the
    results); they are never removed, since removing one would race with a waiting run.
    """

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, int]] = {}
        self._guard = threading.Lock()

    def __deepcopy__(self, memo: dict) -> KeyLocks:
        return self  # one per process: copies of a cache policy share it

    def _file(self, key: str) -> Path:
        root = Path(PREFECT_LOCAL_STORAGE_PATH.value()).expanduser() / "locks"
        root.mkdir(parents=True, exist_ok=True)
        return root / f"{hashlib.sha256(key.encode()).hexdigest()}.lock"

    def acquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        """Take `key`'s lock for `holder`, waiting up to `acquire_timeout` (None: no limit).

        `hold_timeout` is not supported: the lock lasts until released or its holder dies.
        """
        with self._guard:
            if self._held.get(key, ("", 0))[0] == holder:
                return True
        try:
            fd = acquire(self._file(key), what=f"cache key {key}", wait=acquire_timeout)
        except DirectoryInUseError:
            return False
        with self._guard:
            self._held[key] = (holder, fd)
        return True

    async def aacquire_lock(
        self,
        key: str,
        holder: str,
        acquire_timeout: float | None = None,
        hold_timeout: float | None = None,
    ) -> bool:
        return await asyncio.to_thread(
            self.acquire_lock, key, holder, acquire_timeout, hold_timeout
        )

    def release_lock(self, key: str, holder: str) -> None:
        with self._guard:
            if self._held.get(key, ("", 0))[0] != holder:
                raise ValueError(f"{holder} does not hold the lock of key {key}")
            _, fd = self._held.pop(key)
        release(fd)

    def is_locked(self, key: str) -> bool:
        with self._guard:
            if key in self._held:
                return True
        return is_locked(self._file(key))

    def is_lock_holder(self, key: str, holder: str) -> bool:
        with self._guard:
            return self._held.get(key, ("", 0))[0] == holder

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_locked(key):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_SECONDS)
        return True

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.wait_for_lock, key, timeout)


#: One lock manager per process, shared by every cached task.
KEY_LOCKS = KeyLocks()


@dataclass
class LibraryCode(CachePolicy):
    """Key on the source of every project module the task's own module imports, transitively."""

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        return task_code_digest(task_ctx.task.fn)


@dataclass
class ResolvedPreset(CachePolicy):
    """Key on the values of the preset named by the task's `preset` argument."""

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        if "preset" not in inputs:
            return None
        return hash_objects(get_preset(inputs["preset"]).to_dict(), raise_on_failure=True)


@dataclass
class IntactOutputs(CachePolicy):
    """`policy`'s key, moved on to a new generation while the record it holds is stale."""

    policy: CachePolicy = field(default_factory=lambda: INPUTS + TASK_SOURCE)

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        base = self.policy.compute_key(task_ctx, inputs, flow_parameters, **kwargs)
        if base is None:
            return None
        base = hash_objects(base, _record_schema(task_ctx.task.fn), raise_on_failure=True)
        store = get_result_store()
        for generation in range(MAX_GENERATIONS):
            key = f"{base}-{generation}"
            if not store.exists(key):
                return key
            record = store.read(key).result
            problem = record.problem() if isinstance(record, FileSet) else None
            if problem is None:
                return key
            get_run_logger(task_ctx).info("Not serving the cached record: %s", problem)
        return None


def _record_schema(fn: Any) -> dict[str, Any] | None:
    """JSON schema of the record a task returns: a changed record class recomputes."""
    returned = typing.get_type_hints(fn).get("return")
    return (
        returned.model_json_schema()
        if isinstance(returned, type) and issubclass(returned, BaseModel)
        else None
    )


def task_code_digest(fn: Any) -> str:
    """The code a task runs: its module and every project module that module can import."""
    return code_digest(fn.__module__)


def content_policy() -> CachePolicy:
    """Inputs, task source, library code and resolved preset, never serving stale outputs, one
    run computing a key at a time."""
    base = INPUTS + TASK_SOURCE + LibraryCode() + ResolvedPreset()
    return IntactOutputs(policy=base).configure(
        isolation_level=IsolationLevel.SERIALIZABLE, lock_manager=KEY_LOCKS
    )


def cached_task(name: str, **options: Any) -> Callable:
    """The one decorator of a cached task: `task(name=...)` keyed by `content_policy()`, its
    record persisted as JSON (`RECORDS`); `options` are the task's own (retries, run names)."""
    return task(
        name=name,
        cache_policy=content_policy(),
        persist_result=True,
        result_serializer=RECORDS,
        **options,
    )
