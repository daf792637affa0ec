"""The stage engine end to end on the tiny preset: schedule, records, OOM recovery, resume rules."""

import dataclasses
import json

import numpy as np
import pytest
import tensorflow as tf

from jetx.config import PLAN_MARGIN, PRESETS
from jetx.errors import JetxInputError
from jetx.layout import RunDir
from jetx.testing import faults
from jetx.testing.faults import parse_oom_spec
from jetx.training.checkpoint import CHECKPOINTS
from jetx.training.epoch_history import read_records
from jetx.training.precision import check_precision
from jetx.training.result import StageResult
from jetx.training.schedule import (
    StageData,
    StageOutOfMemoryError,
    run_schedule,
    train_stage,
)

TINY = PRESETS["tiny"]
EPOCH_KEYS = {
    "stage",
    "epoch",
    "loss",
    "regression_loss",
    "classification_loss",
    "threshold_loss",
    "val_loss",
    "val_mae",
    "val_threshold_accuracy",
    "lr",
    "memory_device",
    "memory_peak_bytes",
    "rss_peak_bytes",
    "micro_batch",
    "accumulation",
    "seconds",
}


@pytest.fixture(scope="module")
def data(tiny_features):
    return StageData(tiny_features, TINY, "full", 0)  # the session's features, read only


