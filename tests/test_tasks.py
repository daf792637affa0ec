"""Tasks: records of real ingest/feature runs, the content cache, and the OOM retry policy."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import prefect_env  # noqa: F401  (isolates Prefect before it is imported)
import pytest
from prefect import flow
from prefect.logging import disable_run_logger
from prefect.states import Completed, Failed
from prefect.testing.utilities import prefect_test_harness

from jetx.config import get_preset
from jetx.data.synth import synthesize, write_csv
from jetx.errors import JetxInputError
from jetx.io import sha256_file
from tasks.child_process import ChildExit
from tasks.data import load_raw
from tasks.features import build_features_task
from tasks.stage import ChildKilled, OutOfMemory, _outcome, is_retryable
from tasks.stage_child import _halved, failure_line

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def harness():
    """This module's own Prefect test harness, closed when the module ends (not one per session:
    tests/conftest.py says why)."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "history.csv"
    write_csv(path, synthesize(3000, seed=1))
    return path


@flow
def _prepare(source: Path, out: Path):
    data = load_raw(source, out, return_state=True)
    features = build_features_task(data.result(), out, return_state=True)
    return data, features


def _names(states) -> list[str]:
    return [state.name for state in states]


def test_load_raw_and_build_features_return_hashed_records(history: Path, tmp_path: Path):
    with disable_run_logger():
        data = load_raw.fn(history, tmp_path)
        features = build_features_task.fn(data, tmp_path)
    assert (data.rows_read, data.rows_kept, data.rows_quarantined) == (3000, 3000, 0)
    assert data.content_sha256 == sha256_file(history)  # a CSV's digest: the bytes parsed
    assert data.directory.parent == tmp_path / "data"
    assert sorted(features.files) == [
        "features.parquet",
        "manifest.json",
        "scaler.json",
        "series.parquet",
    ]
    assert sum(features.samples.values()) == 3000 - 1000
    assert features.problem() is None


def test_unchanged_rerun_hits_the_cache_and_a_changed_source_recomputes(history, tmp_path):
    # The data task always reads (its key is what it read); everything after it is cached.
    assert _names(_prepare(history, tmp_path)) == ["Completed", "Completed"]
    written = (tmp_path / "data").iterdir().__next__() / "series.parquet"
    before = written.stat().st_mtime_ns
    assert _names(_prepare(history, tmp_path)) == ["Completed", "Cached"]
    assert written.stat().st_mtime_ns == before  # the same snapshot is not written again
    write_csv(history, synthesize(3000, seed=2))
    data, features = _prepare(history, tmp_path)
    assert _names((data, features)) == ["Completed", "Completed"]
    assert len(list((tmp_path / "data").iterdir())) == 2


def test_deleted_output_is_rebuilt_not_served_from_the_cache(history, tmp_path):
    _, features = _prepare(history, tmp_path)
    written = features.result().path("features.parquet")
    written.unlink()
    data, features = _prepare(history, tmp_path)
    assert _names((data, features)) == ["Completed", "Completed"]
    assert written.is_file() and features.result().problem() is None
    assert _names(_prepare(history, tmp_path)) == ["Completed", "Cached"]


def test_changed_output_is_rebuilt(history, tmp_path):
    data, _ = _prepare(history, tmp_path)
    data.result().path("series.parquet").write_bytes(b"not parquet")
    assert _names(_prepare(history, tmp_path)) == ["Completed", "Completed"]


@pytest.mark.parametrize(
    ("state", "retried"),
    [
        (Failed(data=OutOfMemory("killed by SIGKILL")), True),
        (Failed(data=ChildKilled("killed by SIGTERM")), True),
        (Failed(data=ValueError("bad micro-batch")), False),
        (Failed(data=RuntimeError("Stage 2 failed (exit 1)")), False),
        (Completed(data=None), False),
    ],
)
def test_retry_condition_accepts_only_out_of_memory_and_a_killed_child(state, retried):
    assert is_retryable(None, None, state) is retried


def test_a_retry_halves_the_schedules_micro_batch_when_nothing_was_checkpointed():
    stage = get_preset("tiny").stages[0]
    assert _halved(stage, None) == stage.micro_batch // 2


def test_no_retry_below_micro_batch_one():
    stage = get_preset("tiny").stages[2].with_micro_batch(1)
    with pytest.raises(JetxInputError, match="ran out of memory at micro-batch 1; it cannot be"):
        _halved(stage, None)


# --- issue 13: keys from what was read, one computation per key, JSON records ---------------

#: An app that commits rounds to its WAL database and keeps its connection (the rows stay in
#: the -wal file, the main file unchanged), until its stdin closes.
WAL_WRITER = textwrap.dedent(
    """
    import sqlite3, sys
    connection = sqlite3.connect(sys.argv[1])
    connection.execute("PRAGMA wal_autocheckpoint=0")
    with connection:
        connection.executemany(
            "INSERT INTO jetx_results VALUES (?, ?)", [(i, 2.5) for i in range(1200, 1400)]
        )
    print("committed", flush=True)
    sys.stdin.read()
    """
)


