"""The `jetx` flow on real data, real training children and real kills (tiny preset).

Each test runs the whole pipeline (TensorFlow training in child processes), so they are slow;
they share one in-process run where they can.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import prefect_env  # noqa: F401  (isolates Prefect before it is imported)
import pyarrow.parquet as pq
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.testing.utilities import prefect_test_harness
from train_data import make_features_dir

from flows.progressive import progressive
from jetx.cli import main
from jetx.data.synth import synthesize, write_csv
from jetx.layout import Workspace
from jetx.runtime import OOM_EVENTS_ENV
from jetx.serving.bundle import load_bundle
from jetx.testing import faults
from tasks.records import FeaturesRecord
from tasks.stage import train_stage_task

ROUNDS = 3000
#: Whole flow runs with killed children: `make test-e2e`. The two error paths stay in the fast tier.
E2E = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def harness():
    """This module's own Prefect test harness, closed when the module ends (not one per session:
    tests/conftest.py says why)."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


def _checkpoints(out: Path, stage: int) -> list[Path]:
    return sorted(out.glob(f"train/*/stage{stage}/checkpoints/ckpt-*"))


def _wait_for(predicate, timeout: float = 300.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(0.2)


def _task_runs(flow_run_id) -> dict[str, object]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs()
    return {run.name: run for run in runs if run.flow_run_id == flow_run_id}


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory):
    """One flow run (stage 1 only) with an injected OOM and a SIGKILL of its training child.

    The SIGKILL stands for the kernel's OOM killer, whose own kill cannot be made here: the
    kernel's OOM-kill counter is simulated (`JETX_OOM_EVENTS`) and rises with the kill.
    """
    work = tmp_path_factory.mktemp("killed")
    source = work / "history.csv"
    write_csv(source, synthesize(ROUNDS, seed=3))
    events = work / "memory.events"
    events.write_text("oom_kill 0\n")
    hooks = contextlib.ExitStack()  # test hooks of the flow's process, not parameters
    hooks.enter_context(faults.injected(step_delay=0.1, oom="1:2"))
    os.environ[OOM_EVENTS_ENV] = str(events)
    box: dict = {}

    def run() -> None:
        box["state"] = progressive(
            source=source,
            out=work / "out",
            preset="tiny",
            stages=1,
            skip_memory_audit=True,  # its subject is the OOM retry; the retraining run audits
            return_state=True,
        )

    thread = threading.Thread(target=run)
    thread.start()
    try:
        _wait_for(lambda: len(_checkpoints(work / "out", 1)) >= 2, what="stage 1 checkpoints")
        pid_file = next((work / "out").glob("train/*/attempts/stage1-*-1.pid"))
        killed = int(pid_file.read_text())
        events.write_text("oom_kill 1\n")  # what the kernel's OOM killer counts
        os.kill(killed, signal.SIGKILL)
    finally:
        hooks.close()
        thread.join(timeout=600)
        os.environ.pop(OOM_EVENTS_ENV)
    return work, source, box["state"], killed