@pytest.fixture(scope="module")
def schedule(data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    return run_dir, run_schedule(data, run_dir, stages=(1, 2), verbose=0, keep_last=100)


def _model_arrays(checkpoint):
    with np.load(checkpoint / "variables.npz") as stored:
        return [stored[k] for k in sorted(stored.files) if k.startswith("model/")]


def test_schedule_trains_every_stage_with_its_batch_shape(schedule):
    run_dir, results = schedule
    assert [r.stage for r in results] == [1, 2]
    for result, stage in zip(results, TINY.stages[:2], strict=True):
        assert result.epochs_run == stage.epochs
        assert (result.micro_batch, result.accumulation) == (stage.micro_batch, stage.accumulation)
        assert result.updates == stage.epochs * (TINY.max_train_samples // stage.effective_batch)
        assert (run_dir / result.best_checkpoint).is_dir()
        assert (run_dir / result.last_checkpoint).is_dir()
        assert np.isfinite(result.best_val_metrics["val_loss"])
        assert result.micro_batch_changes == () and result.precision == "float32"
        saved = json.loads((RunDir(run_dir).stage(stage.stage).path / "result.json").read_text())
        assert StageResult.from_dict(saved) == result


def test_the_run_records_what_trained_it(schedule, data):
    run_dir, _ = schedule
    info = json.loads((run_dir / "run.json").read_text())
    assert info["preset"] == json.loads(json.dumps(TINY.to_dict()))
    assert (info["variant"], info["seed"]) == ("full", 0)
    assert StageData.from_run(run_dir) == data


def test_a_run_of_another_preset_is_refused(schedule, data, tmp_path):
    run_dir, _ = schedule
    longer = dataclasses.replace(
        TINY, stages=tuple(dataclasses.replace(s, epochs=5) for s in TINY.stages)
    )
    with pytest.raises(JetxInputError, match="another preset .*another run directory"):
        run_schedule(dataclasses.replace(data, preset=longer), run_dir, verbose=0)


def test_metrics_jsonl_has_one_record_per_epoch_per_stage(schedule):
    run_dir, _ = schedule
    records = read_records(run_dir / "metrics.jsonl")
    assert [(r["stage"], r["epoch"]) for r in records] == [(s, e) for s in (1, 2) for e in (0, 1)]
    for record in records:
        assert set(record) >= EPOCH_KEYS
        assert record["memory_device"] == "CPU:0" and record["rss_peak_bytes"] > 0
    assert {r["accumulation"] for r in records} == {8}


def _scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    """Tag -> [(step, value)] of the event files of one TensorBoard run, read back."""
    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                found.setdefault(value.tag, []).append((event.step, number))
    return found


def test_tensorboard_has_train_and_validation_runs_with_shared_tags_in_update_steps(schedule):
    run_dir, results = schedule
    records = read_records(run_dir / "metrics.jsonl")
    for result in results:
        log_dir = run_dir / "tensorboard" / f"stage{result.stage}"
        train, validation = _scalars(log_dir / "train"), _scalars(log_dir / "validation")
        mine = [r for r in records if r["stage"] == result.stage]
        steps = [r["updates"] for r in mine]
        per_epoch = TINY.max_train_samples // TINY.stages[result.stage - 1].effective_batch
        assert [s for s, _ in train["epoch_loss"]] == steps == [per_epoch, 2 * per_epoch]
        assert [s for s, _ in validation["epoch_loss"]] == steps  # one tag, two curves
        assert [v for _, v in validation["epoch_loss"]] == pytest.approx(
            [r["val_loss"] for r in mine]
        )
        assert set(train) >= {"epoch_regression_loss", "epoch_learning_rate"}
        assert "epoch_mae" in validation and "epoch_mae" not in train
        memory = [t for t in train if t.startswith("memory_peak_mib/")]
        assert f"memory_peak_mib/{mine[0]['memory_source']}" in memory
        assert "memory_peak_mib/rss" in memory


def test_each_stage_starts_from_the_previous_best(schedule):
    run_dir, results = schedule
    for previous, result in zip(results, results[1:], strict=False):
        first = (
            RunDir(run_dir).stage(result.stage).path / CHECKPOINTS / "ckpt-000001"
        )  # before training
        start, best = _model_arrays(first), _model_arrays(run_dir / previous.best_checkpoint)
        assert len(start) == len(best)
        for a, b in zip(start, best, strict=True):
            np.testing.assert_array_equal(a, b)
        last = _model_arrays(run_dir / result.last_checkpoint)
        assert any(np.any(a != b) for a, b in zip(start, last, strict=True))


def test_rerun_of_a_finished_run_trains_nothing(schedule, data):
    run_dir, results = schedule
    before = (run_dir / "metrics.jsonl").read_text()
    again = run_schedule(data, run_dir, stages=(1, 2), verbose=0)
    assert [r.last_checkpoint for r in again] == [r.last_checkpoint for r in results]
    assert (run_dir / "metrics.jsonl").read_text() == before


def test_out_of_memory_halves_the_micro_batch_and_keeps_the_effective_batch(data, tmp_path):
    stage = TINY.stages[0]
    with faults.injected(oom="1:2"):
        result = train_stage(stage, data, None, tmp_path, verbose=0)
    assert (result.micro_batch, result.accumulation) == (4, 16)
    (change,) = result.micro_batch_changes
    assert change["from"] == 8 and change["to"] == 4 and change["accumulation"] == 16
    assert change["update"] == 2 and change["error"] == "ResourceExhaustedError"
    assert result.updates == stage.epochs * (TINY.max_train_samples // stage.effective_batch)
    shapes = [
        (r["micro_batch"], r["accumulation"]) for r in read_records(tmp_path / "metrics.jsonl")
    ]
    assert shapes == [(4, 16), (4, 16)]


def test_out_of_memory_at_micro_batch_one_names_variant_and_budget(data, tmp_path):
    stage = TINY.stages[2]  # micro-batch 2: 2 -> 1 -> no further
    expected = "variant 'full'.*micro-batch 1.*budget: none"
    with faults.injected(oom="3:0,3:0"), pytest.raises(StageOutOfMemoryError, match=expected):
        train_stage(stage, data, None, tmp_path, verbose=0)


def test_resume_with_another_seed_is_refused(data, tmp_path):
    stage = dataclasses.replace(TINY.stages[0], epochs=1)
    other = dataclasses.replace(data, seed=5)
    with faults.injected(oom="1:0,1:0,1:0,1:0"), pytest.raises(StageOutOfMemoryError):
        train_stage(stage, data, None, tmp_path, verbose=0)  # stops after checkpoint 1
    with pytest.raises(JetxInputError, match="another seed .*Received: seed=5"):
        train_stage(stage, other, None, tmp_path, verbose=0)


def test_start_checkpoint_of_another_variant_is_refused(schedule, data, tmp_path):
    run_dir, results = schedule
    other = dataclasses.replace(data, variant="no1000")
    start = run_dir / results[0].best_checkpoint
    with pytest.raises(JetxInputError, match="another variant"):
        train_stage(TINY.stages[1], other, start, tmp_path, verbose=0)


def test_later_stage_alone_needs_the_previous_stage(data, tmp_path):
    with pytest.raises(JetxInputError, match="stage 1's best weights.*Run stage 1 first"):
        run_schedule(data, tmp_path, stages=(2,), verbose=0)
    with pytest.raises(JetxInputError, match=r"`stages` must be among \[1, 2, 3\]"):
        run_schedule(data, tmp_path, stages=(4,), verbose=0)


@pytest.mark.parametrize(
    ("spec", "pairs"), [(None, []), ("1:3", [(1, 3)]), ("1:0,1:0,2:5", [(1, 0), (1, 0), (2, 5)])]
)
def test_parse_oom_spec(spec, pairs):
    assert parse_oom_spec(spec) == pairs


def test_parse_oom_spec_error():
    with pytest.raises(JetxInputError, match="`JETX_FAULTS`'s `oom`.*Received: '1-3'"):
        parse_oom_spec("1-3")


def test_precision_choice_on_cpu():
    assert check_precision(None) == "float32"
    assert check_precision("mixed_bfloat16") == "mixed_bfloat16"
    with pytest.raises(JetxInputError, match="Received: precision='fp8'"):
        check_precision("fp8")


def test_memory_budget_plans_the_micro_batch_before_training(data, tmp_path):
    from jetx.model.footprint import predict_peak

    stage = dataclasses.replace(TINY.stages[0], epochs=1)
    peak = {m: predict_peak(data.model, m, "float32").predicted_peak_bytes for m in (2, 4)}
    budget = int((peak[2] + peak[4]) * (1 + PLAN_MARGIN) / 2)  # micro-batch 2 fits, 4 does not
    result = train_stage(stage, data, None, tmp_path, verbose=0, budget_bytes=budget)
    assert (result.micro_batch, result.accumulation) == (2, 32)
    (record,) = read_records(tmp_path / "metrics.jsonl")
    assert (record["micro_batch"], record["accumulation"]) == (2, 32)
    with pytest.raises(JetxInputError, match="does not fit the budget"):
        train_stage(stage, data, None, tmp_path / "small", verbose=0, budget_bytes=1024)


def test_every_callback_gets_its_model_and_the_epoch_begins_and_ends(data, tmp_path):
    # Keras's contract for a callback (set_model, then on_epoch_begin/end around the batches),
    # kept without keras's CallbackList, whose pythonify_logs would turn integer logs to floats.
    from keras.callbacks import Callback

    from jetx.training.distribute import get_distribution
    from jetx.training.schedule import _build_loop

    loop = _build_loop(
        stage=dataclasses.replace(TINY.stages[0], epochs=1),
        data=data,
        start=None,
        run_dir=tmp_path,
        precision="float32",
        keep_last=2,
        verbose=0,
        distribution=get_distribution("none"),
    )
    assert all(callback.model is loop.accumulator.model for callback in loop.callbacks)
    hooks = []

    class Recorder(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            hooks.append(f"begin {epoch}")

        def on_train_batch_begin(self, batch, logs=None):
            if hooks[-1] != "batches":
                hooks.append("batches")

        def on_epoch_end(self, epoch, logs=None):
            hooks.append(f"end {epoch} {type(logs['stage']).__name__}")

    loop.callbacks.append(Recorder())
    loop.run()
    assert hooks == ["begin 0", "batches", "end 0 int"]


def test_a_measured_line_plans_the_micro_batch_and_the_result_names_it(data, tmp_path):
    from jetx.training.memory_plan import MemoryLine

    stage = dataclasses.replace(TINY.stages[0], epochs=1)
    line = MemoryLine(10 * 2**20, 2**20, "measured", "CPU:0", ((2, 12 * 2**20), (4, 14 * 2**20)))
    budget = int(line.peak(4) * (1 + PLAN_MARGIN)) + 1  # micro-batch 4 fits by the line, 8 not
    result = train_stage(
        stage, data, None, tmp_path, verbose=0, budget_bytes=budget, memory_line=line
    )
    assert (result.micro_batch, result.accumulation) == (4, 16)
    assert result.memory_plan == "measured on CPU:0"
