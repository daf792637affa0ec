"""The measured memory plan: the engine's real step in fresh processes (tiny preset), the plan
it gives, the analytic fallback, `jetx plan`, and a probe killed for memory."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jetx.cli import main
from jetx.config import PLAN_MARGIN, PRESETS
from jetx.errors import EXIT_INPUT, EXIT_OUT_OF_MEMORY
from jetx.training.memory_plan import (
    MemoryLine,
    fit_line,
    measure_engine_step,
    measure_line,
    plan_stage,
)

TINY = PRESETS["tiny"]
CONFIG = TINY.model_for(TINY.variant)
STAGE = TINY.stages[0]


@pytest.fixture(scope="module")
def line() -> MemoryLine:
    """The tiny model's line, measured on this machine at micro-batches 2 and 4."""
    return measure_line(CONFIG, STAGE, "float32", pair=(2, 4))


def test_the_planned_micro_batch_fits_the_budget_when_run(line):
    assert (line.method, line.device) == ("measured", "CPU:0")
    assert [m for m, _ in line.points] == [2, 4] and line.per_sample_bytes > 0
    # A budget from this machine's own figures: micro-batch 8 fits with the margin, 16 does not.
    budget = int(line.peak(8) * (1 + PLAN_MARGIN)) + 1
    chosen = plan_stage(line, STAGE, budget)
    assert (chosen.micro_batch, chosen.accumulation) == (8, STAGE.effective_batch // 8)
    step = measure_engine_step(CONFIG, STAGE, chosen.micro_batch, "float32")  # a fresh process
    assert step["source"] == "allocator"
    assert step["peak_bytes"] <= budget


def test_a_plan_names_what_does_not_fit():
    line = MemoryLine(2**30, 2**20, "measured", "CPU:0", ((2, 2**30 + 2**21), (4, 2**30 + 2**22)))
    with pytest.raises(Exception, match=r"does not hold even micro-batch 1 of stage 1.*measured"):
        plan_stage(line, STAGE, 2**30)


def test_fit_line_goes_through_both_points():
    fixed, per_sample = fit_line([(8, 1000), (4, 600)])
    assert (fixed, per_sample) == (200, 100)


def test_without_allocator_statistics_the_analytic_model_is_the_named_fallback(monkeypatch):
    # oneDNN off and the default CPU allocator: TensorFlow keeps no statistics on any CPU.
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "false")
    fallback = measure_line(CONFIG, STAGE, "float32", pair=(2, 4))
    assert fallback.method == "analytic" and fallback.points == ()
    assert "no allocator peak" in fallback.note
    assert plan_stage(fallback, STAGE, 2**30).line.method == "analytic"


def test_jetx_plan_prints_the_fit_and_a_plan_per_stage(capsys):
    argv = ["plan", "--budget-gib", "1", "--preset", "tiny", "--pair", "2", "4", "--check", "0"]
    assert main([*argv, "--stages", "2"]) == 0
    out = capsys.readouterr().out
    assert "tiny/full float32, budget 1 GiB (measured on CPU:0)" in out
    assert "measured points    2: " in out and ", 4: " in out
    assert "fit                peak = " in out and "MiB x micro_batch" in out
    assert "check" not in out
    assert f"stage 1            micro-batch {TINY.stages[0].effective_batch} x 1" in out
    assert "stage 2" in out and "stage 3" not in out


@pytest.mark.parametrize("budget", ["0", "-1", "abc", "nan"])
def test_jetx_plan_refuses_a_bad_budget_in_one_line(budget, capsys):
    assert main(["plan", "--budget-gib", budget, "--preset", "tiny"]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"jetx plan: error: `--budget-gib` must be a number of GiB > 0. Received: "
                   f"{budget!r}"]  # fmt: skip


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.parametrize(
    ("command", "micro_batch"),
    [
        (["plan", "--budget-gib", "1"], 4),
        (["memory", "--variant", "full", "--micro-batch", "3"], 3),
    ],
)
def test_a_probe_killed_by_sigkill_is_out_of_memory_in_one_line(command, micro_batch):
    # The SIGKILL stands for the kernel's OOM killer: a real signal to the real probe process
    # (issue 25's finding: it was a traceback). `jetx plan` and `jetx memory` each start one.
    argv = [sys.executable, "-m", "jetx", *command, "--preset", "tiny"]
    jetx = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (probes := _children(jetx.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert probes, "the probe never started"
    os.kill(probes[0], signal.SIGKILL)
    out, err = jetx.communicate(timeout=60)
    assert jetx.returncode == EXIT_OUT_OF_MEMORY
    assert err.strip().splitlines() == [
        f"jetx {command[0]}: error: out of memory: memory probe at micro-batch {micro_batch} "
        "(float32) was killed by SIGKILL (exit -9): out of memory"
    ]
    assert out == ""
