"""bench/gpu_check.py on the CPU path: this machine has no GPU, so the 15 GiB cap cannot be
tested here; the same script, unchanged, runs its three parts (the audit step, one real epoch
of a stage at the planned micro-batch, the injected out-of-memory recovery) on the CPU at
`--smoke` sizes and prints its table."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # make test-e2e; its own limit
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"


def test_gpu_check_runs_on_the_cpu_path_without_a_gpu_and_prints_its_table(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "no GPU: the CPU path, uncapped" in lines[0]
    header = next(i for i, line in enumerate(lines) if line.startswith("what "))
    assert "predicted" in lines[header] and "measured" in lines[header]
    table = lines[header + 1 :]
    assert [line.split()[0:2] for line in table] == [
        ["audit", "step"],
        ["stage", "1"],
        ["stage", "1"],
    ]
    saved = json.loads(out.read_text())
    assert saved["cap"] == "no GPU: the CPU path, uncapped"
    audit, epoch, oom = saved["rows"]
    assert audit["memory_source"] == "allocator" and audit["predicted_over_measured"] > 0
    assert epoch["what"] == "stage 1 epoch" and epoch["updates"] > 0
    # The planned micro-batch halves at the injected OOM and the stage still finishes.
    planned = int(epoch["micro_batch"].split("x")[0])
    assert oom["what"] == f"stage 1 OOM at update 1: {planned} -> {planned // 2}", oom
    assert oom["updates"] > 0
