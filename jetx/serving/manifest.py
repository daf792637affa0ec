"""bundle.json as a typed record: `BundleManifest`, the one reader and writer of its fields.

A bundle is read by people's `jetx predict` long after it was written, often from a shared
folder, so nothing in it is trusted: every field has a type and a range (a recalibration slope
is finite and not negative, a cut is a probability), and `files` holds the sha256 of every other
file of the bundle, checked before any of them is used. Each violation is one line naming the
field (`JetxInputError`, exit 2), never a KeyError from deep inside a prediction.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jetx.errors import JetxInputError
from jetx.io import sha256_file

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Count = Annotated[int, Field(ge=0)]


class PlattRecord(BaseModel):
    """The recalibration map (`jetx.evaluation.calibration.platt.PlattMap`): a finite intercept and
    a finite slope >= 0 (a negative slope would bet on the rounds the model rates worst)."""

    model_config = _STRICT

    intercept: Finite
    slope: Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
    rounds: Count


class TestRecord(BaseModel):
    """What the bundle's test found, shown beside every prediction."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    rounds: Count
    verdict: str
    bets: Count
    win_rate: Finite | None
    win_rate_ci: Any
    roi: Finite | None
    roi_ci: Any
    always_bet_win_rate: Finite | None
    skill_verdict: str
    skill_test: Any
    skill_tests: Annotated[int, Field(ge=1)]


class BundleManifest(BaseModel):
    """bundle.json of format `jetx.serving.bundle.BUNDLE_FORMAT` (see that module)."""

    model_config = _STRICT

    format: int
    jetx_version: str
    created_at: str
    run: Annotated[str, Field(pattern=r"^[^/\\]+$")]
    stage: Annotated[int, Field(ge=1)]
    checkpoint: str
    feature_version: str
    feature_names: list[str]
    windows: dict[str, Annotated[int, Field(ge=1)]]
    preset: dict[str, Any]
    variant: str
    model: dict[str, Any]
    precision: str
    cut: Probability
    recalibration: PlattRecord
    data_sha256: Sha256
    rounds: Count
    base_rate: Probability
    house_base_rate: Probability
    test: TestRecord
    files: dict[str, Sha256]

    @field_validator("run")
    @classmethod
    def _plain_name(cls, run: str) -> str:
        if run in (".", ".."):
            raise ValueError("must be a run id, not a path")
        return run

    @field_validator("model")
    @classmethod
    def _model_config(cls, model: dict[str, Any]) -> dict[str, Any]:
        from jetx.config import ModelConfig

        try:
            ModelConfig.from_dict(model)
        except (JetxInputError, TypeError, ValueError) as error:
            raise ValueError(f"not a model config ({error})") from None
        return model


def parse_manifest(path: Path, payload: Any) -> BundleManifest:
    """bundle.json's content as a `BundleManifest`.

    Raises:
        JetxInputError: naming the first field that is missing, of the wrong type or out of range.
    """
    try:
        return BundleManifest.model_validate(payload)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(the whole file)"
        received = "" if first["type"] == "missing" else f" Received: {_shown(first['input'])}"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise JetxInputError(
            f"{path}: field `{field}`: {first['msg']}.{received}{more}; export the run again"
        ) from None


def file_hashes(directory: Path, names: tuple[str, ...]) -> dict[str, str]:
    """{name: sha256} of the files `names` of `directory` (what `files` holds)."""
    return {name: sha256_file(Path(directory) / name) for name in names}


def verify_files(directory: Path, manifest: BundleManifest, names: tuple[str, ...]) -> None:
    """Check that `files` names exactly `names` and that each file matches its sha256.

    Raises:
        JetxInputError: a file is missing from `files`, or its bytes are not the exported ones.
    """
    if set(manifest.files) != set(names):
        raise JetxInputError(
            f"{Path(directory) / 'bundle.json'}: field `files` must name {sorted(names)}. "
            f"Received: {sorted(manifest.files)}; export the run again"
        )
    for name, expected in manifest.files.items():
        if sha256_file(Path(directory) / name) != expected:
            raise JetxInputError(
                f"{Path(directory) / name}: does not match its sha256 in bundle.json (changed "
                "or damaged since export); export the run again"
            )


def _shown(value: Any) -> str:
    text = repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."
