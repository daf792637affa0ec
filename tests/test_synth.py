"""Synthetic histories: the i.i.d. law, the planted rule and its exact Bayes accuracy, the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from jetx.data import synth
from jetx.data.ingest import ingest
from jetx.data.series import read_series
from jetx.errors import JetxInputError


def test_none_matches_the_crash_law():
    values = synth.synthesize(400_000, seed=7)
    for x in (1.5, 2.0, 3.0, 10.0):
        assert abs(x * np.mean(values >= x) - synth.HOUSE) < 0.01, x
    assert abs(np.mean(values == 1.0) - (1 - synth.HOUSE / 1.01)) < 0.002
    assert np.all(values >= 1.0) and np.allclose(values * 100, np.round(values * 100), atol=1e-6)
    logs = np.log(values)
    assert abs(np.corrcoef(logs[1:], logs[:-1])[0, 1]) < 0.01


def test_deterministic_per_seed():
    for signal in synth.SIGNALS:
        first = synth.synthesize(5000, seed=3, signal=signal)
        assert np.array_equal(first, synth.synthesize(5000, seed=3, signal=signal))
        assert not np.array_equal(first, synth.synthesize(5000, seed=4, signal=signal))


def test_planted_accuracies_exact_values():
    accuracies = synth.planted_accuracies()
    assert accuracies["bayes"] == pytest.approx(0.7240968, abs=1e-6)
    assert accuracies["always_bet"] == pytest.approx(0.4575341, abs=1e-6)
    assert accuracies["never_bet"] == pytest.approx(1 - accuracies["always_bet"])
    assert accuracies["bayes"] == synth.PLANTED_BAYES_ACCURACY
    assert synth.planted_stationary().sum() == pytest.approx(1.0)


def test_planted_rule_and_bayes_accuracy_hold_empirically():
    values = synth.synthesize(600_000, seed=11, signal="planted")
    under = values < synth.THRESHOLD
    after_run = np.r_[False, False, under[:-2] & under[1:-1]]
    assert np.mean(under[after_run]) == pytest.approx(synth.PLANTED_P_UNDER, abs=0.005)
    assert np.mean(under[~after_run]) == pytest.approx(synth.P_UNDER, abs=0.005)
    bayes_bet = ~after_run  # bet (predict >= 1.5) unless the last two rounds were under 1.5
    accuracy = np.mean(bayes_bet == ~under)
    assert accuracy == pytest.approx(synth.PLANTED_BAYES_ACCURACY, abs=0.004)
    assert np.mean(~under) == pytest.approx(synth.PLANTED_ALWAYS_BET_ACCURACY, abs=0.004)
    # The 0.97/x shape holds on each side of 1.5.
    over = values[~under]
    assert 2.0 * np.mean(over >= 2.0) == pytest.approx(1.5, abs=0.02)
    assert np.mean(values[under] == 1.0) == pytest.approx(
        (1 - synth.HOUSE / 1.01) / synth.P_UNDER, abs=0.01
    )


@pytest.mark.parametrize(
    ("rounds", "seed", "signal", "message"),
    [
        (0, 1, "none", "`rounds` must be at least 1. Received: rounds=0"),
        (10, -1, "none", "`seed` must be >= 0. Received: seed=-1"),
        (10, 1, "weekly", "`signal` must be one of ('none', 'planted'). Received: signal='weekly'"),
    ],
)
def test_bad_arguments(rounds, seed, signal, message):
    with pytest.raises(JetxInputError) as caught:
        synth.synthesize(rounds, seed, signal)
    assert str(caught.value) == message


def test_cli_synth_then_ingest_round_trips(tmp_path):
    out = tmp_path / "planted.csv"
    command = [sys.executable, "-m", "jetx", "synth", "--rounds", "3000", "--seed", "5"]
    result = subprocess.run(
        [*command, "--out", str(out), "--signal", "planted"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines()[:1] == ["id,value"]
    manifest = ingest(out, tmp_path / "series")
    assert manifest["rows_kept"] == 3000 and manifest["rows_quarantined"] == 0
    expected = synth.synthesize(3000, 5, "planted")
    assert np.array_equal(read_series(tmp_path / "series"), expected)
    bad = subprocess.run(
        [*command[:-4], "--rounds", "0", "--seed", "1", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert (
        bad.stderr.strip() == "jetx synth: error: `rounds` must be at least 1. Received: rounds=0"
    )


def test_bundled_sample_is_the_documented_command(tmp_path):
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "data" / "sample.csv"
    synth.write_csv(tmp_path / "again.csv", synth.synthesize(20_000, seed=2))
    assert sample.read_bytes() == (tmp_path / "again.csv").read_bytes()
