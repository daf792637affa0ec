"""build_features end to end on a seeded crash-game series: files, splits, scaler, errors, CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import jetx.features.build as prepare
from jetx.cli import main
from jetx.config import PRESETS
from jetx.errors import JetxInputError
from jetx.features import FEATURE_NAMES, FEATURE_VERSION, FIRST_SAMPLE
from jetx.features.build import build_features
from jetx.features.splits import Scaler, split_counts
from jetx.io import sha256_file
from jetx.training.windows import make_dataset

N_ROUNDS = 3000
CHUNK = 700  # several row groups per build, so the streaming path is what is tested


def _crash_series(n, seed):
    """P(X >= x) = 0.97 / x, floored at 1.00, rounded to 2 decimals (docs/design.md)."""
    u = np.random.default_rng(seed).random(n)
    return np.maximum(1.0, np.floor(0.97 / u * 100) / 100)


def _write_series(directory, values):
    directory.mkdir(parents=True, exist_ok=True)
    table = pa.table({"id": np.arange(1, len(values) + 1, dtype=np.int64), "value": values})
    pq.write_table(table, directory / "series.parquet")
    return directory


def _build(series_dir, out_dir, **kwargs):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prepare, "CHUNK_ROWS", CHUNK)
        return build_features(series_dir, out_dir, **kwargs)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("prepare")
    values = _crash_series(N_ROUNDS, seed=42)
    series_dir = _write_series(root / "series", values)
    manifest = _build(series_dir, root / "features")
    table = pq.read_table(root / "features" / "features.parquet")
    return {"root": root, "values": values, "manifest": manifest, "table": table}


def test_features_parquet_schema_and_rows(built):
    table, values = built["table"], built["values"]
    expected = [
        ("index", pa.int64()),
        *[(name, pa.float32()) for name in FEATURE_NAMES],
        ("regression", pa.float64()),
        ("classification", pa.int8()),
        ("threshold", pa.int8()),
        ("split", pa.string()),
    ]
    assert [(f.name, f.type) for f in table.schema] == expected
    index = table["index"].to_numpy()
    np.testing.assert_array_equal(index, np.arange(FIRST_SAMPLE, N_ROUNDS))
    np.testing.assert_array_equal(table["regression"].to_numpy(), values[index])
    np.testing.assert_array_equal(table["threshold"].to_numpy(), values[index] >= 1.5)
    classes = table["classification"].to_numpy()
    np.testing.assert_array_equal(
        classes, (values[index] >= 1.5).astype(int) + (values[index] >= 10)
    )
    features = np.stack([table[n].to_numpy() for n in FEATURE_NAMES], axis=1)
    assert np.isfinite(features).all()
    path = built["root"] / "features" / "features.parquet"
    assert pq.ParquetFile(path).metadata.num_row_groups > 1


def test_split_is_chronological_and_counts_match(built):
    split = np.asarray(built["table"]["split"].to_pylist())
    counts = split_counts(N_ROUNDS - FIRST_SAMPLE)
    assert built["manifest"]["counts"] == counts
    expected = np.repeat(["train", "val", "test"], [counts["train"], counts["val"], counts["test"]])
    np.testing.assert_array_equal(split, expected)


def test_manifest_and_self_contained_dir(built):
    out, manifest = built["root"] / "features", built["manifest"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["series_sha256"] == sha256_file(built["root"] / "series" / "series.parquet")
    assert manifest["feature_names"] == list(FEATURE_NAMES)
    assert manifest["feature_version"] == FEATURE_VERSION
    assert manifest["first_sample"] == FIRST_SAMPLE
    assert manifest["fractions"] == [0.70, 0.15, 0.15]
    assert manifest["n_rounds"] == N_ROUNDS
    assert "created_at" in manifest
    assert sha256_file(out / "series.parquet") == manifest["series_sha256"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".jetx.lock",  # the writer's lock file (one writer per directory), held by nobody now
        "features.parquet",
        "manifest.json",
        "scaler.json",
        "series.parquet",
    ]


def test_scaler_is_fit_on_train_rows(built):
    table = built["table"]
    train = table.filter(pa.compute.equal(table["split"], "train"))
    rows = np.stack([train[n].to_numpy().astype(np.float64) for n in FEATURE_NAMES], axis=1)
    scaler = Scaler.load(built["root"] / "features" / "scaler.json")
    assert scaler.names == FEATURE_NAMES
    np.testing.assert_allclose(scaler.mean, rows.mean(axis=0), rtol=1e-9, atol=1e-12)
    std = rows.std(axis=0)
    np.testing.assert_allclose(scaler.std, np.where(scaler.std == 1.0, 1.0, std), rtol=1e-7)


def test_scaler_never_sees_val_or_test_rows(built, tmp_path):
    """Change every round from the last train sample's target on: train features cannot move."""
    counts = built["manifest"]["counts"]
    last_train = FIRST_SAMPLE + counts["train"] - 1
    perturbed = built["values"].copy()
    perturbed[last_train:] = perturbed[last_train:] * 3.0 + 5.0
    _build(_write_series(tmp_path / "series", perturbed), tmp_path / "features")
    before = json.loads((built["root"] / "features" / "scaler.json").read_text())
    after = json.loads((tmp_path / "features" / "scaler.json").read_text())
    assert after == before
    # The perturbation is real: val features (which read those rounds) did change.
    new = pq.read_table(tmp_path / "features" / "features.parquet")
    val = slice(counts["train"] + 1, counts["train"] + counts["val"])
    old = built["table"]
    changed = [
        n
        for n in FEATURE_NAMES
        if not np.array_equal(new[n].to_numpy()[val], old[n].to_numpy()[val])
    ]
    assert len(changed) > len(FEATURE_NAMES) // 2


