"""Kill anywhere, and two flow runs at once: the `jetx` flow (tiny preset, one stage) against one
real Prefect server, on a live SQLite history in WAL mode.

Two workspaces share the server, the result storage and the source:

- the reference: two flow processes started at the same moment on one `out`. Every cached task
  is computed by one of them while the other waits for its key's lock and is then served the
  record (Prefect's SERIALIZABLE isolation over `tasks.caching.KeyLocks`); one stage child
  trains; both end with the same report. It is the uninterrupted deterministic run.
- the kill chain, started beside it: flow processes killed one after another with SIGKILL at
  `MOMENTS` across a whole run, each one held there by the `hold` hook of `jetx.testing.faults`
  (an output written under its temporary name, not yet renamed). Each victim is the flow
  process, or the stage child alone (whose task then resumes it). Every run after a kill must
  get past the moment it was killed at, and the last one completes with the reference's report
  figures and weights: nothing stale was served, no checkpoint was adopted half written.

Training is deterministic (TF_DETERMINISTIC_OPS=1), so "the same" means equal.
"""

import contextlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import prefect_env  # noqa: F401  (isolates Prefect before it is imported)
import pytest
from prefect_server import LocalPrefect

from jetx.data.synth import synthesize
from jetx.io import TMP_PREFIX
from jetx.testing import faults

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # make test-e2e; its own limit
ROOT = Path(__file__).resolve().parents[1]
ROUNDS, IN_WAL = 2000, 800
TIMEOUT = 900
#: (output held, process killed there): a whole run, in the order it writes them.
MOMENTS = [
    ("series.parquet", "flow"),  # ingest, publishing the series
    ("features.parquet", "flow"),  # the features
    ("run.json", "child"),  # the stage child's first write
    ("state.json", "child"),  # the next child's first checkpoint write
    ("state.json#3", "flow"),  # a later checkpoint write: the flow, and its child with it
    ("metrics.jsonl", "child"),  # an epoch's record
    ("result.json", "child"),  # the finished stage's result
    ("predictions.npz", "flow"),  # the evaluation, half written
    ("training_curves.png", "flow"),  # the report's plots
    ("report.md", "flow"),  # the report itself
]
#: The cached tasks of a run (the data task always runs, the report is never cached).
CACHED = ("build_features", "train_stage-1", "evaluate_run", "measure_memory")

