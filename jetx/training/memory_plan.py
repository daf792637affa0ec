"""A memory plan measured on the device the run uses: two small real steps, a line, a plan.

The analytic model (`jetx.model.footprint`) is fitted on one CPU's allocator; a GPU's allocator,
its cuDNN workspaces and XLA differ. So, like Lightning's batch-size finder, the plan measures:
the engine's own step (`jetx.training.step_probe`, a fresh process each) at two small
micro-batches, fits peak = fixed + per_sample x micro_batch (the original model's measured peaks
at 8/16/32/64 are that close to a line: docs/results.md), and chooses the largest micro-batch
whose extrapolated peak plus `PLAN_MARGIN` fits the budget. Where no device step can run (the
allocator keeps no statistics, or the probe fails for another reason than memory) the analytic
model is the fallback, and the plan says so (`method`). A probe that runs out of memory is not
a fallback: the budget cannot hold even the small step, and `MemoryError` says so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from dataclasses import asdict, dataclass
from typing import Literal

from jetx.config import GIB, PLAN_MARGIN, ModelConfig, StageConfig
from jetx.errors import JetxInputError
from jetx.model.footprint import fits_budget, predict_peak, run_probe
from jetx.training import step_probe

logger = logging.getLogger(__name__)

#: The micro-batches of the probe pair: small enough to fit where the run fits at all, far
#: enough apart that the run-to-run noise of a peak (2-5% on this CPU) does not swamp the
#: slope. Widened from (4, 8) after bench/memory_holdout_set.json, judged on
#: bench/memory_holdout_set2.json (docs/results.md).
PROBE_PAIR = (4, 16)

PlanMethod = Literal["measured", "analytic"]


@dataclass(frozen=True)
class MemoryLine:
    """Peak bytes of one training step as a line in the micro-batch, and where it comes from.

    Args:
        fixed_bytes, per_sample_bytes: peak = fixed + per_sample x micro_batch.
        method: "measured" (two real steps on `device`) or "analytic" (the fallback).
        device: the device measured ("CPU:0", "GPU:0"); "" for the analytic model.
        points: the measured (micro_batch, peak bytes) pairs the line goes through.
        check: (micro_batch, measured, predicted) of a third measured step, or None.
        note: why the analytic model was used, when it was.
    """

    fixed_bytes: float
    per_sample_bytes: float
    method: PlanMethod
    device: str = ""
    points: tuple[tuple[int, int], ...] = ()
    check: tuple[int, int, int] | None = None
    note: str = ""

    def peak(self, micro_batch: int) -> int:
        """The line's peak at `micro_batch`, in bytes."""
        return int(self.fixed_bytes + self.per_sample_bytes * micro_batch)

    @property
    def residual(self) -> float | None:
        """predicted / measured - 1 at the check point (None without one)."""
        return None if self.check is None else self.check[2] / self.check[1] - 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> MemoryLine:
        points = tuple((int(m), int(p)) for m, p in data.get("points", ()))
        check = tuple(int(x) for x in data["check"]) if data.get("check") else None
        return cls(**{**data, "points": points, "check": check})


@dataclass(frozen=True)
class MeasuredPlan:
    """The largest micro-batch of a stage that fits a budget by `line`, and its accumulation.

    `confirmed` is (micro_batch, measured peak bytes) of the largest step run for real that fit
    with the margin (`confirm_plans`), this plan's micro-batch or a larger one; None unconfirmed.
    """

    micro_batch: int
    accumulation: int
    predicted_peak_bytes: int
    budget_bytes: int
    margin: float
    line: MemoryLine
    confirmed: tuple[int, int] | None = None


def measure_engine_step(
    config: ModelConfig, stage: StageConfig, micro_batch: int, precision: str
) -> dict:
    """One real step of the engine in a fresh process (`jetx.training.step_probe`).

    Returns:
        {"micro_batch", "precision", "peak_bytes" (None unless "source" is "allocator"),
        "source", "note", "device", "step_seconds"}.

    Raises:
        MemoryError: the step ran out of memory, or the process was killed by SIGKILL (what the
            kernel's OOM killer sends); one line, for the out-of-memory exit code.
        RuntimeError: the probe failed otherwise (the last lines of its stderr).
    """
    request = {"config": config.to_dict(), "stage": stage.to_dict()}
    request |= {"micro_batch": micro_batch, "precision": precision}
    command = [sys.executable, "-m", step_probe.__name__, json.dumps(request)]
    return run_probe(command, f"memory probe at micro-batch {micro_batch} ({precision})")


def fit_line(points: list[tuple[int, int]]) -> tuple[float, float]:
    """(fixed, per_sample) of the line through two (micro_batch, peak) points."""
    (m0, p0), (m1, p1) = sorted(points)
    if m0 == m1:
        raise JetxInputError(f"the probe pair needs two micro-batches. Received: {m0}, {m1}")
    per_sample = (p1 - p0) / (m1 - m0)
    return p0 - per_sample * m0, per_sample


def measure_line(
    config: ModelConfig, stage: StageConfig, precision: str, pair: tuple[int, int] = PROBE_PAIR
) -> MemoryLine:
    """The measured line of a model's step (one probe per micro-batch of `pair`), or the
    analytic model's where no device step can run.

    Raises:
        MemoryError: a probe ran out of memory (see `measure_engine_step`).
    """
    points, device = [], ""
    try:
        for micro_batch in pair:
            step = measure_engine_step(config, stage, micro_batch, precision)
            if step["peak_bytes"] is None:
                return _analytic(config, precision, f"no allocator peak: {step['note']}")
            points.append((micro_batch, int(step["peak_bytes"])))
            device = step["device"]
    except RuntimeError as error:
        return _analytic(config, precision, f"no device step could run: {error}")
    fixed, per_sample = fit_line(points)
    return MemoryLine(fixed, per_sample, "measured", device, tuple(points))