def test_windows_read_the_built_dir(built):
    out, values = built["root"] / "features", built["values"]
    model = PRESETS["tiny"].model_for("full")
    inputs, targets = next(iter(make_dataset(out, "test", model, 4)))
    first_test = (
        FIRST_SAMPLE + built["manifest"]["counts"]["train"] + built["manifest"]["counts"]["val"]
    )
    np.testing.assert_array_equal(
        targets["regression"].numpy()[:, 0], values[first_test : first_test + 4].astype(np.float32)
    )
    length = model.sequence_inputs["seq1000"]
    expected = np.log10(values[first_test - length : first_test]).astype(np.float32)
    np.testing.assert_array_equal(inputs["seq1000"].numpy()[0, :, 0], expected)


def test_crash_mid_build_leaves_no_partial_file_and_no_manifest(built, tmp_path):
    """A failure after the first chunk (simulated: the chunk iterator raises) publishes nothing."""
    out = tmp_path / "features"
    _build(built["root"] / "series", out)
    old_features = sha256_file(out / "features.parquet")
    real = prepare.iter_feature_chunks

    def failing(values, **kwargs):
        iterator = real(values, **kwargs)
        yield next(iterator)
        raise RuntimeError("simulated crash")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(prepare, "iter_feature_chunks", failing)
        with pytest.raises(RuntimeError, match="simulated crash"):
            _build(built["root"] / "series", out)
    assert not (out / "manifest.json").exists()
    assert sha256_file(out / "features.parquet") == old_features
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]
    with pytest.raises(JetxInputError, match="must be a complete `jetx features` output"):
        make_dataset(out, "train", PRESETS["tiny"].model_for("full"), 8)


@pytest.mark.parametrize(
    ("n_rounds", "fractions", "message"),
    [
        (900, (0.70, 0.15, 0.15), "The series must have more than 1000 rounds"),
        (1000, (0.70, 0.15, 0.15), "Received: 1000 rounds"),
        (1005, (0.70, 0.15, 0.15), "Every split needs at least one sample; 5 samples"),
        (1200, (0.70, 0.20, 0.15), "`fractions` must be three positive numbers"),
    ],
)
def test_bad_input_is_one_clear_error(tmp_path, n_rounds, fractions, message):
    series_dir = _write_series(tmp_path / "series", _crash_series(n_rounds, seed=1))
    with pytest.raises(JetxInputError, match=message) as error:
        build_features(series_dir, tmp_path / "out", fractions=fractions)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_bad_values_are_rejected(tmp_path):
    values = _crash_series(1200, seed=2)
    values[1100] = 0.5
    series_dir = _write_series(tmp_path / "series", values)
    with pytest.raises(JetxInputError, match=r"finite number >= 1.00 .* Received: 0.5 at row 1100"):
        build_features(series_dir, tmp_path / "out")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["features", "{missing}", "--out", "{out}"], "no series.parquet; run `jetx ingest"),
        (["features", "{series}", "--out", "{out}", "--fractions", "0.7,x,0.3"], "--fractions"),
        (["features", "{series}", "--out", "{out}", "--fractions", "0.7,0.2"], "`fractions` must"),
    ],
)
def test_cli_errors_are_one_line(built, tmp_path, capsys, argv, message):
    paths = {
        "missing": tmp_path / "nothing",
        "out": tmp_path / "out",
        "series": built["root"] / "series",
    }
    assert main([arg.format(**paths) for arg in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("jetx features: error:") and message in err and "\n" not in err


def test_cli_subprocess_writes_dir_and_json(built, tmp_path):
    out = tmp_path / "cli"
    command = [
        sys.executable,
        "-m",
        "jetx",
        "features",
        str(built["root"] / "series"),
        "--out",
        str(out),
        "--json",
        "--fractions",
        "0.6,0.2,0.2",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env={**os.environ}
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["counts"] == split_counts(N_ROUNDS - FIRST_SAMPLE, (0.6, 0.2, 0.2))
    assert manifest == json.loads((out / "manifest.json").read_text())
