"""A damaged step directory (series, features, run) is one line naming the file and exit 2:
real damaged files read by the real commands (`jetx.cli.main`), never a traceback."""

import hashlib
import json
import re
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from train_data import copy_of

from jetx.cli import main
from jetx.data.ingest import ingest
from jetx.data.synth import synthesize, write_csv
from jetx.errors import JetxInputError
from jetx.readers import read_json

_LOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


@pytest.fixture(scope="module")
def series_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("series")
    write_csv(folder / "h.csv", synthesize(1600, seed=3))
    ingest(folder / "h.csv", folder / "series")
    return folder / "series"


def _refused(capsys, argv: list[str], message: str) -> None:
    """`jetx ARGV` exits 2 with `message` as its one line that is not a log record."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not _LOG.match(line)]
    assert (code, lines) == (2, [f"jetx {argv[0]}: error: {message}"]), err
    assert "Traceback" not in err


def _rehash(layout: Path, name: str) -> None:
    """Make the manifest record the damaged file's sha256: the damage is the content itself."""
    manifest = json.loads((layout / "manifest.json").read_text())
    manifest["outputs"][name] = hashlib.sha256((layout / name).read_bytes()).hexdigest()
    (layout / "manifest.json").write_text(json.dumps(manifest))


def _damage_series(series: Path, kind: str) -> str:
    """Damage a copy of the series dir; return the error expected after `path: `."""
    if kind == "garbage series":
        (series / "series.parquet").write_bytes(b"not parquet at all\n" * 10)
        _rehash(series, "series.parquet")
        return (
            f"{series / 'series.parquet'}: not a readable Parquet file (Parquet magic bytes not "
            "found in footer. Either the file is corrupted or this is not a parquet file.)"
        )
    if kind == "text values":
        table = pa.table({"id": [1, 2, 3], "value": ["1.5", "2", "x"]})
        pq.write_table(table, series / "series.parquet")
        _rehash(series, "series.parquet")
        return f"{series / 'series.parquet'}: column `value` holds string, expected numbers"
    fix = f"run `jetx ingest SOURCE --out {series}` first"
    if kind == "list manifest":
        (series / "manifest.json").write_text("[1, 2]\n")
        return f"{series / 'manifest.json'}: not a JSON object (found a list); {fix}"
    (series / "manifest.json").write_bytes(b'{"rows": "\xff\xfe"}')
    return f"{series / 'manifest.json'}: not UTF-8 text (invalid byte at offset 10); {fix}"


@pytest.mark.parametrize(
    "kind", ["garbage series", "text values", "list manifest", "non-UTF-8 manifest"]
)
def test_jetx_features_on_a_damaged_series_dir_is_one_line(capsys, series_dir, tmp_path, kind):
    series = shutil.copytree(series_dir, tmp_path / "series")
    message = _damage_series(series, kind)
    _refused(capsys, ["features", str(series), "--out", str(tmp_path / "f")], message)
    assert not (tmp_path / "f" / "manifest.json").exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "features.parquet",
            b"PAR1 garbage",
            "not a readable Parquet file (Parquet magic bytes not found in footer. Either the "
            "file is corrupted or this is not a parquet file.)",
        ),
        ("scaler.json", b"[]", "not a JSON object (found a list); rebuild it with `jetx features`"),
        ("manifest.json", b"{}", "no `feature_names` field (a damaged or foreign file)"),
    ],
)
def test_jetx_train_on_a_damaged_features_dir_is_one_line(
    capsys, tiny_features, tmp_path, name, content, message
):
    features = copy_of(tiny_features, tmp_path)
    (features / name).write_bytes(content)
    argv = ["train", str(features), "--out", str(tmp_path / "run"), "--preset", "tiny"]
    _refused(capsys, [*argv, "--stages", "1", "--epochs", "1"], f"{features / name}: {message}")


def test_jetx_evaluate_on_a_damaged_run_json_is_one_line(capsys, tiny_run, tmp_path):
    run = copy_of(tiny_run, tmp_path)
    (run / "run.json").write_text('"a string"\n')
    message = (
        f"{run / 'run.json'}: not a JSON object (found a str); it is not a run made by "
        "`jetx train` or the jetx flow"
    )
    _refused(capsys, ["evaluate", str(run)], message)


def test_a_missing_nested_field_names_the_file(tmp_path):
    path = tmp_path / "m.json"
    path.write_text('{"counts": {"train": 3}}')
    record = read_json(path, "rebuild it")
    assert record["counts"]["train"] == 3
    with pytest.raises(Exception, match=rf"^{re.escape(str(path))}: no `val` field"):
        record["counts"]["val"]


def test_run_json_is_checked_against_its_typed_shape(tmp_path):
    from jetx.io import write_json
    from jetx.layout import RunDir
    from jetx.training.result import read_run_record, write_run_record

    record = {
        "preset": {"name": "tiny"},
        "variant": "full",
        "seed": 0,
        "strategy": "none",
        "features_dir": str(tmp_path),
    }
    write_run_record(tmp_path, record)
    assert read_run_record(tmp_path) == record
    for damaged, field in (
        ({**record, "seed": "zero"}, "seed:"),
        ({**record, "extra": 1}, "extra: Extra inputs are not permitted"),
        ({k: v for k, v in record.items() if k != "variant"}, "variant: Field required"),
    ):
        write_json(RunDir(tmp_path).run_file, damaged)
        with pytest.raises(JetxInputError) as caught:
            read_run_record(tmp_path)
        assert f"run.json: {field}" in str(caught.value) and "\n" not in str(caught.value)


def test_a_stage_result_read_back_is_a_dataclass_that_asdict_copies(tmp_path):
    # The deployment's stage task returns result.to_dict() of a result read from result.json:
    # dataclasses.asdict copies each dict by its type, the reader's Record included.
    import dataclasses
    import json

    from jetx.readers import Record, read_json

    path = tmp_path / "result.json"
    path.write_text(json.dumps({"a": {"b": [1, {"c": 2}]}}))
    record = read_json(path, "x")

    @dataclasses.dataclass
    class Holder:
        value: dict

    copied = dataclasses.asdict(Holder(record))["value"]
    assert copied == {"a": {"b": [1, {"c": 2}]}} and isinstance(copied["a"], Record)
    with pytest.raises(JetxInputError, match="no `z` field"):
        record["a"]["z"]