def check_line(
    line: MemoryLine, config: ModelConfig, stage: StageConfig, precision: str, micro_batch: int
) -> MemoryLine:
    """`line` with its residual at a third measured step of `micro_batch` (`MemoryLine.check`).

    Raises:
        MemoryError: the step ran out of memory.
    """
    step = measure_engine_step(config, stage, micro_batch, precision)
    if step["peak_bytes"] is None:
        return line
    check = (micro_batch, int(step["peak_bytes"]), line.peak(micro_batch))
    return dataclasses.replace(line, check=check)


def _analytic(config: ModelConfig, precision: str, note: str) -> MemoryLine:
    """The analytic model as a line (through its micro-batch 1 and 2 predictions)."""
    logger.warning("memory plan: the analytic model is the fallback (%s)", note)
    p1, p2 = (predict_peak(config, m, precision).predicted_peak_bytes for m in (1, 2))
    return MemoryLine(2 * p1 - p2, p2 - p1, "analytic", note=note)


def plan_stage(
    line: MemoryLine, stage: StageConfig, budget_bytes: int, margin: float = PLAN_MARGIN
) -> MeasuredPlan:
    """The largest micro-batch of `stage` whose peak by `line`, plus `margin`, fits the budget.

    Raises:
        JetxInputError: when even micro-batch 1 does not fit.
    """
    for micro_batch in stage.micro_batches():
        peak = line.peak(micro_batch)
        if fits_budget(peak, budget_bytes, margin):
            accumulation = stage.effective_batch // micro_batch
            return MeasuredPlan(micro_batch, accumulation, peak, budget_bytes, margin, line)
    raise JetxInputError(
        f"`budget_gib` {budget_bytes / GIB:.3f} does not hold even micro-batch 1 of stage "
        f"{stage.stage}: its {line.method} peak is {line.peak(1) / GIB:.3f} GiB plus a "
        f"{margin:.0%} margin."
    )


def confirm_plans(
    plans: list[MeasuredPlan], stages: list[StageConfig], config: ModelConfig, precision: str
) -> tuple[list[MeasuredPlan], list[tuple[int, int | None]]]:
    """`plans` (one per stage of `stages`) with their largest micro-batch run for real.

    A line through two small steps can under-estimate a larger one: a step's peak is the largest
    of its program points' sizes, and one that grows faster can take over above the probe pair
    (docs/results.md, issue 26's fourth set). So the largest planned micro-batch is measured,
    then, while its peak plus the margin exceeds the budget (or it runs out of memory), the next
    smaller one any stage can train with; every plan is capped at the first that fits.

    Returns:
        The plans, and each step tried: (micro_batch, measured peak bytes, None if out of memory).
        Without allocator statistics nothing can be confirmed: the plans come back as they were.

    Raises:
        JetxInputError: not even the smallest micro-batch tried fits the budget when run.
    """
    budget, margin, line = plans[0].budget_bytes, plans[0].margin, plans[0].line
    # The line's own measured steps (the pair, the check) are not run again.
    known = dict(line.points) | ({line.check[0]: line.check[1]} if line.check else {})
    wanted = {
        m
        for p, s in zip(plans, stages, strict=True)
        for m in s.micro_batches(at_most=p.micro_batch)
    }
    tried: list[tuple[int, int | None]] = []
    for micro_batch in sorted(wanted, reverse=True):
        try:
            peak = known.get(micro_batch) or _measured(config, stages[0], micro_batch, precision)
        except MemoryError:
            tried.append((micro_batch, None))
            continue
        if peak is None:
            return plans, tried
        tried.append((micro_batch, int(peak)))
        if fits_budget(peak, budget, margin):
            capped = [
                _capped(p, s, (micro_batch, int(peak))) for p, s in zip(plans, stages, strict=True)
            ]
            return capped, tried
    raise JetxInputError(
        f"`budget_gib` {budget / GIB:.3f} does not hold micro-batch {min(wanted)} when run: "
        f"{', '.join(_tried(m, p) for m, p in tried)}, plus a {margin:.0%} margin."
    )


def _measured(
    config: ModelConfig, stage: StageConfig, micro_batch: int, precision: str
) -> int | None:
    """One engine step's allocator peak in bytes (None without allocator statistics)."""
    return measure_engine_step(config, stage, micro_batch, precision)["peak_bytes"]


def _capped(plan: MeasuredPlan, stage: StageConfig, confirmed: tuple[int, int]) -> MeasuredPlan:
    """`plan` at most at the confirmed micro-batch (smaller steps peak lower)."""
    micro_batch = stage.micro_batches(at_most=min(plan.micro_batch, confirmed[0]))[0]
    return dataclasses.replace(
        plan,
        micro_batch=micro_batch,
        accumulation=stage.effective_batch // micro_batch,
        predicted_peak_bytes=plan.line.peak(micro_batch),
        confirmed=confirmed,
    )


def _tried(micro_batch: int, peak: int | None) -> str:
    return f"{micro_batch}: {'out of memory' if peak is None else f'{peak / GIB:.3f} GiB'}"
