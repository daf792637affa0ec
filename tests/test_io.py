"""File-system primitives: one writer per directory (real processes, real SIGKILLs), atomic
writes that name the path they could not write, and the hold hook that kill tests use."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from jetx.errors import DirectoryInUseError, classify
from jetx.io import LOCK_FILE, atomic_path, exclusive, is_locked, lock_holder
from jetx.layout import RunDir
from jetx.testing import faults

ROOT = Path(__file__).resolve().parents[1]
#: A process that takes a directory's lock, says so, and keeps it until it is killed.
HOLDER = textwrap.dedent(
    """
    import sys, time
    from jetx.layout import RunDir
    with RunDir(sys.argv[1]).lock():
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
    """
)


def _holder(directory: Path, seconds: float = 600) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory), str(seconds)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_fails_at_once_naming_the_holder_until_the_holder_is_killed(tmp_path):
    run = RunDir(tmp_path / "run")
    holder = _holder(run.path)
    try:
        begin = time.monotonic()
        with pytest.raises(DirectoryInUseError) as refused, run.lock():
            pass
        assert time.monotonic() - begin < 1.0  # at once, not after a wait
        assert f"RUN_DIR {run.path} is in use by pid {holder.pid};" in str(refused.value)
        assert classify(refused.value).exit_code == 2
        assert is_locked(run.lock_file) and lock_holder(run.lock_file) == holder.pid
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert not is_locked(run.lock_file)  # the kernel dropped a dead holder's lock: never stale
    with run.lock():
        assert lock_holder(run.lock_file) == os.getpid()


def test_a_waiting_writer_gets_the_lock_when_the_holder_finishes(tmp_path):
    holder = _holder(tmp_path, seconds=1.5)
    begin = time.monotonic()
    with exclusive(tmp_path, what="FEATURES_DIR", wait=60):
        waited = time.monotonic() - begin
        assert holder.wait(timeout=10) == 0
    assert 0.5 < waited < 30
    with pytest.raises(DirectoryInUseError, match="FEATURES_DIR .* is in use by pid"):
        other = _holder(tmp_path)
        try:
            with exclusive(tmp_path, what="FEATURES_DIR", wait=0.3):
                pass
        finally:
            other.kill()
            other.wait()


def test_the_lock_is_reentrant_in_a_thread_and_exclusive_between_threads(tmp_path):
    seen = []
    with exclusive(tmp_path, what="RUN_DIR"), exclusive(tmp_path, what="RUN_DIR"):

        def other() -> None:
            try:
                with exclusive(tmp_path, what="RUN_DIR"):
                    seen.append("entered")
            except DirectoryInUseError as error:
                seen.append(str(error))

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen and "is in use by pid" in seen[0]
    assert (tmp_path / LOCK_FILE).is_file() and not is_locked(tmp_path / LOCK_FILE)


def test_a_write_that_cannot_be_made_names_the_directory_not_a_temporary_file(tmp_path):
    target = tmp_path / "missing-parent-is-a-file"
    target.write_text("a file")
    with pytest.raises(OSError) as failed, atomic_path(target / "series.parquet") as tmp:
        tmp.write_text("never")
    assert failed.value.filename == str(target)
    assert ".tmp" not in classify(failed.value).message


def test_a_failed_block_publishes_nothing_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []


def test_the_hold_hook_holds_the_named_write_until_its_file_is_removed(tmp_path):
    gate = tmp_path / "gate"
    gate.write_text("report.md#2\n")
    target = tmp_path / "report.md"

    def write_twice() -> None:
        for text in ("first", "second"):
            with atomic_path(target) as tmp:
                tmp.write_text(text)

    with faults.injected(hold=str(gate)):
        thread = threading.Thread(target=write_twice)
        thread.start()
        deadline = time.monotonic() + 30
        while not gate.read_text().startswith("held"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert gate.read_text().split() == ["held", "report.md", str(os.getpid())]
        assert target.read_text() == "first"  # the second write is held before its rename
        assert list(tmp_path.glob(".report.md.*.tmp"))
        gate.unlink()
        thread.join(timeout=30)
    assert target.read_text() == "second"
