"""bench/gpu_check.py on the CPU path: it runs and prints its table. No GPU is exercised here.

The script is meant for a machine with a CUDA GPU; this machine has none, so the test runs the
same code on the CPU at tiny sizes (`--smoke`) and checks the table and the JSON rows, the
out-of-memory recovery included. The GPU cap itself (`jetx.runtime.limit_gpu_memory`) cannot be
exercised without a GPU: the test checks that the script says it ran uncapped on the CPU.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check") / "gpu_check.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out.read_text())


@pytest.mark.slow
def test_gpu_check_cpu_path_no_gpu_runs_and_prints_the_table(smoke):
    stdout, record = smoke
    assert "no GPU: the CPU path, uncapped" in stdout
    assert record["cap"] == "no GPU: the CPU path, uncapped"
    header = next(line for line in stdout.splitlines() if line.startswith("what "))
    for column in ("variant", "predicted", "measured", "pred/meas", "source"):
        assert column in header
    whats = [row["what"] for row in record["rows"]]
    assert whats[0] == "audit step" and "stage 1 epoch" in whats
    assert whats[-1].startswith("stage 1 OOM at update 1: ")  # recovered, not "NOT RECOVERED"
    for row in record["rows"]:
        assert row["predicted_bytes"] > 0 and row["variant"] == "blockwise"
        assert row["what"] in stdout  # every row is in the printed table
        if row["memory_source"] == "allocator":
            ratio = row["predicted_bytes"] / row["measured_bytes"]
            assert row["predicted_over_measured"] == pytest.approx(ratio)


@pytest.mark.slow
def test_gpu_check_cpu_path_no_gpu_halves_the_micro_batch_after_the_injected_oom(smoke):
    _, record = smoke
    trained, oom = record["rows"][-2], record["rows"][-1]
    before, after = (int(r["micro_batch"].split("x")[0]) for r in (trained, oom))
    assert after == before // 2
    assert oom["what"].endswith(f"{before} -> {after}")
    assert oom["updates"] == trained["updates"]  # the epoch finished after the halving
