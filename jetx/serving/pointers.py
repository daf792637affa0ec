"""`models/latest` and `models/champion`: pointer files naming a bundle beside them.

A pointer is a small JSON file (`{"bundle": "<run id>", ...why}`) replaced with
`jetx.io.write_json` (a temporary file, fsynced, then `os.replace`), so a reader sees the old
pointer or the new one, never a half. A pointer file rather than a symlink because the place
the README tells notebook users to keep `--out` (a Google Drive mount), like SMB shares and
object-store mounts, has no symlinks; a pointer also says why it points where it does (which
decision, when). `jetx predict models/latest` and `load_bundle` follow it (`follow`), and only
to a directory beside it: a pointer holding `../x` or an absolute path is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jetx.errors import JetxInputError
from jetx.io import write_json
from jetx.layout import BundleDir, ModelsDir


def point(models: ModelsDir, name: str, bundle: str, **why: Any) -> None:
    """Point `models/<name>` at the bundle directory `models/<bundle>`, atomically."""
    if name not in ModelsDir.POINTERS:
        raise JetxInputError(f"`name` must be one of {ModelsDir.POINTERS}. Received: {name!r}")
    if not models.bundle(bundle).is_complete():
        raise JetxInputError(f"{models.bundle(bundle).path} is no complete bundle to point at")
    write_json(Path(models.path) / name, {"bundle": bundle, **why})


def unpoint(models: ModelsDir, name: str) -> None:
    """Remove the pointer `models/<name>` (a demoted champion): no bundle is named any more."""
    if name not in ModelsDir.POINTERS:
        raise JetxInputError(f"`name` must be one of {ModelsDir.POINTERS}. Received: {name!r}")
    (Path(models.path) / name).unlink(missing_ok=True)


def pointed(models: ModelsDir, name: str) -> str | None:
    """The bundle name `models/<name>` points at, or None when there is no such pointer."""
    path = Path(models.path) / name
    if not path.is_file():
        return None
    return _read(path)["bundle"]


def follow(path: Path) -> Path:
    """The bundle directory `path` names: itself, or the one a pointer file points at."""
    path = Path(path)
    if not path.is_file():
        return path
    target = path.parent / _read(path)["bundle"]
    if not BundleDir(target).is_complete():
        raise JetxInputError(f"{path} points at {target}, which is no complete bundle")
    return target


def _read(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("bundle"), str):
        raise JetxInputError(
            f"{path} is neither a bundle directory nor a jetx pointer file (models/latest)"
        )
    name = record["bundle"]
    if not name or name in (".", "..") or "/" in name or "\\" in name or Path(name).is_absolute():
        raise JetxInputError(
            f"{path}: field `bundle` must name a bundle directory beside it in {path.parent}. "
            f"Received: {name!r}"
        )
    return record
