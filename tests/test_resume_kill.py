"""Exact resume after a real SIGKILL: mid-epoch at random updates, and in the middle of a write.

Each run is `jetx train` on the tiny preset in a subprocess with deterministic ops and a fixed
seed. A killed run is restarted until it finishes; its final model, optimizer and accumulator
values must equal those of an uninterrupted run (max abs difference < 1e-6), and its
metrics.jsonl must hold each epoch once.
"""

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jetx.io import TMP_PREFIX
from jetx.layout import RunDir
from jetx.testing import faults
from jetx.training.checkpoint import (
    CHECKPOINTS,
    latest_checkpoint,
    load_state,
)
from jetx.training.epoch_history import read_records

ARGS = ("--preset", "tiny", "--variant", "full", "--stages", "1", "--seed", "0")
ARGS += ("--checkpoint-every", "1", "--deterministic", "--quiet")
TIMEOUT = 300


def _start(
    features: Path, run_dir: Path, log: Path, extra: tuple[str, ...] = (), **env: str
) -> subprocess.Popen:
    command = [sys.executable, "-m", "jetx", "train", str(features), "--out", str(run_dir), *ARGS]
    command += extra
    with open(log, "ab") as handle:
        return subprocess.Popen(
            command, env={**os.environ, **env}, stdout=handle, stderr=subprocess.STDOUT
        )


def _sequence(run_dir: Path) -> int:
    latest = latest_checkpoint(RunDir(run_dir).stage(1).path)
    return load_state(latest).sequence if latest else 0


def _wait_until(condition, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.02)


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def _finish(
    features: Path, run_dir: Path, log: Path, extra: tuple[str, ...] = (), **env: str
) -> dict[str, np.ndarray]:
    process = _start(features, run_dir, log, extra, **env)
    assert process.wait(TIMEOUT) == 0, log.read_text()[-3000:]
    return _variables(run_dir)


def _variables(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(latest_checkpoint(RunDir(run_dir).stage(1).path) / "variables.npz") as stored:
        return {key: stored[key] for key in stored.files}


def _assert_same(resumed: dict, reference: dict) -> None:
    assert resumed.keys() == reference.keys()
    worst = max(float(np.max(np.abs(resumed[k] - reference[k]), initial=0)) for k in reference)
    assert worst < 1e-6


@pytest.fixture(scope="module")
def features(tiny_features):
    return tiny_features  # the session's (tests/conftest.py); the runs only read it


@pytest.fixture(scope="module")
def reference(features, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    return _finish(features, root / "run", root / "log.txt")


@pytest.mark.e2e  # two kills: the fast tier keeps one (in a checkpoint write)
def test_kills_at_random_updates_resume_exactly(features, reference, tmp_path):
    rng = random.Random(20240605)
    run_dir, log = tmp_path / "run", tmp_path / "log.txt"
    resumed_at = []
    for _ in range(2):
        process = _start(features, run_dir, log, **faults.environment(step_delay=0.05))
        first = _sequence(run_dir)
        _wait_until(lambda first=first: _sequence(run_dir) >= first + 2, process)
        time.sleep(rng.uniform(0.0, 0.8))
        _kill(process)
        state = load_state(latest_checkpoint(RunDir(run_dir).stage(1).path))
        progress = state.progress
        resumed_at.append((progress.epoch, progress.samples_in_epoch, progress.updates))
        assert not progress.finished
    assert resumed_at[1][2] > resumed_at[0][2]  # the second run went on from the first kill
    _assert_same(_finish(features, run_dir, log), reference)
    assert log.read_text().count("resuming from ckpt-") == 2
    records = read_records(run_dir / "metrics.jsonl")
    assert [(r["stage"], r["epoch"]) for r in records] == [(1, 0), (1, 1)]


@pytest.mark.portable
def test_kill_during_a_checkpoint_write_resumes_exactly(features, reference, tmp_path):
    run_dir, log = tmp_path / "run", tmp_path / "log.txt"
    process = _start(features, run_dir, log, **faults.environment(checkpoint_pause="4:120"))
    root = RunDir(run_dir).stage(1).path / CHECKPOINTS
    tmp = f"{TMP_PREFIX}ckpt-*/*.npz"
    paused = lambda: (root / "ckpt-000003").is_dir() and list(root.glob(tmp))  # noqa: E731
    _wait_until(paused, process)
    time.sleep(0.5)  # well inside the 120 s pause of the fourth write
    _kill(process)
    assert [p.name for p in sorted(root.glob("ckpt-*"))][-1] == "ckpt-000003"
    assert list(root.glob(f"{TMP_PREFIX}ckpt-*"))  # the fourth write died half done
    _assert_same(_finish(features, run_dir, log), reference)
    assert not list(root.glob(f"{TMP_PREFIX}ckpt-*"))


# --- issue 13: one writer per run directory, and checkpoints that prove themselves ----------


def _held(gate: Path, process: subprocess.Popen) -> None:
    _wait_until(lambda: gate.read_text().startswith("held"), process)


def _flip_a_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _cut(path: Path, size: int | None = None) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2 if size is None else size])