@E2E
def test_oom_killed_child_is_retried_at_half_the_micro_batch_simulated_oom_counter(killed_run):
    work, _, state, killed = killed_run
    assert state.is_completed(), state.message
    runs = _task_runs(state.state_details.flow_run_id)
    assert runs["train_stage-1"].run_count == 2  # the SIGKILL was retried once
    assert not [name for name in runs if "memory" in name]  # skip_memory_audit: no probe
    result = next((work / "out").glob("train/*/stage1/result.json")).read_text()
    assert re.search(r'"resumed_from": "ckpt-\d+"', result)
    assert state.result().path("report.md").is_file()
    models = Workspace(work / "out").models  # the flow's last steps: export, gate, retention
    run_id = state.result().directory.parent.name
    decision = json.loads(models.promotion.read_text())
    assert (decision["bundle"], decision["latest"], decision["manual"]) == (run_id, run_id, False)
    assert decision["blessed"] is False and decision["champion"] is None  # i.i.d. rounds
    assert decision["reasons"][0].startswith(
        ("It does not beat both references", "Its forecasts are one constant", "It has ")
    )
    assert load_bundle(models.latest).path == models.bundle(run_id).path
    stage = json.loads(result)
    # In process, the injected OOM halves 8 -> 4; the retry after the SIGKILL halves 4 -> 2.
    changes = [(c["from"], c["to"], c["error"]) for c in stage["micro_batch_changes"]]
    assert changes == [(8, 4, "ResourceExhaustedError"), (4, 2, "requested")]
    assert (stage["micro_batch"], stage["accumulation"]) == (2, 32)
    retry = next((work / "out").glob("train/*/attempts/stage1-*-2.pid"))
    assert killed != int(retry.read_text())  # one pid file per attempt
    record = json.loads(next((work / "out").glob("train/*/attempts/stage1-*-1.json")).read_text())
    assert (record["outcome"], record["returncode"], record["oom_kills"]) == (
        "out of memory",
        -signal.SIGKILL,
        1,
    )


@E2E
def test_jetx_evaluate_works_on_a_run_the_flow_made(killed_run, capsys):
    work, _, state, _ = killed_run
    run_dir = state.result().directory.parent
    before = json.loads((run_dir / "report" / "evaluation.json").read_text())
    assert main(["evaluate", str(run_dir)]) == 0
    assert "stage 1 (cut 0.50): The model" in capsys.readouterr().out
    again = json.loads((run_dir / "report" / "evaluation.json").read_text())
    assert again["stages"] == before["stages"] and again["preset"] == "tiny"


@E2E
def test_retraining_on_a_longer_history_reuses_nothing_stale_and_compares(killed_run):
    work, source, first, _ = killed_run
    longer = work / "longer.csv"
    write_csv(longer, synthesize(ROUNDS + 300, seed=3))  # the same rounds plus 300 new ones
    state = progressive(source=longer, out=work / "out", preset="tiny", stages=1, return_state=True)
    assert state.is_completed(), state.message
    runs = _task_runs(state.state_details.flow_run_id)
    for name in ("load_raw", "build_features", "train_stage-1", "evaluate_run"):
        run = next(r for n, r in runs.items() if n.startswith(name))
        assert run.state.name == "Completed", (name, run.state.name)
    report = state.result()
    assert report.previous_run == first.result().directory.parent
    assert report.directory != first.result().directory
    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts()}
    assert {"metric-comparison", "memory-audit", "report", "stage-1-progress", "promotion"} <= keys
    models = Workspace(work / "out").models
    decisions = [json.loads(line) for line in models.promotions.read_text().splitlines()]
    assert [d["latest"] for d in decisions] == [
        first.result().directory.parent.name,
        report.directory.parent.name,
    ]  # latest moved to the new run; nothing blessed on i.i.d. rounds
    assert not models.champion.exists() and not any(d["blessed"] for d in decisions)
    comparison = report.path("report.md").read_text()
    assert "Verdict" in comparison or "verdict" in comparison


def test_a_non_oom_error_fails_at_once_with_its_message(tmp_path):
    empty = FeaturesRecord(directory=tmp_path / "missing", files={}, samples={})

    @flow
    def one_stage():
        return train_stage_task(
            empty,
            None,
            stage=1,
            run_dir=tmp_path / "run",
            preset="tiny",
            variant="full",
            return_state=True,
        )

    state = one_stage(return_state=True)
    task_state = state.result(raise_on_failure=False)
    assert task_state.is_failed()
    assert "Stage 1 failed (exit 2)" in task_state.message
    assert _task_runs(state.state_details.flow_run_id)["train_stage-1"].run_count == 1


