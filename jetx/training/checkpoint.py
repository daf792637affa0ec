"""Atomic training checkpoints that prove themselves, and the resume state they carry.

A checkpoint is a directory `RUN_DIR/stage{N}/checkpoints/ckpt-{seq:06d}` holding
`variables.npz` (model variables, including batch-norm statistics and dropout seed states;
optimizer variables; the accumulator's gradients, count and loss scale) and `state.json`: a
`TrainState` (epoch, samples consumed in the epoch, updates, micro-batch in use, shuffle seed,
early-stopping and plateau state), the sha256 of `variables.npz`, and the sha256 of state.json's
own content (`state_sha256`, over every other key as canonical JSON), so that an edited seed or
epoch is damage like a flipped bit in the variables. It is written under a
temporary name and renamed into place, so a crash in the middle of a write leaves the previous
checkpoint as the latest usable one; a write that fails removes its temporary directory.
Each state names the checkpoint with the best validation loss so far (itself, when it is the
best), so the pointer is as atomic as the checkpoint; pruning keeps it and the last k.

A checkpoint is intact when `checkpoint_problem` finds nothing: its state parses and its
variables match their hash, so a truncated, zeroed or bit-flipped file is known before any value
is restored. `restore_variables` checks this first; what a resume does with a damaged checkpoint
is `jetx.training.resume.recover_checkpoints`'s job.

A finished stage's best checkpoint is all that evaluation, export and the next stage read, and
they read its model variables only: `slim_checkpoint` rewrites it without the optimizer slots
and accumulators (a new payload hash, so it stays verifiable), for runs that retention prunes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from jetx.errors import JetxInputError
from jetx.io import TMP_PREFIX, error_at, fsync_dir, sha256_file, write_json
from jetx.layout import StageDir
from jetx.testing import faults
from jetx.training.state import TrainState

logger = logging.getLogger(__name__)

CHECKPOINTS = StageDir.CHECKPOINTS
STATE_FILE = "state.json"
VARIABLES_FILE = "variables.npz"
_PREFIX = "ckpt-"
_TMP_PREFIX = f"{TMP_PREFIX}ckpt-"
#: What names the two sides of `slim_checkpoint`'s swap while it runs.
_SWAP_MARKS = (f"{TMP_PREFIX}fat-", f"{TMP_PREFIX}slim-")
#: state.json's layout: {"format": 3, "payload": {file: sha256}, "state": TrainState,
#: "state_sha256": sha256 of the rest}. Format 2 had no `state_sha256`.
FORMAT = 3
SEAL = "state_sha256"


class CheckpointDamagedError(JetxInputError):
    """A checkpoint whose state does not parse or whose variables do not match their hash."""


def save_checkpoint(
    directory: Path,
    state: TrainState,
    variables: dict[str, list],
    *,
    best: bool = False,
    keep_last: int = 3,
) -> Path:
    """Write a checkpoint atomically, mark it best if asked, and prune older ones.

    Args:
        directory: the stage's directory (`RunDir.stage(n).path`).
        state: the resume state; its `sequence` is advanced here.
        variables: groups of variables (e.g. "model", "optimizer", "accumulator"), each a list
            of Keras or tf variables in a stable order.
        best: this checkpoint has the best validation loss so far.
        keep_last: how many of the newest checkpoints to keep, besides the best.

    Returns:
        The checkpoint's directory.
    """
    root = Path(directory) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    state.sequence += 1
    final = root / f"{_PREFIX}{state.sequence:06d}"
    if best:
        state.best_checkpoint = final.name
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    try:
        _write(tmp, state, variables)
        os.replace(tmp, final)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)  # a disk-full run gets its space back
        if isinstance(error, OSError) and error.filename in (None, str(tmp)):
            raise error_at(error, final) from None
        raise
    fsync_dir(root)
    _prune(Path(directory), keep_last)
    logger.debug(
        "checkpoint %s (epoch %d, update %d)", final, state.progress.epoch, state.progress.updates
    )
    return final


def _write(tmp: Path, state: TrainState, variables: dict[str, list]) -> None:
    arrays = {
        f"{group}/{i:05d}": np.asarray(v.numpy())
        for group, items in variables.items()
        for i, v in enumerate(items)
    }
    with open(tmp / VARIABLES_FILE, "wb") as handle:
        np.savez(handle, **arrays)
        handle.flush()
        os.fsync(handle.fileno())
    payload = {VARIABLES_FILE: sha256_file(tmp / VARIABLES_FILE)}
    if (injected := faults.active()) is not None:  # a test's hooks, None in production
        injected.pause_in_checkpoint_write(tmp)
        injected.hold_before_publishing(STATE_FILE)
    with open(tmp / STATE_FILE, "w", encoding="utf-8") as handle:
        json.dump(_sealed({"format": FORMAT, "payload": payload, "state": state.to_dict()}), handle)
        handle.flush()
        os.fsync(handle.fileno())


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint of a stage, or None. Safe to call while a run writes."""
    root = Path(directory) / CHECKPOINTS
    if not root.is_dir():
        return None
    complete = [p for p in _checkpoints(root) if (p / STATE_FILE).is_file()]
    return complete[-1] if complete else None