def test_rows_a_writer_commits_to_the_wal_between_two_flow_runs_are_ingested(tmp_path):
    source = tmp_path / "history.db"
    values = synthesize(1200, seed=4).tolist()
    with sqlite3.connect(source) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE jetx_results (id INTEGER PRIMARY KEY, value REAL)")
        connection.executemany("INSERT INTO jetx_results VALUES (?, ?)", enumerate(values))
    with sqlite3.connect(source) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data, features = _prepare(source, tmp_path)
    assert _names((data, features)) == ["Completed", "Completed"]
    assert data.result().rows_kept == 1200 and features.result().samples["train"] == 140
    main_file = sha256_file(source)
    writer = subprocess.Popen(
        [sys.executable, "-c", WAL_WRITER, str(source)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "committed"
        assert sha256_file(source) == main_file  # the new rows are in the WAL only
        again, rebuilt = _prepare(source, tmp_path)
        unchanged = _prepare(source, tmp_path)
    finally:
        writer.communicate("", timeout=30)
    assert _names((again, rebuilt)) == ["Completed", "Completed"]  # not a stale cache hit
    assert again.result().rows_kept == 1400 and rebuilt.result().samples["train"] == 280
    assert again.result().directory != data.result().directory
    assert _names(unchanged) == ["Completed", "Cached"]


def test_records_in_the_result_storage_are_json_and_never_pickles(history, tmp_path):
    _prepare(history, tmp_path)
    storage = Path(os.environ["PREFECT_LOCAL_STORAGE_PATH"])
    stored = [p for p in storage.iterdir() if p.is_file()]
    assert stored
    for path in stored:
        record = json.loads(path.read_text())  # a pickle would not parse
        assert record["metadata"]["serializer"]["type"] == "json", path
        result = json.loads(record["result"])
        assert result["__class__"].startswith("tasks.records."), path


#: A process that takes a cache key's lock in this session's result storage and keeps it.
KEY_HOLDER = textwrap.dedent(
    """
    import sys, time
    from tasks.caching import KEY_LOCKS  # the parent's PREFECT_* settings, so its lock files
    assert KEY_LOCKS.acquire_lock(sys.argv[1], holder="other-process")
    print("held", flush=True)
    time.sleep(600)
    """
)


def test_a_cache_keys_lock_excludes_other_processes_and_dies_with_its_holder():
    from tasks.caching import KEY_LOCKS

    holder = subprocess.Popen(
        [sys.executable, "-c", KEY_HOLDER, "key-under-test"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        assert KEY_LOCKS.is_locked("key-under-test")
        assert not KEY_LOCKS.acquire_lock("key-under-test", holder="me", acquire_timeout=0.5)
        assert not KEY_LOCKS.wait_for_lock("key-under-test", timeout=0.5)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # A SIGKILLed holder leaves no stale lock (Prefect's FileSystemLockManager would).
    assert KEY_LOCKS.wait_for_lock("key-under-test", timeout=5)
    assert KEY_LOCKS.acquire_lock("key-under-test", holder="me", acquire_timeout=0)
    assert KEY_LOCKS.is_lock_holder("key-under-test", "me")
    KEY_LOCKS.release_lock("key-under-test", holder="me")
    assert not KEY_LOCKS.is_locked("key-under-test")


# --- issue 13: error classes, the child included --------------------------------------------


@pytest.mark.parametrize(
    ("error", "line", "code"),
    [
        (JetxInputError("h.csv: no `value` column"), "input: JetxInputError: h.csv: no", 2),
        (
            OSError(28, "No space left on device", "/runs/ckpt-000004"),
            "machine: OSError: /runs/ckpt-000004: No space left on device (ENOSPC)",
            1,
        ),
        (MemoryError("Unable to allocate 2 GiB"), "out of memory: MemoryError: Unable to", 75),
        (ValueError("a bug\nover two lines"), "bug: ValueError: a bug | over two lines", 1),
    ],
)
def test_the_childs_last_line_names_the_class_of_its_error(error, line, code):
    text, exit_code = failure_line(error)
    assert text.startswith(line) and "\n" not in text
    assert exit_code == code


def _exit(code: int, last: str = "", oom_kills: int | None = 0) -> ChildExit:
    tail = ("INFO jetx.training: epoch 1", f"ERROR tasks.stage_child: {last}") if last else ()
    return ChildExit(code, tail, oom_kills)


@pytest.mark.parametrize(
    ("child", "outcome", "error", "message"),
    [
        (_exit(0), "completed", None, None),
        (_exit(-9, oom_kills=1), "out of memory", OutOfMemory, "an OOM kill; the kernel counted 1"),
        (_exit(-9, oom_kills=None), "out of memory", OutOfMemory, "killed by SIGKILL (exit -9)"),
        (_exit(-9), "killed", ChildKilled, "killed by SIGKILL (exit -9) without an OOM kill"),
        (_exit(-15), "killed", ChildKilled, "killed by SIGTERM"),
        (_exit(75, "out of memory: ResourceExhaustedError: OOM"), "out of memory", OutOfMemory,
         "Stage 2: out of memory: ResourceExhaustedError: OOM"),
        (_exit(2, "input: JetxInputError: bad"), "input", RuntimeError,
         "Stage 2 failed (exit 2): input: JetxInputError: bad | last output: "),
        (_exit(1, "machine: OSError: /r: No space left on device (ENOSPC)"), "machine",
         RuntimeError, "Stage 2 failed (exit 1): machine: OSError: /r: No space left"),
        (_exit(1), "failed", RuntimeError, "failed (exit 1): no error message (exit code 1)"),
    ],
)  # fmt: skip
def test_how_a_child_ended_decides_the_tasks_error_and_its_retry(child, outcome, error, message):
    got, raised = _outcome(child, stage=2)
    assert got == outcome
    if error is None:
        assert raised is None
    else:
        assert type(raised) is error and message in str(raised)
        assert is_retryable(None, None, Failed(data=raised)) is (error is not RuntimeError)
