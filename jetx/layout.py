"""One owner for every directory layout: where each file of a step lives and what "complete" means.

A step's output is a directory, and everything that reads one asks this module for its paths:

- `SeriesDir` (`jetx ingest`): series.parquet, quarantine.parquet, manifest.json.
- `FeaturesDir` (`jetx features`): features.parquet, scaler.json, series.parquet (the one series
  the windows slice), manifest.json.
- `RunDir` (`jetx train`, the flow's stage children, `jetx evaluate`): run.json (what trained
  it: preset values, variant, seed, features dir), one `StageDir` per stage (checkpoints/,
  result.json), metrics.jsonl (one record per epoch), tensorboard/, memory/ (the audit) and
  report/ (evaluation.json, predictions.npz, report.md and its plots).
- `OriginDir` (one walk-forward origin): origin.json, series/ (a `SeriesDir` of the history up
  to the end of the origin's block, nothing later) and features/ (its `FeaturesDir`).
- `WalkForwardDir` (`jetx walk-forward`, the walk-forward flow): plan.json (the origins and the
  run each was trained in), series/ and origin{k}/ (the history and an `OriginDir` with its
  run/, for the command line) and report/ (the pooled evaluation.json, predictions.npz,
  report.md and its plots).
- `BundleDir` (`jetx export`): model.keras, scaler.json, bundle.json and forecasts.npz (its test
  forecasts, which a promotion gate compares): a model people can use.
- `ModelsDir` (the flow's `out/models`): one bundle per run, the pointers `latest` (the newest
  export) and `champion` (the bundle that passed the promotion gate, or was pinned by hand),
  promotion.json (the last decision) and promotions.jsonl (every decision, oldest first).
- `Workspace` (the flow's `out`): data/, features/, origins/, train/ and walk-forward/ holding
  one directory per version of their inputs, and models/.

A directory is complete when its manifest (series, features), run.json (run), result.json
(stage), origin.json (origin, after its features) or report/evaluation.json (walk-forward)
exists: each is written last, atomically, after the files it describes. A series manifest also
holds the sha256 of the files it describes, which readers check.

One writer per directory: whoever writes a series, features or run directory holds its `lock`
(`jetx.io.exclusive`, a `.jetx.lock` file inside it); a second writer waits or fails at once with
"RUN_DIR ... is in use by pid N". The stage child holds its run directory's lock while it trains.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from jetx.errors import JetxInputError
from jetx.io import LOCK_FILE, exclusive, held
from jetx.readers import read_json

MANIFEST = "manifest.json"


class _Locked:
    """A directory with one writer at a time: its lock file and its lock."""

    path: Path
    #: How the lock's refusal names the directory ("RUN_DIR is in use by ...").
    WHAT: ClassVar[str]

    @property
    def lock_file(self) -> Path:
        return Path(self.path) / LOCK_FILE

    def lock(self, wait: float | None = 0.0) -> AbstractContextManager[None]:
        """The directory's writer lock (`jetx.io.exclusive`; `wait` in seconds, None: no limit)."""
        return exclusive(self.path, what=self.WHAT, wait=wait)


class _Manifested:
    """A step directory that its manifest marks complete (written last)."""

    path: Path

    @property
    def manifest_path(self) -> Path:
        return Path(self.path) / MANIFEST

    def is_complete(self) -> bool:
        return self.manifest_path.is_file()


@dataclass(frozen=True)
class SeriesDir(_Manifested, _Locked):
    """An ingested history: the clean series, the quarantine and the manifest."""

    path: Path
    WHAT: ClassVar[str] = "SERIES_DIR"

    SERIES = "series.parquet"
    QUARANTINE = "quarantine.parquet"
    FILES = (SERIES, QUARANTINE, MANIFEST)

    @property
    def series(self) -> Path:
        return Path(self.path) / self.SERIES

    @property
    def quarantine(self) -> Path:
        return Path(self.path) / self.QUARANTINE

    def manifest(self) -> dict[str, Any]:
        """The manifest `jetx.data.ingest.ingest` wrote (JetxInputError if there is none)."""
        return read_json(self.manifest_path, f"run `jetx ingest SOURCE --out {self.path}` first")


@dataclass(frozen=True)
class FeaturesDir(_Manifested, _Locked):
    """A features build: everything the windows and the scaler need, self-contained."""

    path: Path
    WHAT: ClassVar[str] = "FEATURES_DIR"

    FEATURES = "features.parquet"
    SCALER = "scaler.json"
    SERIES = SeriesDir.SERIES
    FILES = (FEATURES, SCALER, SERIES, MANIFEST)

    @property
    def features(self) -> Path:
        return Path(self.path) / self.FEATURES

    @property
    def scaler(self) -> Path:
        return Path(self.path) / self.SCALER

    @property
    def series(self) -> Path:
        return Path(self.path) / self.SERIES

    def manifest(self) -> dict[str, Any]:
        """The build's manifest; its presence marks the directory complete.

        Raises:
            JetxInputError: no manifest (missing, or a build that did not finish).
        """
        if not self.is_complete():
            raise JetxInputError(
                f"`features_dir` must be a complete `jetx features` output with {MANIFEST}. "
                f"Received: features_dir={str(self.path)!r}"
            )
        return read_json(self.manifest_path, "rebuild it with `jetx features`")