def remove_partial_writes(directory: Path) -> list[Path]:
    """Delete the temporary directories of checkpoint writes that a crash interrupted.

    Only the process that owns the stage may call this (before it writes), never an observer.

    Returns:
        The directories removed.
    """
    leftovers = sorted((Path(directory) / CHECKPOINTS).glob(f"{_TMP_PREFIX}*"))
    for leftover in leftovers:
        shutil.rmtree(leftover, ignore_errors=True)
    return leftovers


def best_checkpoint(directory: Path) -> Path | None:
    """The checkpoint with the best validation loss of a stage, or None."""
    latest = latest_checkpoint(directory)
    name = load_state(latest).best_checkpoint if latest else None
    return Path(directory) / CHECKPOINTS / name if name else None


def checkpoints(directory: Path) -> list[Path]:
    """Every checkpoint directory of a stage (not the temporary ones of writes), oldest first."""
    root = Path(directory) / CHECKPOINTS
    return _checkpoints(root) if root.is_dir() else []


def newest_intact(directory: Path) -> Path | None:
    """The newest checkpoint that `checkpoint_problem` accepts (nothing is moved), or None."""
    return next((c for c in reversed(checkpoints(directory)) if not checkpoint_problem(c)), None)


def checkpoint_problem(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be trusted (state unreadable, variables not matching their
    sha256), or None when it is intact."""
    try:
        record = _read_record(Path(checkpoint))
    except CheckpointDamagedError as error:
        return str(error)
    variables = Path(checkpoint) / VARIABLES_FILE
    if not variables.is_file():
        return f"no {VARIABLES_FILE}"
    if sha256_file(variables) != record["payload"].get(VARIABLES_FILE):
        return f"{VARIABLES_FILE} does not match its sha256 in {STATE_FILE} (truncated or damaged)"
    return None


def _read_record(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / STATE_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointDamagedError(f"no {STATE_FILE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointDamagedError(f"{STATE_FILE} is unreadable ({error})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointDamagedError(
            f"{STATE_FILE} has no payload and state hash (format {FORMAT}); an older jetx wrote it"
        )
    if record.get(SEAL) != _digest(record):
        raise CheckpointDamagedError(
            f"{STATE_FILE} does not match its own sha256 ({SEAL}): edited or damaged"
        )
    try:
        record["train_state"] = TrainState.from_dict(record["state"])
    except (KeyError, TypeError, AttributeError) as error:
        raise CheckpointDamagedError(f"{STATE_FILE} holds no training state ({error})") from None
    return record


def _digest(record: dict[str, Any]) -> str:
    """The sha256 of a state record's canonical JSON, `SEAL` and the parsed state left out."""
    body = {k: v for k, v in record.items() if k not in (SEAL, "train_state")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sealed(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with its own sha256 (`SEAL`), as state.json keeps it."""
    return {**record, SEAL: _digest(record)}


def load_state(checkpoint: Path) -> TrainState:
    """The `TrainState` stored in a checkpoint.

    Raises:
        CheckpointDamagedError: its state.json is missing, not JSON or not a training state.
    """
    try:
        return _read_record(Path(checkpoint))["train_state"]
    except CheckpointDamagedError as error:
        raise CheckpointDamagedError(f"checkpoint {checkpoint}: {error}") from None


def point_best(checkpoint: Path, best: str | None) -> None:
    """Rewrite a checkpoint's best pointer (its state.json, atomically), after the checkpoint
    it named was set aside."""
    record = _read_record(Path(checkpoint))
    state = record.pop("train_state")
    state.best_checkpoint = best
    record["state"] = state.to_dict()
    write_json(Path(checkpoint) / STATE_FILE, _sealed(record))


def restore_variables(checkpoint: Path, variables: dict[str, list]) -> None:
    """Assign a checkpoint's stored values to the given variable groups, once it proved intact.

    Raises:
        CheckpointDamagedError: the checkpoint's state or variables are damaged.
        JetxInputError: the checkpoint holds a different number or shape of variables (it was
            written for another model config or variant).
    """
    problem = checkpoint_problem(checkpoint)
    if problem is not None:
        raise CheckpointDamagedError(f"checkpoint {checkpoint} is damaged: {problem}")
    try:
        _restore(Path(checkpoint), variables)
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError, OSError) as error:
        raise CheckpointDamagedError(
            f"checkpoint {checkpoint} is damaged: {VARIABLES_FILE} ({error})"
        ) from None


def _restore(checkpoint: Path, variables: dict[str, list]) -> None:
    with np.load(checkpoint / VARIABLES_FILE) as stored:
        for group, items in variables.items():
            keys = sorted(k for k in stored.files if k.startswith(f"{group}/"))
            if len(keys) != len(items):
                raise JetxInputError(
                    f"checkpoint {checkpoint} holds {len(keys)} {group} variables; the model "
                    f"being trained has {len(items)}. Was it written for another variant?"
                )
            for key, variable in zip(keys, items, strict=True):
                value = stored[key]
                if tuple(value.shape) != tuple(variable.shape):
                    raise JetxInputError(
                        f"checkpoint {checkpoint}: {group} variable {key} has shape "
                        f"{value.shape}; expected {tuple(variable.shape)}."
                    )
                variable.assign(value)


def slim_checkpoint(checkpoint: Path, groups: tuple[str, ...] = ("model",)) -> int:
    """Rewrite an intact checkpoint with only `groups`' variables, under the same name.

    The slim copy is written beside it, then swapped in by two renames; a crash between them
    leaves `<TMP_PREFIX>fat-<name>` and `<TMP_PREFIX>slim-<name>`, which the next call puts
    back. It can be evaluated, exported and started from, not resumed (no optimizer state).

    Returns:
        Bytes saved.

    Raises:
        CheckpointDamagedError: the checkpoint is damaged (it is left as it is).
    """
    checkpoint = Path(checkpoint)
    fat, slim = (checkpoint.with_name(f"{mark}{checkpoint.name}") for mark in _SWAP_MARKS)
    if fat.is_dir() and not checkpoint.exists():
        os.rename(fat if not (slim / STATE_FILE).is_file() else slim, checkpoint)
    shutil.rmtree(fat, ignore_errors=True)
    shutil.rmtree(slim, ignore_errors=True)
    problem = checkpoint_problem(checkpoint)
    if problem is not None:
        raise CheckpointDamagedError(f"checkpoint {checkpoint} is damaged: {problem}")
    before = (checkpoint / VARIABLES_FILE).stat().st_size
    record = _read_record(checkpoint)
    record.pop("train_state")
    slim.mkdir()
    with np.load(checkpoint / VARIABLES_FILE) as stored:
        kept = {k: stored[k] for k in stored.files if k.split("/", 1)[0] in groups}
    with open(slim / VARIABLES_FILE, "wb") as handle:
        np.savez(handle, **kept)
        handle.flush()
        os.fsync(handle.fileno())
    record["payload"] = {VARIABLES_FILE: sha256_file(slim / VARIABLES_FILE)}
    record["groups"] = list(groups)
    write_json(slim / STATE_FILE, _sealed(record))
    os.rename(checkpoint, fat)
    os.rename(slim, checkpoint)
    shutil.rmtree(fat)
    fsync_dir(checkpoint.parent)
    return before - (checkpoint / VARIABLES_FILE).stat().st_size


def _checkpoints(root: Path) -> list[Path]:
    return sorted(p for p in root.glob(f"{_PREFIX}*") if p.is_dir())


def _prune(directory: Path, keep_last: int) -> None:
    best = best_checkpoint(directory)
    old = _checkpoints(directory / CHECKPOINTS)[: -max(keep_last, 1)]
    for path in old:
        if best is None or path.name != best.name:
            shutil.rmtree(path, ignore_errors=True)
