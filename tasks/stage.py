"""Task: train one stage in a child process, retried with half the micro-batch after an OOM.

A real out-of-memory on Linux is often no exception: the kernel kills the process with SIGKILL.
If that process were the flow's, Prefect would mark the run Crashed, which retries do not cover.
So the stage trains in a child (`python -m tasks.stage_child`), and the task turns the child's
end into one of the error classes (`jetx.errors`):

- out of memory (`OutOfMemory`, retried): the child exited with `EXIT_OUT_OF_MEMORY`, or was
  SIGKILLed while the kernel's OOM-kill counter rose (or where the kernel keeps none);
- killed (`ChildKilled`, retried): SIGKILLed, or ended by another signal, with no OOM kill
  counted: an operator, a node's shutdown. The retry resumes at the same micro-batch;
- the user's fault (exit 2) or the machine's (exit 1): failed at once, with the child's own
  last line (`KIND: Type: message`) as the reason.

Each attempt has its own files (`jetx.layout.RunDir.attempt`: the child's pid, then how it
ended), named by the task run and the attempt, so that two flow runs or a retry never share
one; a retry (attempt > 1, from `prefect.runtime.task_run.run_count`) reads the previous
attempt's record and halves the micro-batch that the stage's last checkpoint was using
(accumulation doubles, the effective batch stays) only when that attempt ran out of memory. An
out-of-memory error raised inside a step is handled by the training library itself, in process.
Two runs of the same stage never train at once: the task's cache key is locked while it
computes (`tasks.caching`), and the child holds the run directory's lock.
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

from prefect import Task, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.client.schemas.objects import TaskRun
from prefect.runtime import task_run
from prefect.states import State
from prefect.utilities.hashing import hash_objects

from jetx.config import get_preset
from jetx.errors import EXIT_OUT_OF_MEMORY
from jetx.io import write_json
from jetx.layout import RunDir, Workspace
from jetx.testing.faults import retry_environment
from jetx.training.epoch_history import read_records
from jetx.training.result import read_stage_result
from tasks.caching import cached_task, task_code_digest
from tasks.child_process import ChildExit, run_child
from tasks.records import FeaturesRecord, StageRecord

#: Retries after an OOM: micro-batch 8 -> 4 -> 2 -> 1.
OOM_RETRIES = 3
#: A line of the child's log (`tasks.stage_child.LOG_FORMAT`): level, logger, message.
_LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)$")
#: The logger of the child's own failure line.
_CHILD = "tasks.stage_child"


class OutOfMemory(RuntimeError):
    """The training child ran out of memory (ResourceExhaustedError, or an OOM kill)."""


class ChildKilled(RuntimeError):
    """The training child was killed by a signal, not for memory: it resumes as it was."""


def is_retryable(task: Task, task_run: TaskRun, state: State) -> bool:
    """Retry condition: True only for `OutOfMemory` and `ChildKilled`; any other error (the
    user's, the machine's, a bug) fails at once."""
    try:
        state.result()
    except (OutOfMemory, ChildKilled):
        return True
    except BaseException:
        return False
    return False


def _epochs_done(metrics_file: Path, stage: int) -> int:
    """Epochs of `stage` in metrics.jsonl, read by its one reader."""
    return sum(1 for record in read_records(metrics_file) if record.get("stage") == stage)


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


def failure_reason(child: ChildExit) -> str:
    """The child's own error (its last `ERROR tasks.stage_child: KIND: Type: message` line) and
    its last lines of output: never an empty reason."""
    errors = [m.group(3) for m in map(_LOG_LINE.match, child.tail) if m and m.group(2) == _CHILD]
    tail = [line for line in child.tail if line.strip()][-5:]
    reason = errors[-1] if errors else f"no error message (exit code {child.returncode})"
    if tail:
        reason += " | last output: " + " / ".join(tail)
    return reason


def _files(directory: Path) -> list[Path]:
    return [p for p in sorted(directory.rglob("*")) if p.is_file()]


@cached_task(
    "train_stage",
    task_run_name="train_stage-{stage}",
    retries=OOM_RETRIES,
    retry_condition_fn=is_retryable,
)
def train_stage_task(
    features: FeaturesRecord,
    previous: StageRecord | None,
    *,
    stage: int,
    run_dir: Path,
    preset: str,
    variant: str,
    budget_gib: float | None = None,
    memory_line: dict | None = None,
    seed: int = 0,
) -> StageRecord:
    """Train `stage` from `previous`'s best weights (or its own last checkpoint) in a child.

    Cached on the features' hash, the previous stage's record, the stage's settings, the
    preset's values and the code the child runs. Attempt k > 1 resumes from the last checkpoint,
    at half the micro-batch the last one used when attempt k - 1 ran out of memory.

    An injected out-of-memory error (the `oom` test hook of `jetx.testing.faults`, set in the
    flow's process environment, never a parameter of a deployment) reaches the first attempt's
    child only: retries never inject.
    """
    attempt = max(task_run.run_count, 1)
    halve = attempt > 1 and _outcome_of(run_dir, stage, attempt - 1) == "out of memory"
    schedule = get_preset(preset).stages[stage - 1]
    run = RunDir(Path(run_dir).resolve())
    pid_file, record = run.attempt(stage, task_run.id, attempt)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tasks.stage_child", str(features.directory), str(run.path)]
    command += ["--stage", str(stage), "--preset", preset, "--variant", variant]
    command += ["--seed", str(seed)]
    command += ["--halve-micro-batch"] if halve else []
    command += ["--budget-gib", str(budget_gib)] if budget_gib else []
    command += ["--memory-line", json.dumps(memory_line)] if budget_gib and memory_line else []
    command += ["--init", str(previous.best_checkpoint)] if previous else []
    env = retry_environment(dict(os.environ), attempt)
    get_run_logger().info(
        "Stage %d, attempt %d%s", stage, attempt, ", halving the micro-batch" if halve else ""
    )
    child = run_child(
        command,
        env=env,
        on_line=_forward(get_run_logger()),
        on_poll=_progress_reporter(run.path, stage, schedule.epochs),
        pid_file=pid_file,
    )
    outcome, error = _outcome(child, stage)
    write_json(record, {"attempt": attempt, "returncode": child.returncode, "outcome": outcome,
                        "oom_kills": child.oom_kills})  # fmt: skip
    result = read_stage_result(run.path, stage)
    if error is None and result is None:
        error = RuntimeError(f"Stage {stage} failed (exit 0): it wrote no result")
    if error is not None:
        raise error
    files = {c for c in (result.best_checkpoint, result.last_checkpoint)}
    names = [str(p.relative_to(run.path)) for c in sorted(files) for p in _files(run.path / c)]
    return StageRecord.of(run.path, names, stage=stage, attempt=attempt, result=result.to_dict())


def _outcome(child: ChildExit, stage: int) -> tuple[str, Exception | None]:
    """How an attempt ended ("completed", "out of memory", "killed", the failure's kind) and
    the error the task raises for it."""
    code = child.returncode
    if code == 0:
        return "completed", None
    if child.out_of_memory_kill:
        counted = "" if child.oom_kills is None else f"; the kernel counted {child.oom_kills}"
        return "out of memory", OutOfMemory(
            f"Stage {stage}: the child was killed by SIGKILL (exit -9), an OOM kill{counted}"
        )
    if code == EXIT_OUT_OF_MEMORY:
        return "out of memory", OutOfMemory(f"Stage {stage}: {failure_reason(child)}")
    if code < 0:
        name = signal.Signals(-code).name
        return "killed", ChildKilled(
            f"Stage {stage}: the child was killed by {name} (exit {code}) without an OOM kill; "
            "the retry resumes from its last checkpoint at the same micro-batch"
        )
    reason = failure_reason(child)
    kind = reason.split(":", 1)[0]
    outcome = kind if kind in ("input", "machine", "bug") else "failed"
    return outcome, RuntimeError(f"Stage {stage} failed (exit {code}): {reason}")


def _outcome_of(run_dir: Path, stage: int, attempt: int) -> str | None:
    """How an earlier attempt of this task run ended, from its record (None: no record)."""
    _, record = RunDir(Path(run_dir).resolve()).attempt(stage, task_run.id, attempt)
    try:
        return json.loads(record.read_text(encoding="utf-8")).get("outcome")
    except (OSError, ValueError):
        return None


def _progress_reporter(run_dir: Path, stage: int, epochs: int) -> Callable[[], None]:
    """A progress artifact of the stage (epochs done / total) and the function that updates it."""
    artifact = create_progress_artifact(
        0.0, key=f"stage-{stage}-progress", description=f"Stage {stage}: epochs done of {epochs}"
    )

    def report() -> None:
        done = _epochs_done(RunDir(run_dir).metrics, stage)
        update_progress_artifact(artifact, min(100.0, 100.0 * done / epochs))

    return report


def training_dir(
    out: Path, *, features: FeaturesRecord, preset: str, variant: str, seed: int
) -> Path:
    """The run directory of one computation: stages share it, and nothing else resumes from it.

    Its name carries the features' content digest, the preset, variant and seed, and a version
    of what training computes (the preset's values, the variant's model config and the code the
    stage task runs), so that a changed preset, loss or stage loop starts a new run instead of
    resuming an old one's checkpoints.
    """
    config = get_preset(preset)
    version = hash_objects(
        config.to_dict(),
        config.model_for(variant).to_dict(),
        task_code_digest(train_stage_task.fn),
        raise_on_failure=True,
    )
    name = f"{features.digest[:12]}-{preset}-{variant}-s{seed}-{version[:8]}"
    return Workspace(Path(out).resolve()).run(name).path


def train_stages(
    features: FeaturesRecord,
    *,
    stages: int,
    run_dir: Path,
    preset: str,
    variant: str,
    seed: int,
    budget_gib: float | None = None,
    memory_line: dict | None = None,
    name: str | None = None,
) -> list[StageRecord]:
    """The stage chain of one run: stage k starts from stage k - 1's best weights.

    `memory_line` (a `MemoryLine` as a dict, `plan_memory`'s) plans each stage's micro-batch
    for `budget_gib`; without it the stage child plans by the analytic model.

    `name` prefixes the task runs' names (`{name}-{k}`) where one flow trains several runs.
    """
    trained: list[StageRecord] = []
    for number in range(1, stages + 1):
        train = (
            train_stage_task.with_options(task_run_name=f"{name}-{number}")
            if name
            else train_stage_task
        )
        trained.append(
            train(
                features,
                trained[-1] if trained else None,
                stage=number,
                run_dir=run_dir,
                preset=preset,
                variant=variant,
                budget_gib=budget_gib,
                memory_line=memory_line,
                seed=seed,
            )
        )
    return trained
