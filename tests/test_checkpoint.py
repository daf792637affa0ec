"""Checkpoints: atomic writes (a real kill mid-write), latest/best lookup, pruning, restore."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from jetx.errors import JetxInputError
from jetx.io import TMP_PREFIX
from jetx.testing import faults
from jetx.training.checkpoint import (
    CHECKPOINTS,
    CheckpointDamagedError,
    best_checkpoint,
    checkpoint_problem,
    latest_checkpoint,
    load_state,
    remove_partial_writes,
    restore_variables,
    save_checkpoint,
    slim_checkpoint,
)
from jetx.training.resume import recover_checkpoints
from jetx.training.state import TrainState


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
    leftover = tmp_path / CHECKPOINTS / f"{TMP_PREFIX}ckpt-dead"
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
from jetx.training.checkpoint import save_checkpoint
from jetx.training.state import TrainState
class V:
    def __init__(self, x): self.x = np.asarray(x, dtype="float32"); self.shape = self.x.shape
    def numpy(self): return self.x
state = TrainState.start(stage=1, micro_batch=8, seed=0, learning_rate=1e-4)
for fill in (1.0, 2.0, 3.0):
    state.progress.updates = int(fill)
    save_checkpoint(sys.argv[1], state, {"model": [V(np.full(1000, fill))]})
"""


