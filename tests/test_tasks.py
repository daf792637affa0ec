"""Tasks: records of real ingest/feature runs, the content cache, and the OOM retry policy."""

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
from tasks.data import load_raw
from tasks.features import build_features
from tasks.stage import ChildKilled, OutOfMemory, is_retryable
from tasks.stage_child import _halved


@pytest.fixture(scope="module", autouse=True)
def harness():
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
    features = build_features(data.result(), out, return_state=True)
    return data, features


def _names(states) -> list[str]:
    return [state.name for state in states]


def test_load_raw_and_build_features_return_hashed_records(history: Path, tmp_path: Path):
    with disable_run_logger():
        data = load_raw.fn(history, tmp_path)
        features = build_features.fn(data, tmp_path)
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
