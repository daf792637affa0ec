"""Lazy windows: exact slices, train-scaler standardisation, variants, seeded order, resume, caps.

The features dir here is written directly with pyarrow from a seeded series and random feature
columns, so that these tests exercise jetx.training.windows on its own; test_build runs the real
build.
"""

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from jetx.config import PRESETS
from jetx.errors import JetxInputError
from jetx.features.splits import fit_scaler, split_labels
from jetx.features.targets import compute_targets
from jetx.training.windows import epoch_order, make_dataset, num_samples

FIRST = 1000
N_ROUNDS = 1400
N_FEATURES = 121
TINY = PRESETS["tiny"].model_for("full")
NO1000 = PRESETS["tiny"].model_for("no1000")


def _write_features_dir(out, values, first=FIRST):
    rng = np.random.default_rng(7)
    index = np.arange(first, len(values), dtype=np.int64)
    names = [f"f{j:03d}" for j in range(N_FEATURES)]
    features = (rng.normal(size=(len(index), N_FEATURES)) * 3 + 2).astype(np.float32)
    labels = split_labels(index - first, len(index))
    targets = compute_targets(values[index])
    columns = {"index": index, **{n: features[:, j] for j, n in enumerate(names)}, **targets}
    table = pa.table({**columns, "split": pa.array(labels.tolist(), pa.string())})
    pq.write_table(table, out / "features.parquet", row_group_size=100)
    fit_scaler(features[labels == "train"], names).save(out / "scaler.json")
    pq.write_table(
        pa.table({"id": np.arange(len(values)), "value": values}), out / "series.parquet"
    )
    counts = {s: int((labels == s).sum()) for s in ("train", "val", "test")}
    manifest = {"feature_names": names, "first_sample": first, "counts": counts}
    (out / "manifest.json").write_text(json.dumps(manifest))
    return {"index": index, "features": features, "labels": labels}


@pytest.fixture(scope="module")
def fdir(tmp_path_factory):
    out = tmp_path_factory.mktemp("features")
    rng = np.random.default_rng(0)
    values = np.maximum(1.0, np.floor(0.97 / rng.random(N_ROUNDS) * 100) / 100)
    return out, values, _write_features_dir(out, values)


def _collect(dataset):
    batches = list(dataset.as_numpy_iterator())
    keys_in, keys_out = batches[0][0].keys(), batches[0][1].keys()
    inputs = {k: np.concatenate([b[0][k] for b in batches]) for k in keys_in}
    targets = {k: np.concatenate([b[1][k] for b in batches]) for k in keys_out}
    return inputs, targets, [len(b[1]["regression"]) for b in batches]


@pytest.mark.parametrize(("split", "shuffle"), [("train", True), ("val", False), ("test", True)])
def test_windows_equal_direct_slices(fdir, split, shuffle):
    out, values, written = fdir
    index = written["index"][written["labels"] == split]
    ds = make_dataset(out, split, TINY, 16, shuffle=shuffle, seed=3, epoch=1)
    inputs, targets, _ = _collect(ds)
    order = epoch_order(len(index), 3, 1) if shuffle else np.arange(len(index))
    samples = index[order]
    rng = np.random.default_rng(11)
    for row in rng.choice(len(samples), size=20, replace=False):
        i = samples[row]
        for name, length in TINY.sequence_inputs.items():
            expected = np.log10(values[i - length : i]).astype(np.float32)
            np.testing.assert_array_equal(inputs[name][row, :, 0], expected)
    np.testing.assert_array_equal(targets["regression"][:, 0], values[samples].astype(np.float32))
    np.testing.assert_array_equal(
        targets["classification"].argmax(1), compute_targets(values[samples])["classification"]
    )
    np.testing.assert_array_equal(targets["threshold"][:, 0], values[samples] >= 1.5)


def test_features_standardised_with_train_scaler(fdir):
    out, _, written = fdir
    train = written["features"][written["labels"] == "train"]
    test = written["features"][written["labels"] == "test"]
    inputs, _, _ = _collect(make_dataset(out, "test", TINY, 32))
    expected = (test - train.mean(axis=0, dtype=np.float64)) / train.std(axis=0, dtype=np.float64)
    np.testing.assert_allclose(inputs["features"], expected, rtol=1e-5, atol=1e-5)
    train_inputs, _, _ = _collect(make_dataset(out, "train", TINY, 64))
    np.testing.assert_allclose(train_inputs["features"].mean(axis=0), 0, atol=1e-4)


def test_full_model_windows_of_1000(fdir):
    out, values, written = fdir
    full = PRESETS["full"].model_for("full")
    inputs, _, _ = _collect(make_dataset(out, "val", full, 8).take(2))
    assert inputs["seq1000"].shape == (16, 1000, 1)
    i = written["index"][written["labels"] == "val"][15]
    np.testing.assert_array_equal(
        inputs["seq1000"][15, :, 0], np.log10(values[i - 1000 : i]).astype(np.float32)
    )


