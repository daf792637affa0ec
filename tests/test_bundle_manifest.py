"""A tampered bundle is refused in one line (exit 2) by `jetx predict`, and none is used.

Each case copies the session's real bundle (tests/conftest.py) and changes one thing, as a
careless edit, a damaged disk or an attacker would: a file's bytes (caught by the sha256 in
bundle.json), a field of bundle.json with its hashes made to match (caught by the schema,
`jetx.serving.manifest.BundleManifest`), a scaler.json or model.keras that is well hashed but
unusable (a Lambda layer that safe_mode refuses), and pointers that lead out of models/.
"""

import json
import shutil

import numpy as np
import pytest

from jetx.cli import main
from jetx.data.synth import write_csv
from jetx.layout import FeaturesDir
from jetx.serving.bundle import HASHED
from jetx.serving.manifest import file_hashes


def _reseal(path, info=None):
    info = json.loads((path / "bundle.json").read_text()) if info is None else info
    info["files"] = file_hashes(path, HASHED)
    (path / "bundle.json").write_text(json.dumps(info))


def _field(key, value, inner=None):
    """Set bundle.json's `key` (or `key.inner`) to `value`, hashes kept matching."""

    def change(path):
        info = json.loads((path / "bundle.json").read_text())
        if inner is None:
            info[key] = value
        else:
            info[key][inner] = value
        _reseal(path, info)

    return change


def _unhashed(files):
    """bundle.json's `files` replaced by `files` (not resealed)."""

    def change(path):
        info = json.loads((path / "bundle.json").read_text())
        (path / "bundle.json").write_text(json.dumps({**info, "files": files}))

    return change


def _drop(key):
    def change(path):
        info = json.loads((path / "bundle.json").read_text())
        del info[key]
        (path / "bundle.json").write_text(json.dumps(info))

    return change


def _bytes(name, resealed=False, text=None):
    """Change a file of the bundle: flip a byte, or write `text`; reseal the hashes if asked."""

    def change(path):
        if text is not None:
            (path / name).write_text(text)
        else:
            data = bytearray((path / name).read_bytes())
            data[len(data) // 2] ^= 0x01
            (path / name).write_bytes(bytes(data))
        if resealed:
            _reseal(path)

    return change


def _scaler(**changes):
    def change(path):
        scaler = json.loads((path / "scaler.json").read_text())
        (path / "scaler.json").write_text(json.dumps({**scaler, **changes}))
        _reseal(path)

    return change


def _lambda_model(path):
    import keras

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    saved = path.parent / "lambda.keras"
    model.save(saved)
    shutil.copyfile(saved, path / "model.keras")
    _reseal(path)


def _older_format(path):
    info = json.loads((path / "bundle.json").read_text())
    info["format"] = 2
    del info["files"]
    (path / "bundle.json").write_text(json.dumps(info))


TAMPERED = [
    ("slope -50", _field("recalibration", -50.0, "slope"), "`recalibration.slope`"),
    ("slope NaN", _field("recalibration", float("nan"), "slope"), "`recalibration.slope`"),
    ("slope inf", _field("recalibration", float("inf"), "slope"), "`recalibration.slope`"),
    ("cut NaN", _field("cut", float("nan")), "field `cut`"),
    ("cut 1.5", _field("cut", 1.5), "field `cut`"),
    ("cut text", _field("cut", "0.5"), "field `cut`"),
    ("no cut", _drop("cut"), "field `cut`: Field required"),
    ("skill tests text", _field("test", "1", "skill_tests"), "`test.skill_tests`"),
    ("verdict missing", _field("test", {}), "`test."),
    ("unknown key", _field("extra", 1), "field `extra`"),
    ("run is a path", _field("run", "../x"), "field `run`"),
    ("model config", _field("model", {"no_such_knob": 1}), "field `model`"),
    ("data sha", _field("data_sha256", "abc"), "field `data_sha256`"),
    ("no hashes", _drop("files"), "field `files`"),
    ("hashes of other files", _unhashed({"model.keras": "0" * 64}), "field `files` must"),
    ("older format", _older_format, "bundle format 2; this jetx reads format 3"),
    ("json list", _bytes("bundle.json", text="[1, 2]"), "bundle.json: not a JSON object"),
    ("not json", _bytes("bundle.json", text="{"), "bundle.json: not valid JSON"),
    ("model bytes", _bytes("model.keras"), "model.keras: does not match its sha256"),
    ("scaler bytes", _bytes("scaler.json"), "scaler.json: does not match its sha256"),
    ("forecasts bytes", _bytes("forecasts.npz"), "forecasts.npz: does not match its sha256"),
    ("scaler not json", _bytes("scaler.json", True, "{"), "scaler.json: not valid JSON"),
    ("scaler std 0", _scaler(std=[0.0] * 100), "positive stds"),
    ("scaler names", _scaler(names=["x"]), "must hold the"),
    ("scaler list", _bytes("scaler.json", True, "[]"), "scaler.json: not a JSON object"),
    ("lambda layer", _lambda_model, "model.keras: cannot be loaded safely"),
]


@pytest.fixture(scope="module")
def history(tiny_features, tmp_path_factory):
    import pyarrow.parquet as pq

    series = pq.read_table(FeaturesDir(tiny_features).series, columns=["value"])["value"]
    path = tmp_path_factory.mktemp("history") / "history.csv"
    write_csv(path, series.to_numpy())
    return path


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in TAMPERED], ids=[c[0] for c in TAMPERED]
)
def test_a_tampered_bundle_is_refused_in_one_line_and_not_used(
    tiny_export, history, tmp_path, capfd, change, message
):
    bundle = tmp_path / "models" / "run-a"
    shutil.copytree(tiny_export["bundle"], bundle)
    change(bundle)
    capfd.readouterr()
    code = main(["predict", str(bundle), "--history", str(history), "--json"])
    captured = capfd.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, (message, captured.err[-2000:])
    assert len(lines) == 1 and message in lines[0], lines
    assert captured.out == ""  # no prediction was made from it


def test_the_untampered_copy_predicts(tiny_export, history, tmp_path, capfd):
    bundle = tmp_path / "run-a"
    shutil.copytree(tiny_export["bundle"], bundle)
    assert main(["predict", str(bundle), "--history", str(history), "--json"]) == 0
    assert 0 <= json.loads(capfd.readouterr().out)["probability"] <= 1


@pytest.mark.parametrize("target", ["../outside", "/tmp", "", ".."])
def test_a_pointer_out_of_models_is_refused_in_one_line(
    tiny_export, history, tmp_path, capfd, target
):
    models = tmp_path / "models"
    shutil.copytree(tiny_export["bundle"], tmp_path / "outside")
    models.mkdir()
    (models / "latest").write_text(json.dumps({"bundle": target}))
    capfd.readouterr()
    code = main(["predict", str(models / "latest"), "--history", str(history)])
    lines = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert "field `bundle` must name a bundle directory beside it" in lines[0]


def test_the_exported_manifest_holds_the_sha256_of_every_other_file(tiny_export):
    bundle = tiny_export["bundle"]
    info = json.loads((bundle / "bundle.json").read_text())
    assert set(info["files"]) == {"model.keras", "scaler.json", "forecasts.npz"}
    assert info["files"] == file_hashes(bundle, HASHED) and info["format"] == 3
    assert np.isfinite(info["recalibration"]["slope"]) and info["recalibration"]["slope"] >= 0
