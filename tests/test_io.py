"""File-system primitives: one writer per directory (real processes, real SIGKILLs), atomic
writes that name the path they could not write, and the hold hook that kill tests use."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from jetx.errors import DirectoryInUseError, JetxInputError, classify
from jetx.io import LOCK_FILE, TMP_PREFIX, atomic_path, exclusive, is_locked, lock_holder
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
        assert list(tmp_path.glob(f"{TMP_PREFIX}report.md.*.tmp"))
        gate.unlink()
        thread.join(timeout=30)
    assert target.read_text() == "second"


def test_the_sweep_removes_only_jetx_temporary_files_outside_hidden_and_locked_dirs(tmp_path):
    ours = [tmp_path / f"{TMP_PREFIX}a.json.x1.tmp", tmp_path / "sub" / f"{TMP_PREFIX}b.tmp"]
    foreign = [
        tmp_path / ".draft.tmp",  # a user's own temporary file
        tmp_path / ".lock",  # a source file of that name (jetx's lock is .jetx.lock)
        tmp_path / ".cache" / ".session.tmp",  # another program's folder
        tmp_path / ".cache" / f"{TMP_PREFIX}c.tmp",  # never inside a hidden directory
        tmp_path / f"{TMP_PREFIX}staging-run-x" / f"{TMP_PREFIX}d.tmp",  # a running export's
        tmp_path / "locked" / f"{TMP_PREFIX}e.tmp",  # a directory with a lock of its own
    ]
    for path in ours + foreign:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("keep me")
    (tmp_path / "locked" / LOCK_FILE).write_text("")
    with exclusive(tmp_path, what="RUN_DIR"):
        pass
    assert [p for p in ours if p.exists()] == []
    assert all(p.read_text() == "keep me" for p in foreign)


def test_a_symlinked_lock_is_refused_in_one_line_and_its_target_is_untouched(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("do not truncate\n")
    out = tmp_path / "series"
    out.mkdir()
    (out / LOCK_FILE).symlink_to(target)
    (tmp_path / "h.csv").write_text("id,value\n1,1.5\n")
    done = subprocess.run(
        [sys.executable, "-m", "jetx", "ingest", str(tmp_path / "h.csv"), "--out", str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "is a symbolic link; jetx does not follow it" in lines[0]
    assert target.read_text() == "do not truncate\n"


def test_a_foreign_file_named_as_the_lock_is_refused_and_never_truncated(tmp_path):
    (tmp_path / LOCK_FILE).write_text("my notes, not a pid\n")
    with (
        pytest.raises(JetxInputError, match="is not a jetx lock file"),
        exclusive(tmp_path, what="RUN_DIR"),
    ):
        pass
    assert (tmp_path / LOCK_FILE).read_text() == "my notes, not a pid\n"


def test_an_atomic_write_fsyncs_the_file_and_then_its_directory(tmp_path, monkeypatch):
    synced = []
    real = os.fsync

    def counting(fd):
        synced.append(os.fstat(fd).st_mode)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    with atomic_path(tmp_path / "out.json") as tmp:
        tmp.write_text("{}")
    assert [stat.S_ISREG(m) for m in synced] == [True, False]  # the file, then its directory
    assert stat.S_ISDIR(synced[1])
