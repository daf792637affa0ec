"""Every test hook of jetx, behind one injection point: `active()`.

A test makes a fault happen on purpose (an out-of-memory at a given update, a slow step, a
process held just before it publishes a file, a pause inside a checkpoint write) by setting ONE
environment variable, `JETX_FAULTS`, to a JSON object; child processes inherit it, so a test can
drive a stage's child or a whole flow. Production code never reads a test variable itself: it
asks `active()`, which reads `JETX_FAULTS` once per process and returns None when it is unset
(the production case: no callback is installed, no hook runs). The keys:

- `oom`: "stage:update[,stage:update]": raise `tf.errors.ResourceExhaustedError` in the first
  micro-step after `update` optimizer updates of `stage`. Each entry fires once per process;
  repeat an entry to make the same step fail again (after the micro-batch is halved). A flow's
  retry of a stage never injects (`retry_environment`).
- `step_delay`: seconds to sleep after each micro-step, so that a test can kill a run mid-epoch.
- `hold`: PATH of a file holding an output's name (`series.parquet`, or `state.json#3` for a
  process's third write of it). The process about to publish that output (its temporary file
  written, not yet renamed; `state.json` is a checkpoint's, `bundle` a model bundle's) writes
  `held NAME PID` into PATH and waits while PATH exists, so that a test can kill it right there.
- `checkpoint_pause`: "k:seconds": sleep inside the k-th checkpoint write of this process (after
  the variables, before the state), so that a test can kill the process in the middle of a write.

`environment(...)` builds the variable for a child's environment; `injected(...)` sets it in
this process for a block (in-process tests). The module imports neither Keras nor Prefect: the
callback class (`FaultInjection`) is defined, with its Keras import, on first use.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jetx.errors import JetxInputError

logger = logging.getLogger(__name__)

#: The one environment variable of every test hook: a JSON object (module docstring).
FAULTS_ENV = "JETX_FAULTS"
_KEYS = ("oom", "step_delay", "hold", "checkpoint_pause")
_UNREAD = object()
_active: Any = _UNREAD
_holds: collections.Counter[str] = collections.Counter()
_checkpoint_writes = 0


def parse_oom_spec(spec: str | None) -> list[tuple[int, int]]:
    """Parse "stage:update[,stage:update]" into (stage, update) pairs."""
    if not spec:
        return []
    pairs = []
    for item in spec.split(","):
        try:
            stage, update = (int(part) for part in item.split(":"))
        except ValueError:
            raise JetxInputError(
                f"`{FAULTS_ENV}`'s `oom` must look like 'stage:update[,stage:update]'. "
                f"Received: {spec!r}"
            ) from None
        pairs.append((stage, update))
    return pairs


@dataclass(frozen=True)
class Faults:
    """The faults a test asked for (module docstring); the default asks for none.

    Args:
        oom: "stage:update[,stage:update]" at which to raise an out-of-memory error.
        step_delay: seconds to sleep after each micro-step.
        hold: path of the hold file.
        checkpoint_pause: "k:seconds", a pause inside the k-th checkpoint write.
    """

    oom: str | None = None
    step_delay: float = 0.0
    hold: str | None = None
    checkpoint_pause: str | None = None
    _oom_pairs: tuple[tuple[int, int], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_oom_pairs", tuple(parse_oom_spec(self.oom)))
        if self.checkpoint_pause is not None:
            _pause_spec(self.checkpoint_pause)

    @classmethod
    def from_json(cls, text: str) -> Faults:
        """The faults of a `JETX_FAULTS` value."""
        try:
            spec = json.loads(text)
        except json.JSONDecodeError:
            spec = None
        if not isinstance(spec, dict) or set(spec) - set(_KEYS):
            raise JetxInputError(
                f"`{FAULTS_ENV}` must be a JSON object with keys among {list(_KEYS)}. "
                f"Received: {text!r}"
            )
        return cls(**spec)

    def to_json(self) -> str:
        values = {k: v for k, v in asdict(self).items() if k in _KEYS}
        return json.dumps({k: v for k, v in values.items() if v not in (None, 0.0)})

    def callback(self, stage: int):
        """The Keras callback that injects this stage's out-of-memory errors and step delays."""
        return _fault_injection_class()(stage, list(self._oom_pairs), self.step_delay)

    def hold_before_publishing(self, name: str) -> None:
        """The `hold` hook at the publication of output `name` (module docstring)."""
        if not self.hold:
            return
        _holds[name] += 1
        gate = Path(self.hold)
        try:
            wanted = gate.read_text(encoding="utf-8").split()
        except OSError:
            return
        if not wanted or wanted[0] not in (name, f"{name}#{_holds[name]}"):
            return
        logger.warning("%s: holding before publishing %s (pid %d)", FAULTS_ENV, name, os.getpid())
        gate.write_text(f"held {name} {os.getpid()}\n", encoding="utf-8")
        while gate.exists():
            time.sleep(0.05)

    def pause_in_checkpoint_write(self, tmp: Path) -> None:
        """The `checkpoint_pause` hook, inside the write of checkpoint `tmp`."""
        global _checkpoint_writes
        _checkpoint_writes += 1
        if self.checkpoint_pause is None:
            return
        write, seconds = _pause_spec(self.checkpoint_pause)
        if write == _checkpoint_writes:
            logger.warning("%s: pausing %s s inside checkpoint write %s", FAULTS_ENV, seconds, tmp)
            time.sleep(seconds)