@pytest.mark.parametrize(
    ("model", "expected_keys"),
    [
        (TINY, {"features", "seq50", "seq200", "seq500", "seq1000"}),
        (NO1000, {"features", "seq50", "seq200", "seq500"}),
    ],
)
def test_variant_aware_inputs(fdir, model, expected_keys):
    ds = make_dataset(fdir[0], "train", model, 4)
    assert set(ds.element_spec[0]) == expected_keys
    assert set(ds.element_spec[1]) == {"regression", "classification", "threshold"}
    inputs, targets = next(iter(ds))
    assert inputs["features"].shape == (4, N_FEATURES)
    for name, length in model.sequence_inputs.items():
        assert inputs[name].shape == (4, length, 1)
        assert inputs[name].dtype == "float32"
    assert targets["classification"].shape == (4, 3)
    assert targets["regression"].shape == targets["threshold"].shape == (4, 1)


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    np.testing.assert_array_equal(epoch_order(1000, 5, 3), epoch_order(1000, 5, 3))
    assert not np.array_equal(epoch_order(1000, 5, 3), epoch_order(1000, 5, 4))
    assert not np.array_equal(epoch_order(1000, 5, 3), epoch_order(1000, 6, 3))
    np.testing.assert_array_equal(np.sort(epoch_order(1000, 5, 3)), np.arange(1000))


def test_shuffled_dataset_follows_epoch_order_and_differs_per_epoch(fdir):
    out = fdir[0]
    first = _collect(make_dataset(out, "train", NO1000, 8, shuffle=True, seed=1, epoch=0))[1]
    again = _collect(make_dataset(out, "train", NO1000, 8, shuffle=True, seed=1, epoch=0))[1]
    other = _collect(make_dataset(out, "train", NO1000, 8, shuffle=True, seed=1, epoch=1))[1]
    np.testing.assert_array_equal(first["regression"], again["regression"])
    assert not np.array_equal(first["regression"], other["regression"])
    np.testing.assert_array_equal(np.sort(first["regression"], 0), np.sort(other["regression"], 0))


@pytest.mark.parametrize(
    ("batch", "skip", "drop"), [(8, 5, False), (7, 3, True), (16, 0, False), (50, 6, False)]
)
def test_skip_batches_yields_the_tail_of_the_epoch(fdir, batch, skip, drop):
    out = fdir[0]
    kwargs = {"shuffle": True, "seed": 9, "epoch": 2, "drop_remainder": drop}
    full = list(make_dataset(out, "train", NO1000, batch, **kwargs).as_numpy_iterator())
    tail = list(
        make_dataset(out, "train", NO1000, batch, skip_batches=skip, **kwargs).as_numpy_iterator()
    )
    assert len(tail) == len(full) - skip
    for got, want in zip(tail, full[skip:], strict=True):
        for part in (0, 1):
            for key in want[part]:
                np.testing.assert_array_equal(got[part][key], want[part][key])


@pytest.mark.parametrize(("split", "cap"), [("train", 50), ("val", 10), ("test", 1000)])
def test_max_samples_keeps_the_newest(fdir, split, cap):
    out, values, written = fdir
    index = written["index"][written["labels"] == split]
    keep = min(cap, len(index))
    assert num_samples(out, split, max_samples=cap) == keep
    _, targets, sizes = _collect(make_dataset(out, split, NO1000, 8, max_samples=cap))
    assert sum(sizes) == keep
    np.testing.assert_array_equal(
        targets["regression"][:, 0], values[index[-keep:]].astype(np.float32)
    )


def test_num_samples_matches_manifest(fdir):
    out, _, written = fdir
    for split in ("train", "val", "test"):
        assert num_samples(out, split) == int((written["labels"] == split).sum())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"split": "valid"},
            "`split` must be one of ('train', 'val', 'test'). Received: split='valid'",
        ),
        (
            {"skip_batches": 99},
            "`skip_batches` must be in [0, 2] (batches in this epoch). Received: skip_batches=99",
        ),
        (
            {"max_samples": 0},
            "`max_samples` must be a positive int or None. Received: max_samples=0",
        ),
        ({"batch_size": 0}, "`batch_size` must be a positive int. Received: 0"),
    ],
)
def test_bad_arguments(fdir, kwargs, message):
    args = {"split": "val", "batch_size": 32, **kwargs}
    with pytest.raises(JetxInputError) as error:
        make_dataset(fdir[0], args.pop("split"), NO1000, args.pop("batch_size"), **args)
    assert str(error.value) == message


def test_incomplete_features_dir(tmp_path):
    (tmp_path / "features.parquet").write_bytes(b"")
    with pytest.raises(JetxInputError, match="must be a complete `jetx features` output"):
        make_dataset(tmp_path, "train", NO1000, 8)


def test_model_wider_than_features_dir(fdir):
    wide = dataclasses.replace(NO1000, n_features=130)
    with pytest.raises(JetxInputError, match="must equal the features dir's 121 features"):
        make_dataset(fdir[0], "train", wide, 8)