@dataclass(frozen=True)
class StageDir:
    """One stage of a run: its checkpoints and, once it finished, its result."""

    path: Path

    CHECKPOINTS = "checkpoints"
    SET_ASIDE = "set-aside"
    RESULT = "result.json"

    @property
    def checkpoints(self) -> Path:
        return Path(self.path) / self.CHECKPOINTS

    @property
    def set_aside(self) -> Path:
        """Where damaged checkpoints are moved, never deleted (a person may want to look)."""
        return Path(self.path) / self.SET_ASIDE

    @property
    def result(self) -> Path:
        return Path(self.path) / self.RESULT

    def is_complete(self) -> bool:
        return self.result.is_file()


class _Reported:
    """The report/ folder of an evaluated directory (a run or a walk-forward): one layout."""

    path: Path

    REPORT = "report"
    EVALUATION = "evaluation.json"
    PREDICTIONS = "predictions.npz"
    REPORT_MD = "report.md"

    @property
    def report(self) -> Path:
        return Path(self.path) / self.REPORT

    @property
    def evaluation(self) -> Path:
        """report/evaluation.json: the evaluation, written once by `jetx.evaluation.run`
        (a run) or `jetx.evaluation.walk_forward.pool` (the pooled origins)."""
        return self.report / self.EVALUATION

    @property
    def predictions(self) -> Path:
        return self.report / self.PREDICTIONS

    @property
    def report_md(self) -> Path:
        return self.report / self.REPORT_MD


@dataclass(frozen=True)
class RunDir(_Reported, _Locked):
    """A training run, whoever made it (`jetx train` or the flow): the same kind of directory."""

    path: Path
    WHAT: ClassVar[str] = "RUN_DIR"

    RUN = "run.json"
    METRICS = "metrics.jsonl"
    TENSORBOARD = "tensorboard"
    MEMORY = "memory"
    ATTEMPTS = "attempts"

    def stage(self, number: int) -> StageDir:
        return StageDir(Path(self.path) / f"stage{number}")

    def attempt(self, stage: int, task_run: str, attempt: int) -> tuple[Path, Path]:
        """The pid file and the outcome record of one attempt of a flow's stage task.

        One pair per task run and attempt, so that two flow runs (or a retry) never share one.
        """
        stem = Path(self.path) / self.ATTEMPTS / f"stage{stage}-{task_run}-{attempt}"
        return stem.with_suffix(".pid"), stem.with_suffix(".json")

    @property
    def run_file(self) -> Path:
        return Path(self.path) / self.RUN

    @property
    def metrics(self) -> Path:
        return Path(self.path) / self.METRICS

    @property
    def tensorboard(self) -> Path:
        return Path(self.path) / self.TENSORBOARD

    @property
    def memory(self) -> Path:
        return Path(self.path) / self.MEMORY

    def is_complete(self) -> bool:
        return self.run_file.is_file()

    def run_info(self) -> dict[str, Any]:
        """run.json: preset (values), variant, seed, strategy and features dir of the run."""
        return read_json(self.run_file, "it is not a run made by `jetx train` or the jetx flow")

    def is_evaluated(self) -> bool:
        return self.evaluation.is_file()

    def read_evaluation(self) -> dict[str, Any]:
        """report/evaluation.json (JetxInputError with the command to run when it is missing)."""
        return read_json(self.evaluation, f"run `jetx evaluate {self.path}` first")


@dataclass(frozen=True)
class OriginDir:
    """One walk-forward origin's data: the history cut at the end of its block, and features."""

    path: Path

    ORIGIN = "origin.json"

    @property
    def origin_file(self) -> Path:
        return Path(self.path) / self.ORIGIN

    @property
    def series(self) -> SeriesDir:
        return SeriesDir(Path(self.path) / "series")

    @property
    def features(self) -> FeaturesDir:
        return FeaturesDir(Path(self.path) / "features")

    @property
    def run(self) -> RunDir:
        """The origin's training run when the command line trains it (the flow's runs live in
        the workspace's train/, named by what made them)."""
        return RunDir(Path(self.path) / "run")

    def is_complete(self) -> bool:
        return self.origin_file.is_file() and self.features.is_complete()

    def read_origin(self) -> dict[str, Any]:
        return read_json(self.origin_file, "build the origin again")


