"""Staged training: `train_stage` trains one stage, `run_schedule` chains a preset's stages.

Each stage starts from the previous stage's best weights, resumes from its own last checkpoint
in RUN_DIR if it has one, and recovers from out-of-memory errors by halving its micro-batch
(accumulation doubles, the effective batch stays) and restoring its last checkpoint. Everything
a stage needs is rebuilt from paths and configs, so it can run in a child process
(`jetx train FEATURES_DIR ... --stages 2` continues an existing RUN_DIR). Under a tf.distribute
strategy (`jetx.training.distribute`: the micro-batch is global) the model, optimizer and
accumulators are created in the strategy's scope and every micro-batch is spread over the replicas.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from jetx.config import GIB, NORMALIZATIONS, StageConfig
from jetx.errors import JetxInputError
from jetx.io import write_json
from jetx.layout import RunDir
from jetx.runtime import stage_peak, variable_bytes
from jetx.testing import faults
from jetx.training.accumulation import GradientAccumulator
from jetx.training.callbacks import (
    EpochLogger,
    EpochRecordWriter,
    MemoryMonitor,
    TensorBoardLogger,
)
from jetx.training.checkpoint import (
    best_checkpoint,
    latest_checkpoint,
    restore_variables,
)
from jetx.training.distribute import Distribution, get_distribution, synchronize_batch_norm
from jetx.training.epoch_history import read_records
from jetx.training.inputs import StageData
from jetx.training.loop import StageLoop
from jetx.training.losses import StageLoss
from jetx.training.memory_plan import MemoryLine, plan_stage
from jetx.training.precision import needs_loss_scaling, set_precision
from jetx.training.result import StageResult
from jetx.training.resume import (
    StageOutOfMemoryError,
    halve_micro_batch,
    recover_checkpoints,
    resume_state,
)
from jetx.training.state import TrainState
from jetx.training.validator import Validator

__all__ = ["StageData", "StageOutOfMemoryError", "StageResult", "run_schedule", "train_stage"]

logger = logging.getLogger(__name__)


def train_stage(
    stage: StageConfig,
    data: StageData,
    start: Path | keras.Model | None,
    run_dir: Path,
    *,
    precision: str | None = None,
    budget_bytes: int | None = None,
    keep_last: int = 3,
    verbose: int = 1,
    strategy: str = "none",
    micro_batch: int | None = None,
    lock_wait: float | None = 0.0,
    memory_line: MemoryLine | None = None,
) -> StageResult:
    """Train one stage to its end, resuming from its last checkpoint in `run_dir` if any.

    Args:
        stage: the stage's configuration.
        data: features dir, model config, variant, seed and caps.
        start: the previous stage's best checkpoint directory, a built model (used as is), or
            None for fresh weights. Ignored when the stage resumes from its own checkpoint.
        run_dir: the run's directory; this stage writes `run_dir/stage{N}` and appends to
            `run_dir/metrics.jsonl` and `run_dir/tensorboard`.
        precision: dtype policy (`jetx.config.PRECISIONS`); None picks the device's default.
        budget_bytes: memory budget; when given, the micro-batch is planned before training.
        keep_last: checkpoints kept besides the best.
        verbose: 1 shows a progress bar per epoch.
        strategy: tf.distribute strategy, one of `jetx.config.STRATEGIES`; the stage's
            micro-batch is global and must be divisible by the replica count. Under
            "multi-worker" only the chief writes to `run_dir`; worker N writes to
            `run_dir/workerN`.
        micro_batch: a ceiling on the stage's micro-batch (accumulation grows to keep the
            effective batch), also over a resumed checkpoint's: what a retry asks for after the
            kernel killed the previous attempt for memory. None keeps the schedule's.
        lock_wait: seconds to wait for another writer of `run_dir` (0: fail at once, as
            `jetx train` does; None: no limit, as the flow's stage child does). The run's lock
            is held while the stage trains.
        memory_line: the measured plan's line (`jetx.training.memory_plan`) that plans the
            micro-batch for `budget_bytes`; None plans it by the analytic model.

    Returns:
        The stage's `StageResult` (also written to `run_dir/stage{N}/result.json`).

    Raises:
        StageOutOfMemoryError: out of memory at the smallest micro-batch (1, or the replica
            count under a strategy).
        JetxInputError: a checkpoint or start that does not fit the model (or is damaged), a
            seed that differs from the one the stage was started with, an unknown strategy, a
            micro-batch the replica count does not divide, or `run_dir` in use by another
            process (DirectoryInUseError).
    """
    if micro_batch is not None:
        stage = stage.with_micro_batch(micro_batch)
    distribution = get_distribution(strategy)
    precision = set_precision(precision)
    run_dir = distribution.worker_dir(Path(run_dir))
    with RunDir(run_dir).lock(wait=lock_wait):
        data.record(run_dir, distribution.name)
        resumed_from = recover_checkpoints(RunDir(run_dir).stage(stage.stage).path)
        loop = _build_loop(
            stage=stage,
            data=data,
            start=start,
            run_dir=run_dir,
            precision=precision,
            keep_last=keep_last,
            verbose=verbose,
            distribution=distribution,
        )
        replicas = distribution.replicas
        micro_batch, memory_plan = _initial_micro_batch(
            stage, data, budget_bytes, precision, replicas, memory_line
        )
        distribution.check_micro_batch(micro_batch)
        with distribution.strategy.scope():
            _train(loop, data, micro_batch, budget_bytes)
        return _result(loop, run_dir, precision, resumed_from, memory_plan)


def _train(loop: StageLoop, data: StageData, micro_batch: int, budget_bytes: int | None) -> None:
    change = None
    for callback in loop.callbacks:
        callback.on_train_begin()
    while True:
        loop.state = resume_state(loop, data, micro_batch, change)
        try:
            loop.run()
            break
        except tf.errors.ResourceExhaustedError as error:
            micro_batch, change = halve_micro_batch(loop, data, budget_bytes, error)
    for callback in loop.callbacks:
        callback.on_train_end()


def run_schedule(
    data: StageData,
    run_dir: Path,
    *,
    stages: tuple[int, ...] | None = None,
    **options: Any,
) -> list[StageResult]:
    """Train the preset's stages in order, each from the previous stage's best checkpoint.

    Args:
        data: as for `train_stage`; its preset supplies the stage schedule.
        run_dir: the run's directory; stages already finished there are not trained again.
        stages: stage numbers to run (default: all); a later stage alone needs the earlier
            stage's checkpoints in `run_dir`.
        **options: keyword options of `train_stage` (precision, budget_bytes, verbose,
            strategy, ...).

    Returns:
        One `StageResult` per stage run.

    Raises:
        JetxInputError: an unknown stage number, or a missing previous stage.
    """
    preset = data.preset
    known = [s.stage for s in preset.stages]
    wanted = tuple(stages) if stages else tuple(known)
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        raise JetxInputError(f"`stages` must be among {known}. Received: stages={list(wanted)}")
    results = []
    distribution = get_distribution(options.get("strategy", "none"))
    with RunDir(distribution.worker_dir(Path(run_dir))).lock(wait=options.get("lock_wait", 0.0)):
        for index, stage in enumerate(preset.stages):
            if stage.stage in wanted:
                start = _previous_best(preset.stages[index - 1], run_dir) if index else None
                results.append(train_stage(stage, data, start, run_dir, **options))
    return results


def _build_loop(
    *,
    stage: StageConfig,
    data: StageData,
    start: Path | keras.Model | None,
    run_dir: Path,
    precision: str,
    keep_last: int,
    verbose: int,
    distribution: Distribution,
) -> StageLoop:
    """The stage's objects; model, optimizer and accumulators in the strategy's scope."""
    if isinstance(start, keras.Model):
        if distribution.name != "none":
            raise JetxInputError(
                f"strategy {distribution.name!r} builds its own model in its scope; pass a "
                "checkpoint directory as `start`, not a built model."
            )
        model = start
    else:
        model = None
        keras.backend.clear_session()
        keras.utils.set_random_seed(data.seed + stage.stage)
    loss = StageLoss(stage)
    with distribution.strategy.scope():
        model = model if model is not None else _fresh_model(data, start, distribution)
        optimizer = keras.optimizers.Adam(stage.learning_rate)
        accumulator = GradientAccumulator(
            model,
            optimizer,
            loss,
            loss_scaling=needs_loss_scaling(precision),
            strategy=distribution.strategy,
        )
    run = RunDir(run_dir)
    callbacks = [
        MemoryMonitor(floor_bytes=variable_bytes(model.variables)),
        EpochLogger(stage.epochs),
        EpochRecordWriter(run.metrics),
        TensorBoardLogger(run.tensorboard / f"stage{stage.stage}"),
    ]
    if (injected := faults.active()) is not None:  # a test's hooks, None in production
        callbacks.append(injected.callback(stage.stage))
    for callback in callbacks:  # what keras.callbacks.CallbackList would do, without its
        callback.set_model(model)  # pythonify_logs, which turns every integer log into a float
    state = TrainState.start(
        stage=stage.stage,
        micro_batch=stage.micro_batch,
        seed=data.seed,
        learning_rate=stage.learning_rate,
    )
    return StageLoop(
        stage=stage,
        data=data,
        accumulator=accumulator,
        validator=Validator(model, loss),
        state=state,
        directory=run.stage(stage.stage).path,
        callbacks=callbacks,
        keep_last=keep_last,
        verbose=verbose,
        distribution=distribution,
    )


def _fresh_model(data: StageData, start: Path | None, distribution: Distribution) -> keras.Model:
    model = data.build_model()
    if start is not None:
        restore_variables(Path(start), {"model": model.variables})
    if distribution.name != "none":
        synchronize_batch_norm(model)
    return model


def _initial_micro_batch(
    stage, data, budget_bytes, precision, replicas: int = 1, line: MemoryLine | None = None
) -> tuple[int, str]:
    """The stage's global micro-batch, lowered to what the memory plan says fits the budget,
    and how it was planned ("" without a budget, else the plan's method and device).

    The budget is per device: each of the `replicas` devices holds micro_batch / replicas.
    """
    if budget_bytes is None:
        return stage.micro_batch, ""
    if line is None:
        from jetx.model.footprint import plan

        memory_plan = plan(data.model, stage, budget_bytes, precision)
        how = "analytic model"
    else:
        memory_plan = plan_stage(line, stage, budget_bytes)
        how = f"measured on {line.device}" if line.method == "measured" else "analytic fallback"
    limit = min(stage.micro_batch, memory_plan.micro_batch * replicas)
    fits = stage.micro_batches(replicas=replicas, at_most=limit)
    micro_batch = fits[0] if fits else stage.micro_batch
    logger.info(
        "stage %d: budget %.2f GiB fits micro-batch %d (peak %.2f GiB, %s); training %d x %d",
        stage.stage,
        budget_bytes / GIB,
        memory_plan.micro_batch,
        memory_plan.predicted_peak_bytes / GIB,
        how,
        micro_batch,
        stage.effective_batch // micro_batch,
    )
    return micro_batch, how


def _previous_best(previous: StageConfig, run_dir: Path) -> Path:
    directory = RunDir(run_dir).stage(previous.stage).path
    best = best_checkpoint(directory)
    if best is None:
        raise JetxInputError(
            f"stage {previous.stage + 1} starts from stage {previous.stage}'s best weights, but "
            f"{directory} has no checkpoint. Run stage {previous.stage} first."
        )
    return best


def _result(
    loop: StageLoop, run_dir: Path, precision: str, resumed_from: Path | None, memory_plan: str
) -> StageResult:
    state, run = loop.state, RunDir(run_dir)
    records = [r for r in read_records(run.metrics) if r.get("stage") == state.stage]
    peak, source = stage_peak(records)
    last = latest_checkpoint(loop.directory)
    best = best_checkpoint(loop.directory) or last
    result = StageResult(
        stage=state.stage,
        best_checkpoint=str(best.relative_to(run_dir)),
        last_checkpoint=str(last.relative_to(run_dir)),
        resumed_from=resumed_from.name if resumed_from else None,
        epochs_run=state.progress.epoch,
        updates=state.progress.updates,
        best_epoch=state.monitor.best_epoch,
        best_val_metrics=dict(state.monitor.best_metrics),
        micro_batch=state.batching.micro_batch,
        accumulation=loop.accumulation,
        micro_batch_changes=tuple(state.batching.micro_batch_changes),
        memory_peak_bytes=peak,
        memory_source=source,
        skipped_windows=state.batching.skipped_windows,
        precision=precision,
        strategy=loop.distribution.name,
        replicas=loop.distribution.replicas,
        normalization=loop.data.model.normalization,
        memory_plan=memory_plan,
    )
    write_json(run.stage(state.stage).result, result.to_dict())
    logger.info(
        "stage %d done: %d epochs, %d updates, best epoch %s (val_loss %s), micro-batch %d x %d; "
        "%s",
        state.stage,
        result.epochs_run,
        result.updates,
        "none" if result.best_epoch is None else result.best_epoch + 1,  # 1-based, as the log
        _rounded(result.best_val_metrics.get("val_loss")),
        result.micro_batch,
        result.accumulation,
        NORMALIZATIONS[result.normalization],
    )
    return result


def _rounded(value: float | None) -> str:
    """A figure for a log line: 4 significant digits, not a float's 16."""
    return "none" if value is None else f"{value:.4g}"