#: The app that keeps the history: it committed its last rounds, which are still in the WAL.
WRITER = textwrap.dedent(
    """
    import json, sqlite3, sys
    connection = sqlite3.connect(sys.argv[1])
    connection.execute("PRAGMA wal_autocheckpoint=0")
    rows = json.loads(sys.stdin.readline())
    with connection:
        connection.executemany("INSERT INTO jetx_results VALUES (?, ?)", rows)
    print("committed", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """history.db: the first rounds in the main file, the last IN_WAL only in its -wal."""
    path = tmp_path_factory.mktemp("source") / "history.db"
    values = synthesize(ROUNDS, seed=11).tolist()
    rows = [(i, v) for i, v in enumerate(values)]
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE jetx_results (id INTEGER PRIMARY KEY, value REAL)")
        connection.executemany("INSERT INTO jetx_results VALUES (?, ?)", rows[:-IN_WAL])
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    writer.stdin.write(json.dumps(rows[-IN_WAL:]) + "\n")
    writer.stdin.flush()
    assert writer.stdout.readline().strip() == "committed"
    assert Path(f"{path}-wal").stat().st_size > 0
    yield path
    writer.stdin.close()
    writer.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    with LocalPrefect(tmp / "home", ROOT, tmp / "logs") as local:
        local.start_server(timeout=300)
        yield local


def _flow(server: LocalPrefect, source: Path, out: Path, log: Path, gate: Path | None = None):
    command = [sys.executable, "-m", "flows.progressive", "--source", str(source)]
    command += ["--out", str(out), "--preset", "tiny", "--stages", "1"]
    env = {**server.env, "PYTHONPATH": str(ROOT), "TF_DETERMINISTIC_OPS": "1"}
    env.pop(faults.FAULTS_ENV, None)
    if gate is not None:
        env.update(faults.environment(hold=str(gate)))
    with open(log, "wb") as handle:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


class Reference:
    """Two flow runs started at once on one `out`, running while the kill chain runs."""

    def __init__(self, server: LocalPrefect, source: Path, root: Path) -> None:
        self.out, self.logs = root / "out", [root / "first.log", root / "second.log"]
        self.started = time.monotonic()
        self.processes = [_flow(server, source, self.out, log) for log in self.logs]
        self.seconds: list[float] = []

    def wait(self) -> "Reference":
        for process, log in zip(self.processes, self.logs, strict=True):
            if process.returncode is None:
                assert process.wait(TIMEOUT) == 0, log.read_text()[-4000:]
                self.seconds.append(time.monotonic() - self.started)
        return self

    def states(self) -> list[dict[str, str]]:
        return [_states(log.read_text()) for log in self.logs]


@pytest.fixture(scope="module")
def reference(server, source, tmp_path_factory):
    reference = Reference(server, source, tmp_path_factory.mktemp("reference"))
    yield reference
    for process in reference.processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def _states(output: str) -> dict[str, str]:
    found = re.findall(r"Task run '([\w-]+?)(?:-[0-9a-f]{3})?' - Finished in state (\w+)", output)
    return dict(found)


def _held(gate: Path, process: subprocess.Popen, log: Path) -> int:
    """Wait until a process holds at the gate's output; the pid of the process holding."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        words = gate.read_text().split()
        if words[:1] == ["held"] and len(words) == 3:
            return int(words[2])
        assert process.poll() is None, f"the flow ended first:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"nothing held at {words}"
        time.sleep(0.05)


def _dead(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _evaluation(out: Path) -> dict:
    (path,) = out.glob("train/*/report/evaluation.json")
    return json.loads(path.read_text())


def _best_weights(out: Path) -> dict[str, np.ndarray]:
    (result,) = out.glob("train/*/stage1/result.json")
    run = result.parents[1]
    best = run / json.loads(result.read_text())["best_checkpoint"]
    with np.load(best / "variables.npz") as stored:
        return {key: stored[key] for key in stored.files}


def test_a_run_killed_at_10_moments_ends_with_the_uninterrupted_runs_report(
    server, source, reference, tmp_path
):
    out, gate = tmp_path / "out", tmp_path / "gate"
    flows, victims = 0, []
    process = log = None
    foreign = [out / ".draft.tmp", out / ".cache" / ".session.tmp", out / "notes" / ".a.tmp"]
    for path in foreign:  # a user's and an app's temporary files: jetx never wrote them
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("not jetx's")
    for number, (name, victim) in enumerate(MOMENTS, start=1):
        gate.write_text(f"{name}\n")
        if process is None:
            flows += 1
            log = tmp_path / f"flow{flows}.log"
            process = _flow(server, source, out, log, gate)
        pid = _held(gate, process, log)
        if victim == "flow":
            os.kill(process.pid, signal.SIGKILL)
            assert process.wait(60) == -signal.SIGKILL
            children = [int(p.read_text()) for p in out.glob("train/*/attempts/*.pid")]
            deadline = time.monotonic() + 60
            while not all(_dead(child) for child in children):  # it dies with its parent
                assert time.monotonic() < deadline, "a stage child outlived its flow"
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # nothing of it may linger
            process = None
        else:
            assert pid != process.pid, (name, "held by the flow, not its stage child")
            os.kill(pid, signal.SIGKILL)
        victims.append((number, name, victim, pid))
    gate.unlink()
    flows += 1
    log = tmp_path / f"flow{flows}.log"
    process = _flow(server, source, out, log)
    assert process.wait(TIMEOUT) == 0, log.read_text()[-4000:]
    last = _states(log.read_text())
    assert len(victims) == len(MOMENTS) >= 10 and flows == 7

    # Each killed child was not killed for memory: its retry resumed at the same micro-batch.
    records = [json.loads(p.read_text()) for p in sorted(out.glob("train/*/attempts/*.json"))]
    assert [r["outcome"] for r in records].count("killed") == 4, records
    assert "out of memory" not in [r["outcome"] for r in records]
    (result,) = out.glob("train/*/stage1/result.json")
    assert json.loads(result.read_text())["micro_batch_changes"] == []
    # No write was left half done, no checkpoint adopted: nothing temporary is left.
    assert not list(out.rglob(f"{TMP_PREFIX}*"))
    assert all(path.read_text() == "not jetx's" for path in foreign)  # kills and reruns spared them
    assert not list(out.glob("train/*/stage1/set-aside"))  # no checkpoint was damaged
    assert len(list((out / "data").iterdir())) == len(list((out / "features").iterdir())) == 1
    assert last["write_report"] == "Completed"

    reference.wait()
    expected, got = _evaluation(reference.out), _evaluation(out)
    assert got["stages"] == expected["stages"]
    assert got["baselines"] == expected["baselines"] and got["rounds"] == expected["rounds"]
    weights, reference_weights = _best_weights(out), _best_weights(reference.out)
    assert weights.keys() == reference_weights.keys()
    for key, value in reference_weights.items():
        np.testing.assert_array_equal(weights[key], value, err_msg=key)
    print(f"\nkilled at {len(victims)} moments: {victims}")


def test_two_flow_runs_at_once_on_one_out_train_once_and_agree(reference):
    first, second = reference.wait().states()
    for name in CACHED:
        assert sorted((first[name], second[name])) == ["Cached", "Completed"], (name, first)
    assert first["load_raw"] == second["load_raw"] == "Completed"
    assert first["write_report"] == second["write_report"] == "Completed"
    out = reference.out
    assert len(list(out.glob("train/*/attempts/*.pid"))) == 1  # one stage child, one attempt
    (run,) = out.glob("train/*")
    assert len(list((out / "data").iterdir())) == 1
    records = [json.loads(p.read_text()) for p in run.glob("attempts/*.json")]
    assert [r["outcome"] for r in records] == ["completed"]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(m["stage"], m["epoch"]) for m in metrics] == [(1, 0), (1, 1)]  # none lost
    assert _evaluation(out)["rounds"] > 0
    waits = _wait_seconds(reference)
    print(f"\ntwo flow runs at once: finished after {reference.seconds} s; {waits}")


def _wait_seconds(reference: Reference) -> dict[str, float]:
    """How long the run that was served each cached task waited for the other's lock."""
    stamps = {}
    for index, log in enumerate(reference.logs):
        for time_text, name, _ in re.findall(
            r"^(\d\d:\d\d:\d\d\.\d+) \| INFO +\| Task run '([\w-]+?)(?:-[0-9a-f]{3})?' - "
            r"Finished in state (\w+)",
            log.read_text(),
            flags=re.MULTILINE,
        ):
            h, m, s = time_text.split(":")
            stamps[(index, name)] = int(h) * 3600 + int(m) * 60 + float(s)
    return {
        name: round(abs(stamps[(0, name)] - stamps[(1, name)]), 1)
        for name in CACHED
        if (0, name) in stamps and (1, name) in stamps
    }
