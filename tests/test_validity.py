"""Validity of the whole pipeline on `jetx synth` data: real ingest, features, training, evaluation.

- Leak detector: on i.i.d. rounds nothing can be learned, so the trained model's test win rate
  must not differ from always-bet's beyond the 95% intervals and its ROI must not be above
  break-even beyond its interval. A feature that leaked the target would make it "win".
- Learns when it can: on planted data the test threshold accuracy reaches 90% of the
  documented Bayes-optimal accuracy (jetx.data.synth.PLANTED_BAYES_ACCURACY), above the best
  constant guess, so passing needs the planted rule; its recalibrated forecasts beat the base
  rate by log loss beyond the skill interval, and the exported model passes the promotion gate.
- Nothing is blessed that has no skill: the i.i.d. run's exported model is not.
- Walk-forward, trained for real: tests/test_walk_forward_training.py.

Each trains stage 1 of the tiny model as `train_data.learning_preset` sets it (and says why).
"""

import pytest
from train_data import learning_preset

from jetx.data.ingest import ingest
from jetx.data.synth import PLANTED_BAYES_ACCURACY, planted_accuracies, synthesize, write_csv
from jetx.evaluation.run import evaluate_run
from jetx.features.build import build_features
from jetx.layout import ModelsDir
from jetx.serving.bundle import export_bundle
from jetx.serving.promotion import promote_run
from jetx.training.schedule import StageData, run_schedule

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]  # make test-e2e; its own limit


def _trained_evaluation(tmp_path, signal: str, rounds: int, seed: int) -> dict:
    """Train and evaluate stage 1 of the tiny model on `jetx synth` rounds under `tmp_path`."""
    write_csv(tmp_path / "history.csv", synthesize(rounds, seed, signal))
    ingest(tmp_path / "history.csv", tmp_path / "data")
    build_features(tmp_path / "data", tmp_path / "features")
    preset = learning_preset()
    data = StageData(tmp_path / "features", preset, "full", seed=0)
    run_schedule(data, tmp_path / "run", verbose=0)
    return evaluate_run(tmp_path / "run")


@pytest.fixture(scope="module")
def iid(tmp_path_factory):
    root = tmp_path_factory.mktemp("iid")
    return root, _trained_evaluation(root, "none", rounds=4000, seed=11)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    # 12,000 rounds (7,700 train, 1,651 test samples): with 6,000 the accuracy spread over data
    # seeds 1-3 was 0.609-0.691 against the 0.652 bar; with 12,000, seeds 1 and 3 gave 0.698 and
    # 0.687 (8 epochs at 3e-3), about 3-4 standard errors above it; seed 1 gives 0.713 with
    # `learning_preset`.
    root = tmp_path_factory.mktemp("planted")
    return root, _trained_evaluation(root, "planted", rounds=12000, seed=1)


def _gate(root) -> dict:
    """Export the run into a fresh models dir and let the promotion gate decide."""
    models = ModelsDir(root / "models")
    export_bundle(root / "run", models.bundle("run").path)
    return promote_run(models, "run")


def test_leak_detector_iid_model_does_not_beat_always_bet(iid):
    _, evaluation = iid
    always = evaluation["baselines"]["always"]
    for stage in evaluation["stages"]:
        for key in ("at_cut", "at_val_cut"):
            model = stage[key]
            if model["bets"] == 0:
                continue
            low, high = model["win_rate_ci"]
            ref_low, ref_high = always["win_rate_ci"]
            assert low <= ref_high and high >= ref_low, (key, model["win_rate_ci"], always)
            assert model["roi_ci"][0] <= 0.0, (key, model["roi_ci"])
        assert "leakage suspect" not in stage["verdict"]
        assert "no difference" in stage["verdict"] or stage["at_cut"]["bets"] == 0


def test_iid_model_has_no_skill_and_is_not_blessed(iid):
    root, evaluation = iid
    final = evaluation["stages"][-1]
    assert "no evidence of skill" in final["skill_verdict"], final["skill_verdict"]
    # Recalibrated on validation, the forecasts sit near the base rate.
    calibration = final["forecast"]["calibration"]
    assert abs(calibration["mean_forecast"] - evaluation["base_rate"]) < 0.05, calibration
    decision = _gate(root)
    assert decision["blessed"] is False and decision["champion"] is None
    assert decision["reasons"][0].startswith(
        ("It does not beat both references beyond noise", "Its forecasts are one constant")
    )


def test_learns_the_planted_rule(planted):
    _, evaluation = planted
    accuracy = evaluation["stages"][-1]["at_cut"]["threshold_accuracy"]
    best_constant = max(planted_accuracies()["always_bet"], planted_accuracies()["never_bet"])
    assert best_constant < 0.9 * PLANTED_BAYES_ACCURACY
    assert accuracy >= 0.9 * PLANTED_BAYES_ACCURACY, accuracy


def test_planted_model_beats_the_base_rate_by_log_loss_and_is_blessed(planted):
    root, evaluation = planted
    final = evaluation["stages"][-1]
    skill = final["forecast"]["skill"]["base_rate"]["log_loss"]
    assert skill["ci"][0] > 0, skill
    assert "evidence of skill over the base rate" in final["skill_verdict"]
    decision = _gate(root)
    assert decision["blessed"] is True, decision["reasons"]
    assert decision["champion"] == decision["latest"] == "run"