@functools.cache
def _fault_injection_class() -> type:
    """`FaultInjection`, defined on first use so that this module loads without Keras."""
    import keras
    import tensorflow as tf

    class FaultInjection(keras.callbacks.Callback):
        """Raises an injected out-of-memory error or sleeps at the start of a micro-step.

        Args:
            stage: the stage being trained.
            oom_at: (stage, update) pairs, each fired once.
            step_delay: seconds to sleep per micro-step.
        """

        def __init__(self, stage: int, oom_at: list[tuple[int, int]], step_delay: float) -> None:
            super().__init__()
            self.stage, self.pending, self.step_delay = stage, oom_at, step_delay
            self.fired: list[tuple[int, int]] = []

        def on_train_batch_begin(self, batch, logs=None):
            """`batch` is the number of optimizer updates done in the stage so far."""
            if (self.stage, batch) in self.pending:
                self.pending.remove((self.stage, batch))
                self.fired.append((self.stage, batch))
                raise tf.errors.ResourceExhaustedError(
                    None, None, f"injected out-of-memory at stage {self.stage} update {batch}"
                )
            if self.step_delay:
                time.sleep(self.step_delay)

    return FaultInjection


def _pause_spec(spec: str) -> tuple[int, float]:
    try:
        write, seconds = spec.split(":")
        return int(write), float(seconds)
    except ValueError:
        raise JetxInputError(
            f"`{FAULTS_ENV}`'s `checkpoint_pause` must look like 'k:seconds'. Received: {spec!r}"
        ) from None


def active() -> Faults | None:
    """The one injection point: the faults of this process, or None (production).

    `JETX_FAULTS` is read the first time only; `injected` changes it for a block.
    """
    global _active
    if _active is _UNREAD:
        text = os.environ.get(FAULTS_ENV)
        _active = Faults.from_json(text) if text else None
    return _active


def environment(**faults: Any) -> dict[str, str]:
    """`{JETX_FAULTS: ...}` for a child process's environment, e.g. `environment(oom="1:2")`."""
    return {FAULTS_ENV: Faults(**faults).to_json()}


def retry_environment(environ: dict[str, str], attempt: int) -> dict[str, str]:
    """The environment of a stage's child at `attempt`: a retry (attempt > 1) never injects an
    out-of-memory error, so that the retry of an injected one can succeed."""
    environ = dict(environ)
    text = environ.get(FAULTS_ENV)
    if attempt > 1 and text:
        spec = json.loads(text)
        spec.pop("oom", None)
        environ[FAULTS_ENV] = json.dumps(spec)
    return environ


@contextmanager
def injected(**faults: Any) -> Iterator[Faults]:
    """Turn on `faults` in this process (and the children it starts) for the block; the hold and
    checkpoint-write counts start again from zero."""
    global _active, _checkpoint_writes
    saved_env, saved = os.environ.get(FAULTS_ENV), _active
    chosen = Faults(**faults)
    _holds.clear()
    _checkpoint_writes = 0
    os.environ[FAULTS_ENV] = chosen.to_json()
    _active = chosen
    try:
        yield chosen
    finally:
        if saved_env is None:
            os.environ.pop(FAULTS_ENV, None)
        else:
            os.environ[FAULTS_ENV] = saved_env
        _active = saved
