"""Task: train one stage in a child process, retried with half the micro-batch after an OOM.

A real out-of-memory on Linux is often no exception: the kernel kills the process with SIGKILL.
If that process were the flow's, Prefect would mark the run Crashed, which retries do not cover.
So the stage trains in a child (`python -m tasks.stage_child`), and the task turns the child's
death by SIGKILL, or its exit with `EXIT_OUT_OF_MEMORY` (a ResourceExhaustedError), into
`OutOfMemory`: the one error `is_out_of_memory` retries. Each retry (attempt > 1, from
`prefect.runtime.task_run.run_count`) asks the child to halve the micro-batch that the stage's
last checkpoint was using (accumulation doubles, the effective batch stays) and to resume from
that checkpoint. An out-of-memory error raised inside a step is handled by the training library
itself, in process, the same way.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from prefect import Task, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import task_run
from prefect.states import State

from jetx.config import get_preset
from tasks.caching import content_policy
from tasks.child_process import ChildExit, run_child
from tasks.records import FeaturesRecord, StageRecord
from tasks.stage_child import EXIT_OUT_OF_MEMORY

#: The training library's out-of-memory injection hook ("stage:update").
OOM_ENV = "JETX_INJECT_OOM"
#: Retries after an OOM: micro-batch 8 -> 4 -> 2 -> 1.
OOM_RETRIES = 3
#: A line of the child's log (`tasks.stage_child.LOG_FORMAT`): level, logger, message.
_LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)$")


class OutOfMemory(RuntimeError):
    """The training child ran out of memory (ResourceExhaustedError, or killed by SIGKILL)."""


def is_out_of_memory(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry condition: True only for `OutOfMemory`, so that any other error fails at once."""
    try:
        state.result()
    except OutOfMemory:
        return True
    except BaseException:
        return False
    return False


def _epochs_done(metrics_file: Path, stage: int) -> int:
    if not metrics_file.is_file():
        return 0
    lines = metrics_file.read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if line.strip() and json.loads(line).get("stage") == stage)


def _forward(logger: logging.Logger | logging.LoggerAdapter) -> Callable[[str], None]:
    """Log each line of the child at its own level, named after the jetx logger that wrote it."""

    def forward(line: str) -> None:
        match = _LOG_LINE.match(line)
        if match:
            level, name, message = match.groups()
            logger.log(logging.getLevelName(level), "%s: %s", name, message)
        elif line.strip():
            logger.info("%s", line)

    return forward


def failure_reason(result: dict, child: ChildExit) -> str:
    """The child's own error and its last lines of output: never an empty reason."""
    tail = [line for line in child.tail if line.strip()][-5:]
    silent = f"no error message and no output (exit code {child.returncode})"
    reason = result.get("error") or (tail[-1] if tail else silent)
    if tail and tail[-1] != reason:
        reason += " | last output: " + " / ".join(tail)
    return reason


@task(
    name="train_stage",
    task_run_name="train_stage-{stage}",
    retries=OOM_RETRIES,
    retry_condition_fn=is_out_of_memory,
    cache_policy=content_policy(),
    persist_result=True,
)
def train_stage(
    features: FeaturesRecord,
    previous: StageRecord | None,
    stage: int,
    run_dir: Path,
    preset: str,
    variant: str,
    budget_gib: float | None = None,
    seed: int = 0,
    inject_oom: str | None = None,
) -> StageRecord:
    """Train `stage` from `previous`'s best weights (or its own last checkpoint) in a child.

    Cached on the features' hash, the previous stage's record, the stage's settings and this
    code. Attempt k > 1 (after an OOM) resumes at half the micro-batch the last one used.
    `inject_oom` ("stage:update") makes the first attempt's child raise ResourceExhaustedError
    there (the training library's test hook, which the library recovers from in-process);
    retries never inject.
    """
    attempt = max(task_run.run_count, 1)
    schedule = get_preset(preset).stages[stage - 1]
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    result_file = run_dir / f"stage{stage}.result.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", "tasks.stage_child", str(features.directory), str(run_dir)]
    command += ["--stage", str(stage), "--preset", preset, "--variant", variant]
    command += ["--seed", str(seed), "--result", str(result_file)]
    command += ["--halve-micro-batch"] if attempt > 1 else []
    command += ["--budget-gib", str(budget_gib)] if budget_gib else []
    command += ["--init", str(previous.path(previous.best_checkpoint))] if previous else []
    env = {k: v for k, v in os.environ.items() if k != OOM_ENV or attempt == 1}
    env.update({OOM_ENV: inject_oom} if inject_oom and attempt == 1 else {})
    get_run_logger().info(
        "Stage %d, attempt %d%s", stage, attempt, ", halving the micro-batch" if attempt > 1 else ""
    )
    child = run_child(
        command,
        env=env,
        on_line=_forward(get_run_logger()),
        on_poll=_progress_reporter(run_dir, stage, schedule.epochs),
        pid_file=run_dir / f"stage{stage}.child.pid",
    )
    get_run_logger().info("Stage %d child exited with code %d", stage, child.returncode)
    result = json.loads(result_file.read_text()) if result_file.is_file() else {}
    code = child.returncode
    if code == -signal.SIGKILL:
        raise OutOfMemory(f"Stage {stage}: the child was killed by SIGKILL (exit -9), an OOM kill")
    if code == EXIT_OUT_OF_MEMORY:
        raise OutOfMemory(f"Stage {stage}: {failure_reason(result, child)}")
    if code != 0:
        raise RuntimeError(f"Stage {stage} failed (exit {code}): {failure_reason(result, child)}")
    get_run_logger().info("Stage %d done: %s", stage, result)
    return StageRecord.of(run_dir, result.pop("files"), stage=stage, attempt=attempt, **result)


def _progress_reporter(run_dir: Path, stage: int, epochs: int) -> Callable[[], None]:
    """A progress artifact of the stage (epochs done / total) and the function that updates it."""
    artifact = create_progress_artifact(
        0.0, key=f"stage-{stage}-progress", description=f"Stage {stage}: epochs done of {epochs}"
    )

    def report() -> None:
        done = _epochs_done(run_dir / "metrics.jsonl", stage)
        update_progress_artifact(artifact, min(100.0, 100.0 * done / epochs))

    return report


def training_dir(out: Path, features: FeaturesRecord, preset: str, variant: str, seed: int) -> Path:
    """The run directory of one (data version, preset, variant, seed): stages share it."""
    return Path(out).resolve() / "train" / f"{features.digest[:12]}-{preset}-{variant}-s{seed}"
