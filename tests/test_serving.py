"""A run as a model people can use: the exported bundle, `jetx predict`, the promotion of
bundles in a models dir, `jetx promote`, and retention.

One tiny run (stage 1 of the tiny preset, trained and evaluated in this process) is exported
once and shared by every test: the bundle is loaded in a fresh process with `safe_mode=True`
and its predictions checked against the evaluation's own, position by position; `jetx predict`
runs as a real process once, its other cases in this process. The promotion and retention tests
copy the real bundle and run (real files), with planted or i.i.d. forecasts written into the
copies' forecasts.npz.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
from train_data import make_features_dir

from jetx.cli import main
from jetx.config import PRESETS
from jetx.data.synth import write_csv
from jetx.evaluation.scores import forecasts
from jetx.io import acquire, release
from jetx.layout import BundleDir, FeaturesDir, ModelsDir, RunDir, StageDir, Workspace
from jetx.serving.bundle import HASHED, STAGING, export_bundle, load_bundle, read_forecasts
from jetx.serving.manifest import file_hashes
from jetx.serving.pointers import point
from jetx.serving.predict import predict_next
from jetx.serving.promotion import decision_markdown, promote_run
from jetx.serving.rescoring import rescore, unseen_by
from jetx.serving.retention import retain
from jetx.testing import faults
from jetx.training.checkpoint import best_checkpoint, checkpoint_problem, checkpoints
from jetx.training.windows import load_split, make_dataset, next_round_inputs

TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def exported(tiny_features, tiny_run, tiny_export, tmp_path_factory):
    """The session's tiny run and its bundle (tests/conftest.py; shared, so every test here that
    changes one works on a copy), and its history as a CSV."""
    root = tmp_path_factory.mktemp("serving")
    features, run_dir, info = tiny_features, tiny_run, tiny_export["info"]
    values = FeaturesDir(features).series
    import pyarrow.parquet as pq

    series = pq.read_table(values, columns=["value"])["value"].to_numpy()
    history = root / "history.csv"
    write_csv(history, series)
    return {"root": root, "run": run_dir, "bundle": tiny_export["bundle"], "info": info,
            "features": features, "series": series, "history": history}  # fmt: skip


def test_the_bundle_holds_what_is_needed_to_use_and_judge_the_model(exported):
    info, bundle = exported["info"], BundleDir(exported["bundle"])
    assert bundle.is_complete() and json.loads(bundle.info_path.read_text()) == info
    assert {"feature_version", "feature_names", "windows", "preset", "variant", "precision",
            "cut", "data_sha256", "rounds", "base_rate", "test"} <= set(info)  # fmt: skip
    evaluation = RunDir(exported["run"]).read_evaluation()
    final = evaluation["stages"][-1]
    assert info["cut"] == final["val_cut"]
    assert info["test"]["verdict"] == f"{final['skill_verdict']} {final['verdict_at_val_cut']}"
    assert info["test"]["skill_tests"] == 1 and info["test"]["skill_test"] == final["skill_test"]
    forecasts = read_forecasts(exported["bundle"])
    with np.load(RunDir(exported["run"]).predictions) as evaluated:
        np.testing.assert_array_equal(forecasts["p_model"], evaluated["p_threshold"][-1])
        np.testing.assert_array_equal(forecasts["y_value"], evaluated["y_value"])
    np.testing.assert_array_equal(
        exported["series"][forecasts["index"]], forecasts["y_value"]
    )  # the positions are the rounds'
    assert np.all(forecasts["p_base_rate"] == info["base_rate"])
    assert info["data_sha256"] == evaluation["data_sha256"]
    assert info["windows"] == TINY.model.sequence_inputs and info["precision"] == "float32"
    assert 0.5 < info["base_rate"] < 0.8
    assert not [p for p in exported["bundle"].rglob("*") if p.suffix in (".pkl", ".pickle")]


@pytest.fixture(scope="module")
def fresh_process(exported):
    """One fresh process (one TensorFlow import): `jetx predict --json` on the history, then the
    bundle's model loaded with `safe_mode=True` and run over the test split."""
    bundle = BundleDir(exported["bundle"])
    predict = ["predict", str(bundle.path), "--history", str(exported["history"]), "--json"]
    code = textwrap.dedent(
        f"""
        import json, sys
        from jetx.cli import main
        exit_code = main({predict!r})
        import numpy as np, keras
        import jetx.model.layers
        from jetx.config import ModelConfig
        from jetx.evaluation.calibration.platt import PlattMap
        from jetx.training.windows import make_dataset
        model = keras.saving.load_model({str(bundle.model)!r}, safe_mode=True)
        info = json.load(open({str(bundle.info_path)!r}))
        config = ModelConfig.from_dict(info["model"])
        batches = make_dataset({str(exported["features"])!r}, "test", config, 64,
                               max_samples={TINY.max_eval_samples})
        ps = [np.asarray(model(x, training=False)["threshold"]).reshape(-1) for x, _ in batches]
        p = PlattMap.from_dict(info["recalibration"]).apply(np.concatenate(ps))
        print(json.dumps({{"p": p.tolist(), "policy": model.dtype_policy.name,
                          "predict_exit": exit_code}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    return {"predict": json.loads(lines[0]), "loaded": json.loads(lines[-1])}


def test_the_model_loads_safely_in_a_fresh_process_and_predicts_as_the_evaluation(
    exported, fresh_process
):
    loaded = fresh_process["loaded"]
    with np.load(RunDir(exported["run"]).predictions) as evaluated:
        # predictions.npz holds every evaluated stage's forecasts; the bundle is the last stage.
        np.testing.assert_allclose(loaded["p"], evaluated["p_threshold"][-1], atol=1e-5)
    assert loaded["policy"] == "float32"


def test_a_prediction_for_a_prefix_uses_the_training_inputs_of_that_sample(exported):
    bundle = load_bundle(exported["bundle"])
    config = bundle.model_config
    test = load_split(exported["features"], "test", TINY.max_eval_samples)
    batches = make_dataset(
        exported["features"], "test", config, 1, max_samples=TINY.max_eval_samples
    )
    with np.load(RunDir(exported["run"]).predictions) as evaluated:
        p_test = evaluated["p_threshold"][-1]
    for row, (inputs, _) in enumerate(batches):
        if row not in (0, len(test.index) - 1):
            continue
        k = int(test.index[row])
        mine = next_round_inputs(exported["series"][:k], bundle.scaler, config)
        for name, batch in inputs.items():
            np.testing.assert_allclose(mine[name], batch.numpy(), rtol=1e-6, atol=1e-6)
        prediction = predict_next(bundle, exported["series"][:k])
        assert prediction["probability"] == pytest.approx(float(p_test[row]), abs=1e-5)


def test_jetx_predict_prints_the_prediction_and_the_bundles_verdict(exported, fresh_process):
    assert fresh_process["loaded"]["predict_exit"] == 0
    out = fresh_process["predict"]
    assert {"probability", "bet", "cut", "base_rate", "verdict", "classes", "regression",
            "rounds_used", "bundle"} <= set(out)  # fmt: skip
    assert out["bet"] is (out["probability"] >= out["cut"])
    assert out["rounds_used"] == len(exported["series"])
    assert out["verdict"] == exported["info"]["test"]["verdict"]
    assert sum(out["classes"].values()) == pytest.approx(1.0, abs=1e-4)


def test_jetx_predict_for_people_follows_the_latest_pointer(exported, capsys, tmp_path):
    models = ModelsDir(tmp_path / "models")
    shutil.copytree(exported["bundle"], models.bundle("run-a").path)
    point(models, ModelsDir.LATEST, "run-a")
    assert main(["predict", str(models.latest), "--history", str(exported["history"])]) == 0
    out = capsys.readouterr().out
    assert "next round: P(value >= 1.5) = " in out
    assert f"this model on its test rounds: {exported['info']['test']['verdict']}" in out
    assert str(models.bundle("run-a").path.resolve()) in out


def test_jetx_predict_refuses_what_it_cannot_predict_in_one_line(exported, tmp_path, capfd):
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
    capfd.readouterr()
    for bundle, history, message in cases:
        code = main(["predict", bundle, "--history", str(history)])
        lines = capfd.readouterr().err.strip().splitlines()
        assert code == 2, (message, lines)
        assert len(lines) == 1 and message in lines[0], lines


def _bundle_with_forecasts(exported, models, name, p_model, y_value, index=None):
    """A copy of the real bundle as models/<name>, with these test forecasts (of the rounds
    `index`, default 1000, 1001, ...)."""
    shutil.copytree(exported["bundle"], models.bundle(name).path)
    with open(models.bundle(name).forecasts, "wb") as handle:
        np.savez(
            handle,
            index=np.arange(1000, 1000 + len(y_value)) if index is None else index,
            y_value=y_value,
            p_model=p_model,
            p_base_rate=np.full(len(y_value), 0.66),
        )
    _reseal(models.bundle(name).path)


def _reseal(path, **changes):
    """Rewrite a copied bundle's bundle.json with `changes` and the sha256 of its files as they
    are now (a planted test fixture, or a tamperer who knows the format)."""
    info = json.loads((path / "bundle.json").read_text())
    info = {**info, "files": file_hashes(path, HASHED), **changes}
    (path / "bundle.json").write_text(json.dumps(info))


def test_latest_always_moves_and_only_a_model_that_earns_it_becomes_champion(exported, tmp_path):
    rng = np.random.default_rng(0)
    p_true = np.where(rng.random(1500) < 0.6, 0.9, 0.3)
    y_value = np.where(rng.random(1500) < p_true, 2.0, 1.2)
    iid = np.clip(0.66 + rng.normal(0, 0.05, 1500), 0.01, 0.99)
    worse = np.clip(p_true + rng.normal(0, 0.1, 1500), 0.01, 0.99)
    models = ModelsDir(tmp_path / "models")
    steps = [("run-a", iid, False, None), ("run-b", p_true, True, "run-b"),
             ("run-c", worse, False, "run-b")]  # fmt: skip
    for number, (name, p_model, blessed, champion) in enumerate(steps, start=1):
        _bundle_with_forecasts(exported, models, name, p_model, y_value)
        record = promote_run(models, name)
        assert (record["blessed"], record["champion"], record["latest"]) == (
            blessed,
            champion,
            name,
        )
        assert json.loads(models.promotion.read_text()) == record
        assert len(models.promotions.read_text().splitlines()) == number
        assert load_bundle(models.latest).path == models.bundle(name).path
    first, _, third = (json.loads(line) for line in models.promotions.read_text().splitlines())
    assert first["reasons"][0].startswith("It does not beat both references beyond noise")
    assert "shares with the champion run-b, its log loss is" in third["reasons"][1]
    assert ": worse beyond noise" in third["reasons"][1]
    assert third["scores"]["vs_champion"]["comparison"]["rounds"] == 1500
    assert [r["budget"]["look"] for r in (first, third)] == [1, 3]
    assert "**not blessed**" in decision_markdown(third)


def test_jetx_promote_pins_a_bundle_by_hand_and_says_so(exported, tmp_path, capsys):
    out = tmp_path / "out"
    models = Workspace(out).models
    _bundle_with_forecasts(exported, models, "run-a", np.full(1500, 0.5), np.full(1500, 2.0))
    promote_run(models, "run-a")
    assert main(["promote", str(exported["bundle"]), "--out", str(out), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    name = exported["info"]["run"]  # a bundle from elsewhere is copied in under its run id
    assert (record["manual"], record["blessed"], record["champion"]) == (True, True, name)
    assert record["latest"] == "run-a" and record["champion_before"] is None
    assert record["reasons"][0].startswith("Pinned by hand (`jetx promote ")
    assert record["scores"]["gate_would_bless"] is False  # 1-stage tiny run: no skill shown
    assert json.loads(models.promotion.read_text()) == record
    assert BundleDir(models.bundle(name).path).is_complete()
    assert main(["promote", str(exported["bundle"]), "--out", str(out)]) == 0  # the same again
    other = tmp_path / "other"
    shutil.copytree(exported["bundle"], other)
    info = json.loads((other / "bundle.json").read_text())
    (other / "bundle.json").write_text(json.dumps({**info, "checkpoint": "stage1/other"}))
    capsys.readouterr()
    assert main(["promote", str(other), "--out", str(out)]) == 2
    assert f"{models.bundle(name).path} exists and is another bundle" in capsys.readouterr().err
    assert main(["promote", str(models.bundle("run-a").path), "--out", str(out)]) == 0
    assert "-> run-a (pinned by hand; the gate " in capsys.readouterr().out


def test_a_champion_is_rescored_on_the_newer_test_rounds_of_a_grown_history(exported, tmp_path):
    # The same seeded series, 800 rounds longer: the retrain's test rounds are all newer than
    # the champion's, so the two share none and only re-scoring can compare them.
    grown = make_features_dir(tmp_path / "grown", n_rounds=2400)
    series = pq.read_table(FeaturesDir(grown).series, columns=["value"])["value"].to_numpy()
    np.testing.assert_array_equal(series[:1600], exported["series"])
    index = load_split(grown, "test", TINY.max_eval_samples).index
    champion = load_bundle(exported["bundle"])
    assert index.min() > read_forecasts(exported["bundle"])["index"].max()
    assert unseen_by(champion, grown, index) is None
    p_champion = rescore(champion, grown, index)
    for row in (0, index.size - 1):  # what the champion predicts for that round, from its past
        expected = predict_next(champion, series[: index[row]])["probability"]
        assert p_champion[row] == pytest.approx(expected, abs=1e-5)
    # The gate: run-a is champion; run-b was tested on the grown history's rounds.
    models = ModelsDir(tmp_path / "models")
    shutil.copytree(exported["bundle"], models.bundle("run-a").path)
    point(models, ModelsDir.CHAMPION, "run-a", at="2026-12-01T00:00:00+00:00")
    y_value = series[index]
    knows = np.where(y_value >= 1.5, 0.8, 0.4)  # a leak: beats the base rate and the champion
    _bundle_with_forecasts(exported, models, "run-b", knows, y_value, index=index)
    without = promote_run(models, "run-b")
    assert without["blessed"] is False and "cannot be compared" in without["reasons"][1]
    record = promote_run(models, "run-b", features_dir=grown)
    assert record["blessed"] is True and record["champion"] == "run-b", record["reasons"]
    assert "Re-scored on 128 rounds it never saw, the champion run-a" in record["reasons"][1]
    assert "on which the champion run-a was re-scored" in record["reasons"][2]
    versus = record["scores"]["vs_champion"]["comparison"]
    assert versus["rounds"] == index.size
    ours = forecasts.proper.log_loss(forecasts.reached(y_value), p_champion).mean()
    assert versus["reference_log_loss"] == pytest.approx(ours)


def test_a_champion_is_not_rescored_on_rounds_it_may_have_learned_or_another_history(
    exported, tmp_path
):
    champion = load_bundle(exported["bundle"])
    tested = read_forecasts(exported["bundle"])["index"]
    why = unseen_by(champion, exported["features"], tested - 50)
    assert "the champion may have trained on them" in why
    # A champion of an older bundle format (saved by an earlier jetx) is compared on its own
    # test rounds, as before re-scoring existed, instead of failing the promotion.
    models = ModelsDir(tmp_path / "models")
    shutil.copytree(exported["bundle"], models.bundle("old").path)
    info = json.loads(models.bundle("old").info_path.read_text())
    models.bundle("old").info_path.write_text(json.dumps({**info, "format": 1}))
    point(models, ModelsDir.CHAMPION, "old", at="2026-12-01T00:00:00+00:00")
    y_value = read_forecasts(exported["bundle"])["y_value"]
    _bundle_with_forecasts(exported, models, "new", np.full(y_value.size, 0.6), y_value,
                           index=tested)  # fmt: skip
    record = promote_run(models, "new", features_dir=exported["features"])
    assert "test rounds it shares with the champion old" in record["reasons"][1]
    other = make_features_dir(tmp_path / "other", n_rounds=2400, seed=1)
    index = load_split(other, "test", TINY.max_eval_samples).index
    assert unseen_by(champion, other, index) == "the champion was tested on another history"


def test_an_export_killed_before_publishing_leaves_nothing_the_next_one_keeps(exported, tmp_path):
    out = tmp_path / "models" / "run"
    gate = tmp_path / "gate"
    gate.write_text("bundle\n")
    env = {**os.environ, **faults.environment(hold=str(gate))}
    writer = subprocess.Popen(
        [sys.executable, "-m", "jetx", "export", str(exported["run"]), "--out", str(out)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not gate.read_text().startswith("held") and time.monotonic() < deadline:
            assert writer.poll() is None, "the export ended before it reached its publication"
            time.sleep(0.1)
        assert gate.read_text().startswith("held"), "the export never reached its publication"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    (staged,) = (p for p in out.parent.glob(f"{STAGING}run-*") if p.is_dir())
    assert BundleDir(staged).model.is_file() and not out.exists()
    alive = out.parent / f"{STAGING}other-x"  # a live export beside it (another pod, say)
    alive.mkdir()
    held = acquire(alive.with_name(f"{alive.name}.lock"), what="a live export")
    try:
        export_bundle(exported["run"], out)
    finally:
        release(held)
    assert BundleDir(out).is_complete() and not staged.exists() and alive.is_dir()
    assert sorted(p.name for p in out.parent.iterdir()) == [alive.name, f"{alive.name}.lock", "run"]


def test_retention_prunes_old_runs_to_one_slim_checkpoint_and_never_champion_or_latest(
    exported, tmp_path
):
    workspace = Workspace(tmp_path / "out")
    names = [f"r{k}" for k in range(1, 6)]
    for age, name in enumerate(reversed(names)):  # r5 is the newest
        run = workspace.run(name)
        shutil.copytree(exported["run"], run.path)
        os.utime(run.run_file, (1e9 - age * 3600, 1e9 - age * 3600))
        shutil.copytree(exported["bundle"], workspace.models.bundle(name).path)
    point(workspace.models, ModelsDir.CHAMPION, "r1")  # the oldest run
    point(workspace.models, ModelsDir.LATEST, "r3")
    stage = StageDir(exported["run"] / "stage1")
    before = [c.name for c in checkpoints(stage.path)]
    best = best_checkpoint(stage.path).name
    assert len(before) >= 2, before  # something to prune

    report = retain(workspace, keep_runs=1)

    assert report["kept"] == ["r1", "r3", "r5"] and set(report["pruned"]) == {"r2", "r4"}
    assert sorted(report["bundles_removed"]) == ["r2", "r4"]
    assert {b.path.name for b in workspace.models.bundles()} == {"r1", "r3", "r5"}
    for name in ("r1", "r3", "r5"):
        assert [c.name for c in checkpoints(workspace.run(name).stage(1).path)] == before
    full = np.load(stage.checkpoints / best / "variables.npz").files
    for name in ("r2", "r4"):
        run = workspace.run(name)
        assert report["pruned"][name] > 0
        kept = checkpoints(run.stage(1).path)
        assert [c.name for c in kept] == [best] and checkpoint_problem(kept[0]) is None
        slim = np.load(kept[0] / "variables.npz").files
        assert slim and all(k.startswith("model/") for k in slim) and len(slim) < len(full)
        assert run.evaluation.is_file() and run.stage(1).result.is_file()
    info = export_bundle(workspace.run("r2").path, tmp_path / "again")  # still exportable
    assert info["stage"] == 1 and BundleDir(tmp_path / "again").is_complete()
    assert retain(workspace, keep_runs=1)["pruned"] == {"r2": 0, "r4": 0}  # nothing more
    busy = workspace.run("r0")  # the oldest, but in use: left alone
    shutil.copytree(exported["run"], busy.path)
    os.utime(busy.run_file, (1e8, 1e8))
    held, release = threading.Event(), threading.Event()

    def hold():
        with busy.lock():
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(60)
        again = retain(workspace, keep_runs=1)
    finally:
        release.set()
        holder.join()
    assert "is in use" in again["skipped"]["r0"] and "r0" not in again["pruned"]
    assert [c.name for c in checkpoints(busy.stage(1).path)] == before


def test_the_look_count_lives_in_the_ledger_and_survives_retention_a_pin_and_latest(
    exported, tmp_path, capsys
):
    out = tmp_path / "out"
    models = Workspace(out).models
    y_value, p_model = _iid_rounds(seed=3)
    for number, name in enumerate(("run-a", "run-b"), start=1):
        _bundle_with_forecasts(exported, models, name, p_model[number:], y_value[number:])
        assert promote_run(models, name)["budget"]["look"] == number
    # The same forecasts decided again (a rerun of the same export) keep their look.
    assert promote_run(models, "run-a")["budget"]["look"] == 1
    # Retention removes bundles, never the ledger; a pin is no look; `latest` may go.
    assert retain(Workspace(out), keep_runs=1)["bundles_removed"] == ["run-b"]
    assert main(["promote", str(models.bundle("run-a").path), "--out", str(out)]) == 0
    models.latest.unlink()
    with open(models.promotions, "a", encoding="utf-8") as log:
        log.write("{not json\n")  # a damaged line counts as a look: the safe side
    _bundle_with_forecasts(exported, models, "run-c", p_model[3:], y_value[3:])
    record = promote_run(models, "run-c")
    assert record["budget"]["look"] == 4 and record["blessed"] is False
    assert "This is look 4 of the models dir" in record["reasons"][0]
    assert record["budget"]["level"] == pytest.approx(0.05 * 6 / (np.pi**2 * 16))
    assert json.loads(models.promotion.read_text()) == record


def _iid_rounds(seed: int, rounds: int = 1500):
    rng = np.random.default_rng(seed)
    y_value = np.where(rng.random(rounds) < 0.66, 2.0, 1.2)
    return y_value, np.clip(0.66 + rng.normal(0, 0.05, rounds), 0.01, 0.99)


def test_a_champion_rescored_on_new_iid_rounds_is_demoted_and_predict_says_so(
    exported, tmp_path, capsys
):
    # run-a (the tiny run: no skill on these i.i.d. rounds) is champion, blessed earlier and
    # already scored on 900 new rounds where it was barely ahead (z = 0.3); the grown history's
    # test rounds bring it past CONFIRM_ROUNDS, where it must beat the references beyond noise.
    grown = make_features_dir(tmp_path / "grown", n_rounds=2400)
    index = load_split(grown, "test", TINY.max_eval_samples).index
    out = tmp_path / "out"
    models = Workspace(out).models
    shutil.copytree(exported["bundle"], models.bundle("run-a").path)
    assert main(["promote", str(models.bundle("run-a").path), "--out", str(out)]) == 0
    prior = {"champion": "run-a", "rounds": 900, "z": {"base_rate": 0.3, "house": 0.3},
             "last_index": int(index.min()) - 1}  # fmt: skip
    with open(models.promotions, "a", encoding="utf-8") as log:
        log.write(json.dumps({"bundle": "earlier", "budget": None, "prospective": prior}) + "\n")
    series = pq.read_table(FeaturesDir(grown).series, columns=["value"])["value"].to_numpy()
    y_value = series[index]
    noise = np.clip(0.66 + np.random.default_rng(4).normal(0, 0.05, index.size), 0.01, 0.99)
    _bundle_with_forecasts(exported, models, "run-b", noise, y_value, index=index)
    record = promote_run(models, "run-b", features_dir=grown)
    assert record["demoted"] == "run-a" and record["champion"] is None, record["reasons"]
    assert record["blessed"] is False and not models.champion.exists()
    assert "it is demoted, as a champion must keep earning it" in record["reasons"][1]
    assert record["prospective"]["total_rounds"] == 900 + index.size
    assert record["scores"]["champion_vs_base_rate"]["comparison"]["rounds"] == index.size
    capsys.readouterr()
    bundle = str(models.bundle("run-a").path)
    assert main(["predict", bundle, "--history", str(exported["history"])]) == 0
    assert capsys.readouterr().out.startswith(f"DEMOTED on {record['decided_at']}: ")
    assert main(["predict", bundle, "--history", str(exported["history"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["demoted"]["reasons"] == record["reasons"]
    assert main(["predict", str(models.latest), "--history", str(exported["history"])]) == 0
    assert "DEMOTED" not in capsys.readouterr().out


def test_a_constant_forecaster_at_the_validation_rate_is_never_blessed(exported, tmp_path):
    table = pq.read_table(
        FeaturesDir(exported["features"]).features, columns=["threshold", "split"]
    )
    frame = table.to_pandas()
    val_rate = float(frame.loc[frame["split"] == "val", "threshold"].mean())
    models = ModelsDir(tmp_path / "models")
    y_value, _ = _iid_rounds(seed=5)  # the tiny bundle's own 90 test rounds are under the minimum
    _bundle_with_forecasts(exported, models, "run-a", np.full(y_value.size, val_rate), y_value)
    record = promote_run(models, "run-a")
    assert record["blessed"] is False and record["champion"] is None
    assert (
        f"Its forecasts are one constant ({val_rate:.4f}) for every round" in (record["reasons"][0])
    )
