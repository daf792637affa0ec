"""A run as a model people can use: the exported bundle, `jetx predict`, and their errors.

One tiny run (stage 1 of the tiny preset, trained and evaluated in this process) is exported
once; the bundle is then loaded in a fresh process with `safe_mode=True`, and predictions are
checked against the evaluation's own, position by position.
"""

import dataclasses
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from train_data import make_features_dir

from jetx.config import PRESETS
from jetx.data.synth import write_csv
from jetx.evaluation.scoring import evaluate_run
from jetx.layout import BundleDir, FeaturesDir, RunDir
from jetx.serving.bundle import export_bundle, load_bundle
from jetx.serving.predict import predict_next
from jetx.training.inputs import StageData
from jetx.training.schedule import run_schedule
from jetx.training.windows import load_split, make_dataset, next_round_inputs

pytestmark = pytest.mark.slow
TINY = PRESETS["tiny"]
JETX = [sys.executable, "-m", "jetx"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    features = make_features_dir(root)
    one_stage = dataclasses.replace(TINY, stages=(dataclasses.replace(TINY.stages[0], epochs=1),))
    run_dir = root / "run"
    run_schedule(StageData(features, one_stage, "full", 0), run_dir, verbose=0)
    evaluate_run(run_dir)
    info = export_bundle(run_dir, root / "bundle")
    values = FeaturesDir(features).series
    import pyarrow.parquet as pq

    series = pq.read_table(values, columns=["value"])["value"].to_numpy()
    history = root / "history.csv"
    write_csv(history, series)
    return {"root": root, "run": run_dir, "bundle": root / "bundle", "info": info,
            "features": features, "series": series, "history": history}  # fmt: skip


def test_the_bundle_holds_what_is_needed_to_use_and_judge_the_model(exported):
    info, bundle = exported["info"], BundleDir(exported["bundle"])
    assert bundle.is_complete() and json.loads(bundle.info_path.read_text()) == info
    assert {"feature_version", "feature_names", "windows", "preset", "variant", "precision",
            "cut", "data_sha256", "rounds", "base_rate", "test"} <= set(info)  # fmt: skip
    evaluation = RunDir(exported["run"]).read_evaluation()
    final = evaluation["stages"][-1]
    assert (
        info["cut"] == final["val_cut"] and info["test"]["verdict"] == final["verdict_at_val_cut"]
    )
    assert info["data_sha256"] == evaluation["data_sha256"]
    assert info["windows"] == TINY.model.sequence_inputs and info["precision"] == "float32"
    assert 0.5 < info["base_rate"] < 0.8
    assert not [p for p in exported["bundle"].rglob("*") if p.suffix in (".pkl", ".pickle")]


def test_the_model_loads_safely_in_a_fresh_process_and_predicts_as_the_evaluation(exported):
    bundle = BundleDir(exported["bundle"])
    code = textwrap.dedent(
        f"""
        import json, numpy as np, keras
        import jetx.model.layers
        from jetx.config import ModelConfig
        from jetx.training.windows import make_dataset
        model = keras.saving.load_model({str(bundle.model)!r}, safe_mode=True)
        info = json.load(open({str(bundle.info_path)!r}))
        config = ModelConfig.from_dict(info["model"])
        batches = make_dataset({str(exported["features"])!r}, "test", config, 64,
                               max_samples={TINY.max_eval_samples})
        ps = [np.asarray(model(x, training=False)["threshold"]).reshape(-1) for x, _ in batches]
        print(json.dumps({{"p": np.concatenate(ps).tolist(), "policy": model.dtype_policy.name}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    with np.load(RunDir(exported["run"]).predictions) as evaluated:
        np.testing.assert_allclose(loaded["p"], evaluated["p_threshold"], atol=1e-5)
    assert loaded["policy"] == "float32"


def test_a_prediction_for_a_prefix_uses_the_training_inputs_of_that_sample(exported):
    bundle = load_bundle(exported["bundle"])
    config = bundle.model_config
    test = load_split(exported["features"], "test", TINY.max_eval_samples)
    batches = make_dataset(
        exported["features"], "test", config, 1, max_samples=TINY.max_eval_samples
    )
    with np.load(RunDir(exported["run"]).predictions) as evaluated:
        p_test = evaluated["p_threshold"]
    for row, (inputs, _) in enumerate(batches):
        if row not in (0, len(test.index) - 1):
            continue
        k = int(test.index[row])
        mine = next_round_inputs(exported["series"][:k], bundle.scaler, config)
        for name, batch in inputs.items():
            np.testing.assert_allclose(mine[name], batch.numpy(), rtol=1e-6, atol=1e-6)
        prediction = predict_next(bundle, exported["series"][:k])
        assert prediction["probability"] == pytest.approx(float(p_test[row]), abs=1e-5)


def _predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*JETX, "predict", *args], capture_output=True, text=True, timeout=300)


def test_jetx_predict_prints_the_prediction_and_the_bundles_verdict(exported):
    done = _predict(str(exported["bundle"]), "--history", str(exported["history"]), "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    assert {"probability", "bet", "cut", "base_rate", "verdict", "classes", "regression",
            "rounds_used", "bundle"} <= set(out)  # fmt: skip
    assert out["bet"] is (out["probability"] >= out["cut"])
    assert out["rounds_used"] == len(exported["series"])
    assert out["verdict"] == exported["info"]["test"]["verdict"]
    assert sum(out["classes"].values()) == pytest.approx(1.0, abs=1e-4)
    human = _predict(str(exported["bundle"]), "--history", str(exported["history"]))
    assert human.returncode == 0 and "this model on its test rounds: " in human.stdout


def test_jetx_predict_refuses_what_it_cannot_predict_in_one_line(exported, tmp_path):
    short = tmp_path / "short.csv"
    write_csv(short, exported["series"][:999])
    bad = tmp_path / "bad.csv"
    bad.write_text(exported["history"].read_text() + f"{len(exported['series']) + 1},1.5x\n")
    other = tmp_path / "other-bundle"
    other.mkdir()
    for name in BundleDir.FILES:
        (other / name).write_bytes((exported["bundle"] / name).read_bytes())
    info = json.loads((other / "bundle.json").read_text())
    (other / "bundle.json").write_text(json.dumps({**info, "feature_version": "0"}))
    cases = [
        (str(exported["bundle"]), short, "needs at least 1000 valid rounds"),
        (str(exported["bundle"]), bad, "the newest round (id 1601, '1.5x') is not a valid"),
        (str(other), exported["history"], "trained on feature version '0'"),
    ]
    for bundle, history, message in cases:
        done = _predict(bundle, "--history", str(history))
        assert done.returncode == 2, (message, done.stderr[-2000:])
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