@E2E
def test_sigkill_of_the_flow_in_stage_2_resumes_with_cache_hits(tmp_path):
    source = tmp_path / "history.csv"
    write_csv(source, synthesize(ROUNDS, seed=4))
    command = [sys.executable, "-m", "flows.progressive", "--source", str(source)]
    command += ["--out", str(tmp_path / "out"), "--preset", "tiny", "--stages", "2"]
    command += ["--skip-memory-audit"]  # its subject is the resume, not memory
    home = tmp_path / "home"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_LOCAL_STORAGE_PATH": str(home / "s")}
    log = tmp_path / "first.log"
    with open(log, "wb") as handle:
        first = subprocess.Popen(
            command,
            env={**env, **faults.environment(step_delay=0.1)},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def in_stage_2() -> bool:
            if first.poll() is not None:
                raise AssertionError(log.read_text()[-3000:])
            return len(_checkpoints(tmp_path / "out", 2)) >= 2

        _wait_for(in_stage_2, what="stage 2 checkpoints")
        child = int(next((tmp_path / "out").glob("train/*/attempts/stage2-*.pid")).read_text())
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        _wait_for(lambda: not Path(f"/proc/{child}").exists(), 30, "the child to die with the flow")
    finally:
        with contextlib.suppress(ProcessLookupError):  # the ephemeral server it left behind
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output[-3000:]
    assert re.search(r"Task run 'load_raw[^']*' - Finished in state Completed", output)
    for name in ("build_features", "train_stage-1"):
        assert re.search(rf"Task run '{name}[^']*' - Finished in state Cached", output), name
    assert re.search(r"Task run 'train_stage-2' - Finished in state Completed", output)
    assert re.search(r"stage 2: resuming from ckpt-\d+", output)
    result = json.loads(next((tmp_path / "out").glob("train/*/stage2/result.json")).read_text())
    assert result["resumed_from"] is not None
    assert "Report: " in second.stdout


def test_a_failing_child_reports_its_own_error(tmp_path):
    features = make_features_dir(tmp_path)
    table = features / "features.parquet"
    table.write_bytes(table.read_bytes()[: table.stat().st_size // 2])  # a truncated file
    with pytest.raises(Exception) as expected:  # what the child meets when it reads it
        pq.read_table(table)
    record = FeaturesRecord(directory=features, files={}, samples={})

    @flow
    def one_stage():
        return train_stage_task(
            record,
            None,
            stage=1,
            run_dir=tmp_path / "run",
            preset="tiny",
            variant="full",
            return_state=True,
        )

    state = one_stage(return_state=True)
    task_state = state.result(raise_on_failure=False)
    assert task_state.is_failed()
    message = task_state.message
    # Damage is bad input (exit 2) in one line naming the file, with pyarrow's own words.
    assert "Stage 1 failed (exit 2): input: JetxInputError: " in message
    assert f"{table}: not a readable Parquet file (" in message
    assert str(expected.value).split(": ")[-1] in message  # pyarrow's reason
    assert _task_runs(state.state_details.flow_run_id)["train_stage-1"].run_count == 1


@E2E
def test_a_budget_plans_the_stages_by_a_line_measured_on_this_device(tmp_path):
    source = tmp_path / "history.csv"
    write_csv(source, synthesize(ROUNDS, seed=5))
    state = progressive(
        source=source,
        out=tmp_path / "out",
        preset="tiny",
        stages=1,
        budget_gib=1.0,
        skip_memory_audit=True,  # its subject is the plan
        return_state=True,
    )
    assert state.is_completed()
    (plan_file,) = (tmp_path / "out").glob("train/*/memory/plan-tiny-full-float32.json")
    line = json.loads(plan_file.read_text())
    assert (line["method"], line["device"], len(line["points"])) == ("measured", "CPU:0", 2)
    result = json.loads(next((tmp_path / "out").glob("train/*/stage1/result.json")).read_text())
    assert result["memory_plan"] == "measured on CPU:0"
    names = _task_runs(state.state_details.flow_run_id)
    assert sum(name.startswith("plan_memory") for name in names) == 1  # one probe pair
