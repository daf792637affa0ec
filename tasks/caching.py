"""Cache policies: keys that mean what they say, and no cached record served for files gone.

Prefect's `INPUTS + TASK_SOURCE` keys a task on its arguments and its own lines only. Added here:

- `LibraryCode`: the digest of every project module the task's module can run
  (`jetx.provenance.code_digest`): a changed feature kernel, loss or stage loop recomputes.
- `ResolvedPreset`: the values of the preset a task is given by name, not the name.
- `FileContent`: the sha256 of named `Path` arguments, so that a changed source file
  recomputes even when its path is the same.
- `IntactOutputs` wraps a policy and checks the record a key would serve: when the files it
  names are missing or changed, that key is skipped and the next generation of the key is used,
  so the task runs again instead of returning a record that points at nothing; the JSON schema
  of the returned record class is part of the key too.

Results persist in Prefect's result storage (`PREFECT_LOCAL_STORAGE_PATH`, by default
`$PREFECT_HOME/storage`).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect.cache_policies import INPUTS, TASK_SOURCE, CachePolicy
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger
from prefect.results import get_result_store
from prefect.utilities.hashing import hash_objects
from pydantic import BaseModel

from jetx.config import get_preset
from jetx.io import sha256_file
from jetx.provenance import code_digest
from tasks.records import FileSet

#: Generations of one key tried before giving up on caching (a file deleted that many times).
MAX_GENERATIONS = 64


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
class FileContent(CachePolicy):
    """Key on the sha256 of the files given as the named `Path` arguments."""

    names: tuple[str, ...] = ()

    def compute_key(
        self,
        task_ctx: TaskRunContext,
        inputs: dict[str, Any],
        flow_parameters: dict[str, Any],
        **kwargs: Any,
    ) -> str | None:
        hashes = {name: sha256_file(Path(inputs[name])) for name in self.names}
        return hash_objects(hashes, raise_on_failure=True)


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


def content_policy(*file_inputs: str) -> CachePolicy:
    """Inputs, task source, library code, resolved preset (+ the content of `file_inputs`),
    never serving stale outputs."""
    base = INPUTS + TASK_SOURCE + LibraryCode() + ResolvedPreset()
    if file_inputs:
        base = base + FileContent(names=tuple(file_inputs))
    return IntactOutputs(policy=base)
