"""Reading a step directory's files: any damage is one `JetxInputError` naming the file.

A step directory (series, features, run) is written by jetx, but a disk, a copy or a person can
damage it afterwards: a truncated or foreign Parquet file, a manifest that is not UTF-8 or not a
JSON object, a field that is missing. Each of them is the user's input now, so it is reported
as bad input (exit 2) naming the file, never a pyarrow or KeyError traceback. Every reader of a
step directory's JSON and Parquet files reads them here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import TypeAdapter, ValidationError

from jetx.errors import JetxInputError


class Record(dict):
    """A JSON object read from `path`: a missing field is a JetxInputError naming the file.

    Constructed as a dict is (`Record(pairs)`), so that what copies a dict by its type, such as
    `dataclasses.asdict`, copies a Record too; `path` is then unknown.
    """

    def __init__(self, fields: Any = (), path: Path | None = None) -> None:
        super().__init__(fields)
        self.path = path

    def __missing__(self, key: str) -> Any:
        where = self.path or "a JSON record"
        raise JetxInputError(f"{where}: no `{key}` field (a damaged or foreign file)")


def read_json(path: Path, what: str) -> Record:
    """The JSON object in `path`; `what` says what to do when it is missing or damaged.

    Raises:
        JetxInputError: no such file, not UTF-8, not JSON, or not a JSON object.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JetxInputError(f"{path.parent}: no {path.name}; {what}") from None
    except UnicodeDecodeError as error:
        raise JetxInputError(
            f"{path}: not UTF-8 text (invalid byte at offset {error.start}); {what}"
        ) from None
    try:
        payload = json.loads(text, object_hook=lambda fields: Record(fields, path))
    except json.JSONDecodeError as error:
        raise JetxInputError(f"{path}: not valid JSON ({error}); {what}") from None
    if not isinstance(payload, dict):
        raise JetxInputError(
            f"{path}: not a JSON object (found a {type(payload).__name__}); {what}"
        )
    return payload


def checked(shape: TypeAdapter, data: Any, source: Path | str) -> Any:
    """`data` validated against a typed record's `shape`: the first violation is one
    JetxInputError naming `source` and the field ("stages.0.verdict: ...")."""
    try:
        return shape.validate_python(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(top)"
        raise JetxInputError(f"{source}: {field}: {first['msg']}") from None


def read_parquet(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """The Parquet table in `path` (only `columns` when given).

    Raises:
        JetxInputError: not a readable Parquet file, or no such column.
    """
    with parquet_damage(path):
        return pq.read_table(path, columns=None if columns is None else list(columns))


@contextmanager
def parquet_damage(path: Path) -> Iterator[None]:
    """Turn pyarrow's errors about the content of `path` into one JetxInputError naming it
    (an OS error with an errno, a missing file say, keeps its own class)."""
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise _damaged(path, error) from None
    except OSError as error:
        if error.errno is not None:
            raise
        raise _damaged(path, error) from None  # pyarrow's own I/O error about the content


def numeric_column(table: pa.Table, name: str, path: Path) -> pa.ChunkedArray:
    """Column `name` of `table` (read from `path`), which must hold numbers.

    Raises:
        JetxInputError: no such column, or a column of another type (text, say).
    """
    if name not in table.column_names:
        raise JetxInputError(
            f"{path}: no `{name}` column (columns: {', '.join(table.column_names)})"
        )
    column = table.column(name)
    if not (pa.types.is_floating(column.type) or pa.types.is_integer(column.type)):
        raise JetxInputError(f"{path}: column `{name}` holds {column.type}, expected numbers")
    return column


def _damaged(path: Path, error: Exception) -> JetxInputError:
    reason = (str(error).splitlines() or [type(error).__name__])[0]
    reason = reason.replace(f"Could not open Parquet input source '{path}': ", "")
    return JetxInputError(f"{path}: not a readable Parquet file ({reason})")
