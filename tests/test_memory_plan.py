"""The measured memory plan: the engine's real step in fresh processes (tiny preset), the plan
it gives, the analytic fallback, `jetx plan`, and a probe killed for memory."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jetx.cli import main
from jetx.config import PLAN_MARGIN, PRESETS
from jetx.errors import EXIT_INPUT, EXIT_OUT_OF_MEMORY, JetxInputError
from jetx.training.memory_plan import (
    MemoryLine,
    confirm_plans,
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
    largest = TINY.stages[0].effective_batch
    assert f"run                micro-batch {largest}: measured " in out and ", fits" in out
    assert f"stage 1            micro-batch {largest} x 1" in out
    assert "stage 2" in out and "stage 3" not in out


@pytest.mark.e2e  # four real steps of the demo model, about a minute: make test-e2e
def test_a_plan_the_line_under_estimates_is_stepped_down_to_what_fits_when_run():
    # A line that says every micro-batch costs what micro-batch 2 does, as a line through small
    # steps can under-state a larger one: the plan's step is run, and stepped down till it fits.
    config = PRESETS["demo"].model_for("full")  # scores over 1000 positions: tens of MiB a sample
    stage = dataclasses.replace(STAGE, effective_batch=4, micro_batch=4)
    peak = measure_engine_step(config, stage, 2, "float32")["peak_bytes"]
    budget = int(peak * (1 + PLAN_MARGIN) * 1.35)
    flat = MemoryLine(float(peak), 0.0, "measured", "CPU:0")
    assert plan_stage(flat, stage, budget).micro_batch == 4
    (plan,), tried = confirm_plans([plan_stage(flat, stage, budget)], [stage], config, "float32")
    assert [m for m, _ in tried] == [4, 2]
    assert tried[0][1] * (1 + PLAN_MARGIN) > budget >= tried[1][1] * (1 + PLAN_MARGIN)
    assert (plan.micro_batch, plan.accumulation, plan.confirmed) == (2, 2, tried[1])
    one = dataclasses.replace(STAGE, effective_batch=1, micro_batch=1)
    says_it_fits = plan_stage(MemoryLine(1.0, 0.0, "measured", "CPU:0"), one, 1024)
    with pytest.raises(JetxInputError, match="does not hold micro-batch 1 when run: 1: "):
        confirm_plans([says_it_fits], [one], CONFIG, "float32")


@pytest.mark.e2e  # two probes and a stage trained, about a minute: make test-e2e
def test_jetx_train_with_a_budget_plans_by_measuring_this_device(tiny_features, tmp_path, capsys):
    # `jetx train --budget-gib` plans as the flow does: the probe pair measured on this device;
    # the analytic model only where no device step can run.
    argv = ["train", str(tiny_features), "--out", str(tmp_path / "run"), "--preset", "tiny"]
    argv += ["--stages", "1", "--epochs", "1", "--budget-gib", "4", "--quiet", "--json"]
    assert main(argv) == 0
    (result,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert result["memory_plan"] == "measured on CPU:0"
    assert result["micro_batch"] * result["accumulation"] == TINY.stages[0].effective_batch


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