@dataclass(frozen=True)
class WalkForwardDir(_Reported):
    """A walk-forward evaluation: its plan, its origins (command line) and the pooled report."""

    path: Path

    PLAN = "plan.json"

    @property
    def plan_file(self) -> Path:
        return Path(self.path) / self.PLAN

    @property
    def series(self) -> SeriesDir:
        """The whole ingested history, when the command line ingests it."""
        return SeriesDir(Path(self.path) / "series")

    def origin(self, number: int) -> OriginDir:
        return OriginDir(Path(self.path) / f"origin{number}")

    def is_complete(self) -> bool:
        return self.evaluation.is_file()

    def read_plan(self) -> dict[str, Any]:
        return read_json(self.plan_file, "it is not a walk-forward made by `jetx walk-forward`")

    def read_evaluation(self) -> dict[str, Any]:
        return read_json(self.evaluation, "pool its origins first")


@dataclass(frozen=True)
class BundleDir:
    """An exported model: everything needed to use it and to judge it, no pickle anywhere."""

    path: Path

    MODEL = "model.keras"
    SCALER = "scaler.json"
    INFO = "bundle.json"
    FORECASTS = "forecasts.npz"
    FILES = (MODEL, SCALER, INFO, FORECASTS)

    @property
    def model(self) -> Path:
        return Path(self.path) / self.MODEL

    @property
    def scaler(self) -> Path:
        return Path(self.path) / self.SCALER

    @property
    def info_path(self) -> Path:
        return Path(self.path) / self.INFO

    @property
    def forecasts(self) -> Path:
        """The test rounds' positions, outcomes and forecasts (model and base rate)."""
        return Path(self.path) / self.FORECASTS

    def is_complete(self) -> bool:
        return all((Path(self.path) / name).is_file() for name in self.FILES)

    def info(self) -> dict[str, Any]:
        """bundle.json (JetxInputError when the directory is no complete bundle)."""
        if not self.is_complete():
            raise JetxInputError(
                f"{self.path} is not a jetx bundle (it needs {', '.join(self.FILES)}); "
                "make one with `jetx export RUN_DIR --out DIR`"
            )
        return read_json(self.info_path, "export the run again")


@dataclass(frozen=True)
class ModelsDir(_Locked):
    """The models of a workspace: a bundle per run, `latest`, `champion` and the decisions.

    `latest` and `champion` are pointer files (JSON naming a bundle directory beside them),
    replaced atomically (`jetx.serving.pointers`).
    """

    path: Path
    WHAT: ClassVar[str] = "MODELS_DIR"

    LATEST = "latest"
    CHAMPION = "champion"
    POINTERS = (LATEST, CHAMPION)
    PROMOTION = "promotion.json"
    PROMOTIONS = "promotions.jsonl"

    def bundle(self, run_id: str) -> BundleDir:
        return BundleDir(Path(self.path) / run_id)

    def bundles(self) -> list[BundleDir]:
        """Every bundle directory here (complete or not), by name."""
        if not Path(self.path).is_dir():
            return []
        return [BundleDir(p) for p in sorted(Path(self.path).iterdir()) if p.is_dir()]

    @property
    def latest(self) -> Path:
        return Path(self.path) / self.LATEST

    @property
    def champion(self) -> Path:
        return Path(self.path) / self.CHAMPION

    @property
    def promotion(self) -> Path:
        return Path(self.path) / self.PROMOTION

    @property
    def promotions(self) -> Path:
        return Path(self.path) / self.PROMOTIONS

    def lock(self, wait: float | None = None) -> AbstractContextManager[None]:
        """One decision at a time: by default wait for the other one."""
        return super().lock(wait)


@dataclass(frozen=True)
class Workspace:
    """The flow's `out` directory: one directory per version of each step's inputs.

    The names carry the identity of what made them (content hashes, preset values, code
    versions), so that a changed input or computation never reuses or resumes a stale output.
    """

    path: Path

    RUN_LOCK = ".jetx-run.lock"

    def run_lock(self, wait: float | None = 0.0) -> AbstractContextManager[None]:
        """One `jetx run` per out dir: held for the whole run (`jetx.io.held`, no sweep)."""
        Path(self.path).mkdir(parents=True, exist_ok=True)
        return held(Path(self.path) / self.RUN_LOCK, what=f"OUT_DIR {self.path}", wait=wait)

    def data(self, key: str) -> SeriesDir:
        return SeriesDir(Path(self.path) / "data" / key)

    def features(self, key: str) -> FeaturesDir:
        return FeaturesDir(Path(self.path) / "features" / key)

    def run(self, key: str) -> RunDir:
        return RunDir(Path(self.path) / "train" / key)

    def origin(self, key: str) -> OriginDir:
        return OriginDir(Path(self.path) / "origins" / key)

    def walk_forward(self, key: str) -> WalkForwardDir:
        return WalkForwardDir(Path(self.path) / "walk-forward" / key)

    @property
    def runs(self) -> Path:
        return Path(self.path) / "train"

    @property
    def models(self) -> ModelsDir:
        return ModelsDir(Path(self.path) / "models")
