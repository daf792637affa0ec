"""Early stopping and the plateau: two monitors, each with its configuration and saved state."""

import dataclasses

import pytest

from jetx.config import PRESETS, MonitorConfig, StageConfig
from jetx.errors import JetxInputError
from jetx.training.monitors import MonitorState
from jetx.training.state import TrainState


@pytest.mark.parametrize(
    "mode, min_delta, best, value, improves",
    [
        ("min", 0.0, None, 5.0, True),
        ("min", 0.0, 1.0, 0.99, True),
        ("min", 0.0, 1.0, 1.0, False),
        ("min", 0.05, 1.0, 0.96, False),  # better, but not by more than min_delta
        ("min", 0.05, 1.0, 0.94, True),
        ("max", 0.0, 0.5, 0.6, True),
        ("max", 0.1, 0.5, 0.55, False),
        ("max", 0.0, 0.5, 0.4, False),
    ],
)
def test_what_counts_as_an_improvement(mode, min_delta, best, value, improves):
    config = MonitorConfig(mode=mode, min_delta=min_delta, patience=1)
    assert config.improves(value, best) is improves


def test_patience_runs_out_after_that_many_epochs_without_improvement_then_starts_again():
    config = MonitorConfig(monitor="val_loss", patience=2)
    state = MonitorState()
    acted = [state.update(config, {"val_loss": v}) for v in (1.0, 0.9, 0.95, 0.92, 0.97, 0.8)]
    assert acted == [False, False, False, True, False, False]
    assert (state.best, state.wait) == (0.8, 0)


def test_the_two_monitors_of_a_stage_are_configured_apart():
    stage = dataclasses.replace(
        PRESETS["full"].stages[0],
        early_stopping=MonitorConfig(monitor="val_loss", min_delta=1e-3, patience=7),
        plateau=MonitorConfig(monitor="val_threshold_loss", patience=3),
    )
    again = StageConfig.from_dict(stage.to_dict())
    assert again == stage and again.plateau.monitor == "val_threshold_loss"


def test_a_stage_and_a_checkpoint_state_saved_before_the_monitors_still_read():
    stage = PRESETS["full"].stages[0].to_dict()
    del stage["early_stopping"], stage["plateau"]
    old = StageConfig.from_dict({**stage, "patience": 9, "plateau_patience": 4})
    assert (old.early_stopping.patience, old.plateau.patience) == (9, 4)
    assert old.early_stopping.monitor == "val_loss" and old.early_stopping.min_delta == 0.0
    state = TrainState.start(stage=1, micro_batch=8, seed=0, learning_rate=1e-3).to_dict()
    monitor = {k: v for k, v in state["monitor"].items() if k not in ("early_stopping", "plateau")}
    state["monitor"] = {**monitor, "best_val_loss": 0.7, "wait": 3, "plateau_wait": 1}
    restored = TrainState.from_dict(state).monitor
    assert restored.early_stopping == MonitorState(best=0.7, wait=3)
    assert restored.plateau == MonitorState(best=0.7, wait=1)


def test_the_monitors_state_round_trips_through_a_checkpoints_state():
    state = TrainState.start(stage=2, micro_batch=4, seed=1, learning_rate=1e-4)
    state.monitor.early_stopping = MonitorState(best=0.61, wait=2)
    state.monitor.plateau = MonitorState(best=0.6, wait=1)
    assert TrainState.from_dict(state.to_dict()) == state


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "lower"}, "`mode` must be one of ('min', 'max'). Received: mode='lower'"),
        ({"min_delta": -1.0}, "`min_delta` must be >= 0. Received: min_delta=-1.0"),
        ({"patience": 0}, "`patience` must be >= 1. Received: patience=0"),
    ],
)
def test_a_bad_monitor_is_named(kwargs, message):
    with pytest.raises(JetxInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MonitorConfig(**kwargs)


def test_a_monitored_key_missing_from_the_logs_is_named():
    with pytest.raises(JetxInputError, match="The monitored `val_auc` is not in the epoch"):
        MonitorState().update(MonitorConfig(monitor="val_auc"), {"val_loss": 1.0})