@pytest.fixture(scope="module")
def interrupted(features, tmp_path_factory):
    """A run killed in its tenth checkpoint write (after update 8), while a second `jetx train`
    on the same run directory was refused; returns the run dir, its log and the refusal."""
    root = tmp_path_factory.mktemp("interrupted")
    run_dir, log, gate = root / "run", root / "log.txt", root / "gate"
    gate.write_text("state.json#10\n")
    first = _start(features, run_dir, log, **faults.environment(hold=str(gate)))
    try:
        _held(gate, first)
        before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
        began = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "jetx", "train", str(features), "--out", str(run_dir), *ARGS],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        refused_after = time.monotonic() - began
        after = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    finally:
        _kill(first)
    return run_dir, log, second, refused_after, before == after, first.pid


def test_a_second_jetx_train_on_a_run_dir_in_use_refuses_at_once_touching_nothing(interrupted):
    run_dir, _, second, seconds, untouched, holder = interrupted
    assert second.returncode == 2, second.stderr
    assert second.stderr.strip().splitlines()[-1] == (
        f"jetx train: error: RUN_DIR {run_dir} is in use by pid {holder}; wait for that "
        "process to finish or choose another directory"
    )
    assert untouched  # not one file of the first run was written by the second
    assert seconds < 60  # at once: the time to start Python and TensorFlow, no training


def _copy(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to, symlinks=True)
    return to


def test_damaged_newest_checkpoints_resume_from_the_newest_intact_one_exactly(
    interrupted, features, reference, tmp_path
):
    run_dir = _copy(interrupted[0], tmp_path / "run")
    root = RunDir(run_dir).stage(1).path / CHECKPOINTS
    assert [p.name for p in sorted(root.glob("ckpt-*"))] == [
        "ckpt-000006",  # the best: the end of epoch 1
        "ckpt-000007",
        "ckpt-000008",
        "ckpt-000009",
    ]
    assert list(root.glob(f"{TMP_PREFIX}ckpt-*"))  # the tenth write, killed half done
    _flip_a_bit(root / "ckpt-000009" / "variables.npz")
    _cut(root / "ckpt-000008" / "state.json")
    _cut(root / "ckpt-000007" / "variables.npz")
    log = tmp_path / "log.txt"
    _assert_same(_finish(features, run_dir, log), reference)
    text = log.read_text()
    for name, problem in (
        ("ckpt-000009", "variables.npz does not match its sha256"),
        ("ckpt-000008", "state.json is unreadable"),
        ("ckpt-000007", "variables.npz does not match its sha256"),
    ):
        assert f"{root / name} is damaged ({problem}" in text, name
    assert "stage 1: resuming from ckpt-000006 (epoch 2, 0 samples into it, update 4" in text
    assert "Traceback" not in text
    assert len(list((RunDir(run_dir).stage(1).path / "set-aside").iterdir())) == 3


def test_every_checkpoint_damaged_restarts_the_stage_and_ends_the_same(
    interrupted, features, reference, tmp_path
):
    run_dir = _copy(interrupted[0], tmp_path / "run")
    for checkpoint in (RunDir(run_dir).stage(1).path / CHECKPOINTS).glob("ckpt-*"):
        _cut(checkpoint / "variables.npz", size=0)  # zero-length
    log = tmp_path / "log.txt"
    _assert_same(_finish(features, run_dir, log), reference)
    text = log.read_text()
    assert "every checkpoint is damaged" in text and "restarting the stage from its start" in text
    assert "resuming from" not in text and "Traceback" not in text
