"""Checkpoints: atomic writes (a real kill mid-write), latest/best lookup, pruning, restore."""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jetx.errors import JetxInputError
from jetx.training.checkpoint import (
    CHECKPOINTS,
    PAUSE_ENV,
    TrainState,
    best_checkpoint,
    latest_checkpoint,
    load_state,
    remove_partial_writes,
    restore_variables,
    save_checkpoint,
)


class _Var:
    """A variable as checkpoints see it: `numpy()`, `shape`, `assign()` (tf.Variable's API)."""

    def __init__(self, value):
        self.value = np.asarray(value, dtype="float32")
        self.shape = self.value.shape

    def numpy(self):
        return self.value

    def assign(self, value):
        self.value = np.asarray(value, dtype="float32")


def _state(**progress) -> TrainState:
    state = TrainState.start(stage=1, micro_batch=8, seed=0, learning_rate=1e-4)
    state.progress = dataclasses.replace(state.progress, **progress)
    return state


def _vars(fill: float) -> dict:
    return {"model": [_Var(np.full((2, 3), fill)), _Var([fill])], "optimizer": [_Var(fill)]}


def test_round_trip_of_variables_and_state(tmp_path):
    state = _state(epoch=3, samples_in_epoch=128, updates=17)
    path = save_checkpoint(tmp_path, state, _vars(1.5))
    assert path == latest_checkpoint(tmp_path)
    loaded = load_state(path)
    assert loaded == state and loaded.sequence == 1
    target = _vars(0.0)
    restore_variables(path, target)
    assert all(np.all(v.numpy() == 1.5) for group in target.values() for v in group)


def test_latest_is_the_newest_and_leftovers_are_ignored(tmp_path):
    state = _state()
    for fill in (1.0, 2.0):
        save_checkpoint(tmp_path, state, _vars(fill))
    leftover = tmp_path / CHECKPOINTS / ".tmp-ckpt-dead"
    leftover.mkdir()
    (leftover / "variables.npz").write_bytes(b"half a file")
    assert latest_checkpoint(tmp_path).name == "ckpt-000002"
    assert leftover.exists()  # an observer's look-up never touches a write in progress
    assert remove_partial_writes(tmp_path) == [leftover]
    assert not leftover.exists()


@pytest.mark.parametrize(("keep_last", "best_at", "kept"), [(2, 1, [1, 4, 5]), (3, 5, [3, 4, 5])])
def test_prune_keeps_the_last_k_and_the_best(tmp_path, keep_last, best_at, kept):
    state = _state()
    for seq in range(1, 6):
        save_checkpoint(tmp_path, state, _vars(seq), best=seq == best_at, keep_last=keep_last)
    names = sorted(p.name for p in (tmp_path / CHECKPOINTS).iterdir())
    assert names == [f"ckpt-{s:06d}" for s in kept]
    assert best_checkpoint(tmp_path).name == f"ckpt-{best_at:06d}"


def test_no_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    assert best_checkpoint(tmp_path) is None


def test_restore_into_another_model_names_the_mismatch(tmp_path):
    path = save_checkpoint(tmp_path, _state(), _vars(1.0))
    with pytest.raises(JetxInputError, match="holds 2 model variables.*has 3"):
        restore_variables(path, {"model": [_Var(0), _Var(0), _Var(0)]})
    with pytest.raises(JetxInputError, match=r"has shape \(2, 3\); expected \(3, 2\)"):
        restore_variables(path, {"model": [_Var(np.zeros((3, 2))), _Var([0.0])]})


_WRITER = """
import sys
import numpy as np
from jetx.training.checkpoint import TrainState, save_checkpoint
class V:
    def __init__(self, x): self.x = np.asarray(x, dtype="float32"); self.shape = self.x.shape
    def numpy(self): return self.x
state = TrainState.start(stage=1, micro_batch=8, seed=0, learning_rate=1e-4)
for fill in (1.0, 2.0, 3.0):
    state.progress.updates = int(fill)
    save_checkpoint(sys.argv[1], state, {"model": [V(np.full(1000, fill))]})
"""


def test_kill_during_a_write_leaves_the_previous_checkpoint(tmp_path):
    env = {**os.environ, PAUSE_ENV: "3:60"}
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], env=env)
    root = tmp_path / CHECKPOINTS
    deadline = time.monotonic() + 60
    while not list(root.glob(".tmp-ckpt-*/variables.npz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert list(root.glob(".tmp-ckpt-*"))  # the third write was in progress
    latest = latest_checkpoint(tmp_path)
    assert latest.name == "ckpt-000002"
    assert load_state(latest).progress.updates == 2
    restored = {"model": [_Var(np.zeros(1000))]}
    restore_variables(latest, restored)
    assert np.all(restored["model"][0].numpy() == 2.0)