def test_kill_during_a_write_leaves_the_previous_checkpoint(tmp_path):
    env = {**os.environ, **faults.environment(checkpoint_pause="3:60")}
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], env=env)
    root = tmp_path / CHECKPOINTS
    deadline = time.monotonic() + 60
    while not list(root.glob(f"{TMP_PREFIX}ckpt-*/variables.npz")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert list(root.glob(f"{TMP_PREFIX}ckpt-*"))  # the third write was in progress
    latest = latest_checkpoint(tmp_path)
    assert latest.name == "ckpt-000002"
    assert load_state(latest).progress.updates == 2
    restored = {"model": [_Var(np.zeros(1000))]}
    restore_variables(latest, restored)
    assert np.all(restored["model"][0].numpy() == 2.0)


# --- issue 13: checkpoints that prove themselves -------------------------------------------


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _zero(path):
    path.write_bytes(b"")


def _flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _edit_the_seed(path):
    """A valid state.json whose shuffle seed was edited by hand (its hash left as it was)."""
    record = json.loads(path.read_text())
    record["state"]["seed"] = record["state"].get("seed", 0) + 1
    path.write_text(json.dumps(record))


DAMAGE = [
    ("variables.npz", _truncate, "variables.npz does not match its sha256"),
    ("variables.npz", _zero, "variables.npz does not match its sha256"),
    ("variables.npz", _flip_a_bit, "variables.npz does not match its sha256"),
    ("state.json", _truncate, "state.json is unreadable"),
    ("state.json", _zero, "state.json is unreadable"),
    ("state.json", lambda p: p.write_text("{}"), "state.json has no payload and state hash"),
    ("state.json", _edit_the_seed, "state.json does not match its own sha256"),
    ("state.json", lambda p: p.unlink(), "no state.json"),
    ("variables.npz", lambda p: p.unlink(), "no variables.npz"),
]


def _three(tmp_path, best_at=None):
    state = _state()
    for fill in (1.0, 2.0, 3.0):
        save_checkpoint(tmp_path, state, _vars(fill), best=fill == best_at)
    return sorted((tmp_path / CHECKPOINTS).iterdir())


@pytest.mark.parametrize(("name", "damage", "problem"), DAMAGE)
def test_a_damaged_checkpoint_is_known_before_anything_is_restored(tmp_path, name, damage, problem):
    newest = _three(tmp_path)[-1]
    assert checkpoint_problem(newest) is None
    damage(newest / name)
    assert problem in checkpoint_problem(newest)
    target = _vars(0.0)
    with pytest.raises(CheckpointDamagedError, match=f"checkpoint {newest} is damaged: "):
        restore_variables(newest, target)
    assert all(np.all(v.numpy() == 0.0) for group in target.values() for v in group)


@pytest.mark.parametrize(("name", "damage", "problem"), DAMAGE)
def test_recovery_sets_a_damaged_checkpoint_aside_and_falls_back(
    tmp_path, caplog, name, damage, problem
):
    first, second, newest = _three(tmp_path)
    damage(newest / name)
    assert recover_checkpoints(tmp_path) == second
    assert not newest.exists() and (tmp_path / "set-aside" / newest.name).is_dir()
    assert f"checkpoint {newest} is damaged ({problem}" in caplog.text
    restored = _vars(0.0)
    restore_variables(second, restored)
    assert np.all(restored["model"][0].numpy() == 2.0)


def test_a_damaged_best_checkpoint_moves_the_best_pointer_to_an_intact_one(tmp_path, caplog):
    state = _state()
    for fill, best in ((1.0, True), (2.0, True), (3.0, False), (4.0, False)):
        save_checkpoint(tmp_path, state, _vars(fill), best=best, keep_last=3)
    assert best_checkpoint(tmp_path).name == "ckpt-000002"
    _flip_a_bit(tmp_path / CHECKPOINTS / "ckpt-000002" / "variables.npz")
    newest = recover_checkpoints(tmp_path)
    assert newest.name == "ckpt-000004"
    # ckpt-000001 was pruned: no intact checkpoint that was a best is left, so the pointer
    # falls back to the newest intact one, and says that the best weights are lost.
    assert best_checkpoint(tmp_path).name == "ckpt-000004"
    assert "the best checkpoint ckpt-000002 is damaged" in caplog.text
    assert "its weights are lost" in caplog.text
    assert (tmp_path / "set-aside" / "ckpt-000002").is_dir()


def test_every_checkpoint_damaged_restarts_the_stage_and_says_so(tmp_path, caplog):
    for checkpoint in _three(tmp_path):
        _zero(checkpoint / "variables.npz")
    assert recover_checkpoints(tmp_path) is None
    assert "every checkpoint is damaged" in caplog.text
    assert "restarting the stage from its start" in caplog.text
    assert latest_checkpoint(tmp_path) is None
    assert len(list((tmp_path / "set-aside").iterdir())) == 3
    # The restarted stage writes ckpt-000001 again; a second failure sets it aside beside.
    save_checkpoint(tmp_path, _state(), _vars(5.0))
    _zero(tmp_path / CHECKPOINTS / "ckpt-000001" / "variables.npz")
    assert recover_checkpoints(tmp_path) is None
    assert (tmp_path / "set-aside" / "ckpt-000001-2").is_dir()


_FULL_DISK = """
import resource, signal, sys
import numpy as np
from jetx.training.checkpoint import save_checkpoint
from jetx.training.state import TrainState
class V:
    def __init__(self, x): self.x = np.asarray(x, dtype="float32"); self.shape = self.x.shape
    def numpy(self): return self.x
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, 1 << 16))
state = TrainState.start(stage=1, micro_batch=8, seed=0, learning_rate=1e-4)
save_checkpoint(sys.argv[1], state, {"model": [V(np.ones(100))]})
try:
    save_checkpoint(sys.argv[1], state, {"model": [V(np.ones(100_000))]})
except OSError as error:
    print(error.errno, error.filename)
"""


def test_a_checkpoint_write_that_fails_leaves_no_temporary_directory(tmp_path):
    # RLIMIT_FSIZE: writes past 64 KiB fail with EFBIG, as a full disk fails with ENOSPC.
    done = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    code, filename = done.stdout.split()
    assert int(code) == 27 and filename == str(tmp_path / CHECKPOINTS / "ckpt-000002")
    assert [p.name for p in (tmp_path / CHECKPOINTS).iterdir()] == ["ckpt-000001"]


def test_a_slim_checkpoint_keeps_the_model_verifiably_and_a_crashed_swap_is_undone(tmp_path):
    path = save_checkpoint(tmp_path, _state(updates=5), _vars(2.5), best=True)
    saved = slim_checkpoint(path)
    assert saved > 0 and checkpoint_problem(path) is None
    assert load_state(path).best_checkpoint == path.name
    model = {"model": _vars(0.0)["model"]}
    restore_variables(path, model)
    assert all(np.all(v.numpy() == 2.5) for v in model["model"])
    with pytest.raises(JetxInputError, match="holds 0 optimizer variables"):
        restore_variables(path, {"optimizer": _vars(0.0)["optimizer"]})
    # A crash between the swap's two renames: the checkpoint is put back by the next call.
    fat = path.with_name(f"{TMP_PREFIX}fat-{path.name}")
    path.rename(fat)
    assert slim_checkpoint(path) == 0 and not fat.exists()
    assert checkpoint_problem(path) is None
    (path / "variables.npz").write_bytes(b"damaged")
    with pytest.raises(CheckpointDamagedError, match="does not match its sha256"):
        slim_checkpoint(path)
    assert (path / "variables.npz").read_bytes() == b"damaged"  # left as it was
