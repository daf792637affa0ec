"""`jetx evaluate RUN_DIR` on a trained run: settings come from its run.json.

The run is a copy of the session's tiny run (tests/conftest.py: the stage engine that `jetx
train --stages 1 --epochs 1` runs, which tests/test_resume_kill.py runs as a command), its
report removed. The same on a run that the flow made is in tests/test_flows.py.
"""

import json
import shutil
import subprocess
import sys

import pytest
from train_data import copy_of

JETX = [sys.executable, "-m", "jetx"]


def _jetx(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*JETX, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def trained_run(tiny_run, tmp_path):
    run_dir = copy_of(tiny_run, tmp_path)  # `jetx evaluate` writes into the run
    shutil.rmtree(run_dir / "report")
    return run_dir


def test_evaluate_needs_only_the_run_dir(trained_run):
    done = _jetx("evaluate", str(trained_run))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stage 1 (cut 0.50): The model" in done.stdout
    assert f"report: {trained_run / 'report' / 'report.md'}" in done.stdout
    metrics = json.loads((trained_run / "report" / "evaluation.json").read_text())
    assert [stage["stage"] for stage in metrics["stages"]] == [1]
    assert metrics["preset"] == "tiny" and metrics["rounds"] > 0
    assert set(metrics["baselines"]) == {"always", "never", "random"}


def test_evaluate_of_a_directory_that_is_no_run_says_so(tmp_path):
    done = _jetx("evaluate", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"jetx evaluate: error: {tmp_path}: no run.json; it is not a run made by `jetx train` "
        "or the jetx flow"
    ]
