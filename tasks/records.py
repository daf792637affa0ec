"""Small records that tasks exchange: paths plus content hashes, never DataFrames or models.

A record is what a cache entry holds, so it must be cheap to store and must say whether the
files it points at are still the files that were written: `FileSet.problem` checks that, and the
cache policy of `tasks.caching` refuses to serve a record that fails it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict

from jetx.io import sha256_file


class FileSet(BaseModel):
    """Files one task wrote: a directory and the sha256 of each file, by relative name."""

    model_config = ConfigDict(frozen=True)

    directory: Path
    files: dict[str, str]

    @classmethod
    def of(cls, directory: Path, names: Iterable[str], **fields: Any) -> Self:
        """Hash `names` (relative to `directory`) now and build the record."""
        directory = Path(directory).resolve()
        files = {name: sha256_file(directory / name) for name in sorted(names)}
        return cls(directory=directory, files=files, **fields)

    def path(self, name: str) -> Path:
        """Absolute path of one of the record's files."""
        return self.directory / name

    @property
    def digest(self) -> str:
        """One sha256 over every file's name and hash: the content identity of the set."""
        joined = "\n".join(f"{name}:{sha}" for name, sha in sorted(self.files.items()))
        return hashlib.sha256(joined.encode()).hexdigest()

    def problem(self) -> str | None:
        """Why this record no longer describes the disk (a file missing or changed), or None."""
        for name, sha in self.files.items():
            path = self.path(name)
            if not path.is_file():
                return f"{path} is missing"
            if sha256_file(path) != sha:
                return f"{path} changed since it was written"
        return None


class DataRecord(FileSet):
    """Output of loading a raw history: series.parquet, quarantine.parquet, manifest.json.

    `content_sha256` is the digest of what was read (`jetx.data.ingest.Snapshot.sha256`).
    """

    content_sha256: str
    rows_read: int
    rows_kept: int
    rows_quarantined: int


class FeaturesRecord(FileSet):
    """Output of feature building: features.parquet, scaler.json, series.parquet, manifest.json."""

    samples: dict[str, int]


class StageRecord(FileSet):
    """One trained stage: the files of its best and last checkpoints, and its result.

    `result` is the stage's one result record as the training library wrote it
    (`jetx.training.schedule.StageResult`, stage{N}/result.json); `attempt` is Prefect's run
    count of the task (1 on the first try).
    """

    stage: int
    attempt: int
    result: dict[str, Any]

    @property
    def best_checkpoint(self) -> Path:
        return self.path(self.result["best_checkpoint"])

    @property
    def micro_batch(self) -> int:
        return int(self.result["micro_batch"])

    @property
    def precision(self) -> str:
        return str(self.result["precision"])


class EvaluationRecord(FileSet):
    """A run scored on test: report/evaluation.json and report/predictions.npz, written once."""

    verdict: str


class AuditRecord(FileSet):
    """Measured and predicted peak memory of one variant: its JSON holds one row per setting."""

    rows: list[dict[str, Any]]


class ReportRecord(FileSet):
    """The written report: RUN_DIR/report/ with report.md, evaluation.json and plots."""

    previous_run: Path | None


class BundleRecord(FileSet):
    """An exported bundle: out/models/<run id>/ with model.keras, scaler.json, bundle.json and
    forecasts.npz."""

    name: str


class PromotionRecord(FileSet):
    """The promotion decision: out/models/promotion.json, and who is champion and latest now."""

    blessed: bool
    champion: str | None
    latest: str


class MemoryPlanRecord(FileSet):
    """The measured plan's line of one model and precision (`jetx.training.memory_plan`):
    its JSON file holds the line, `line` the same as a dict (a `MemoryLine`)."""

    line: dict[str, Any]
