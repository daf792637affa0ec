"""A trained run as a model people can use: `export_bundle` writes it, `load_bundle` reads it.

A bundle (`jetx.layout.BundleDir`) holds the last stage's best model as a `.keras` file, rebuilt
under the float32 policy so that inference on a CPU is not float16 (Keras keeps float32 weights
under mixed precision, so the weights are the trained ones), the training scaler as JSON, and
bundle.json with everything needed to use the model and to judge it: the feature version and
names, the window lengths, the preset, variant and precision it was trained with, the Platt map
fitted on validation that turns the threshold head's output into a probability (the `.keras`
model alone gives the head's raw score), the cut chosen on validation, the sha256 of the series
it was trained on, the number of rounds, the prior base rate (training and validation rounds),
and the test verdict with its figures and intervals; forecasts.npz keeps the test rounds'
positions, outcomes and forecasts, which the promotion gate compares with the champion's on
the same rounds. Nothing is pickled: the `.keras` format is JSON config plus weights,
`load_bundle` loads it with `safe_mode=True`, and forecasts.npz is read with allow_pickle off.

bundle.json is a typed record (`jetx.serving.manifest.BundleManifest`) whose `files` holds the
sha256 of every other file; `read_manifest` checks all of it before any file is used, and every
violation is one line (exit 2) naming the field or file. A bundle of format 2 (no hashes) is
refused with the command to export it again: its files cannot be proved intact.

An export is staged in `<TMP_PREFIX>staging-<name>-<random>` beside its bundle, under the flock
of the lock file beside that folder (`<staging>.lock`), and published by one atomic exchange of
the two directories (`renameat2(RENAME_EXCHANGE)` on Linux), so the bundle's path never goes
missing; every file is fsynced before. A staging folder whose lock is free is abandoned (its
export was killed) and the next export removes it: robust across pods sharing one volume where
the volume supports flock (local disks, NFSv4 with its lock manager; not every FUSE mount).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from jetx import __version__
from jetx.config import CASHOUT, HOUSE_RETURN
from jetx.errors import DirectoryInUseError, JetxInputError
from jetx.evaluation.calibration.platt import PlattMap
from jetx.evaluation.records import read_evaluation
from jetx.evaluation.run import prior_base_rate
from jetx.evaluation.significance.trials import run_trials
from jetx.features import FEATURE_NAMES, FEATURE_VERSION
from jetx.features.splits import Scaler
from jetx.io import TMP_PREFIX, acquire, exchange, fsync_dir, release, write_json
from jetx.layout import BundleDir, FeaturesDir, RunDir
from jetx.readers import read_json
from jetx.serving.manifest import BundleManifest, file_hashes, parse_manifest, verify_files
from jetx.serving.pointers import follow
from jetx.testing import faults

logger = logging.getLogger(__name__)

#: Version of bundle.json's layout; a bundle of another format is refused, not guessed at.
#: Format 2 added the recalibration map: format 1's threshold output was the raw head's score.
#: Format 3 added `files`, the sha256 of every other file.
BUNDLE_FORMAT = 3
#: What names an export's staging dir, `<STAGING><bundle name>-<random>`.
STAGING = f"{TMP_PREFIX}staging-"
#: The files `files` hashes: every file of a bundle but bundle.json.
HASHED = tuple(name for name in BundleDir.FILES if name != BundleDir.INFO)
_STAGING_TRIES = 5
_LOCK_SUFFIX = ".lock"
#: The Platt map's fields, as bundle.json keeps them.
PLATT_KEYS = ("intercept", "slope", "rounds")


@dataclass
class Bundle:
    """A loaded bundle: its info (bundle.json), its scaler, and its Keras model (loaded lazily).

    Args:
        path: the bundle's directory.
        info: bundle.json.
        scaler: the training scaler.
    """

    path: Path
    info: dict[str, Any]
    scaler: Scaler
    _model: Any = field(default=None, repr=False)

    @property
    def model(self):
        """The Keras model, loaded with `safe_mode=True` on first use.

        Raises:
            JetxInputError: model.keras cannot be loaded safely (a Lambda layer, a damaged
                archive, an unknown layer), in one line.
        """
        if self._model is None:
            import keras

            import jetx.model.layers  # noqa: F401  (registers the custom layers)

            path = BundleDir(self.path).model
            try:
                self._model = keras.saving.load_model(path, safe_mode=True)
            except Exception as error:  # noqa: BLE001  (any failure of a user's file is its own)
                reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise JetxInputError(
                    f"{path}: cannot be loaded safely ({type(error).__name__}: {reason[:200]}); "
                    "export the run again"
                ) from None
        return self._model

    @property
    def recalibration(self) -> PlattMap:
        """The Platt map from the threshold head's output to the probability the test scored."""
        return PlattMap.from_dict(self.info["recalibration"])

    @property
    def model_config(self):
        from jetx.config import ModelConfig

        return ModelConfig.from_dict(self.info["model"])


def export_bundle(run_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Write the bundle of an evaluated run to `out_dir`, as one set (a directory rename).

    Args:
        run_dir: a run that `jetx evaluate` (or the flow) evaluated.
        out_dir: the bundle's directory; an existing bundle there is replaced whole.

    Returns:
        bundle.json's content.

    Raises:
        JetxInputError: the run is not evaluated, or has no checkpoint of its last stage.
    """
    from jetx.training.inputs import StageData

    run = RunDir(run_dir)
    data = StageData.from_run(run.path)
    evaluation = read_evaluation(run)
    if not evaluation["stages"]:
        raise JetxInputError(f"{run_dir}: its evaluation holds no stage; nothing to export")
    final = evaluation["stages"][-1]
    if "recalibration" not in final:
        raise JetxInputError(
            f"{run_dir}: evaluated before recalibration; evaluate it again "
            f"(`jetx evaluate {run_dir}`), then export"
        )
    checkpoint = run.path / final["checkpoint"]
    manifest = FeaturesDir(data.features_dir).manifest()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    sweep_staging(out_dir.parent)
    staging, lock = _new_staging(out_dir)
    try:
        bundle = BundleDir(staging)
        _save_model(data, checkpoint, bundle.model)
        shutil.copyfile(FeaturesDir(data.features_dir).scaler, bundle.scaler)
        _save_forecasts(run, data, bundle.forecasts)
        info = json.loads(json.dumps(_bundle_info(run, data, evaluation, final, manifest)))
        info["files"] = file_hashes(staging, HASHED)
        info = parse_manifest(bundle.info_path, info).model_dump(mode="json")
        _fsync_files(staging)
        write_json(bundle.info_path, info)
        if (injected := faults.active()) is not None:  # a test's hook, None in production
            injected.hold_before_publishing("bundle")
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        _staging_lock(staging).unlink(missing_ok=True)
        release(lock)
    logger.info("exported %s stage %d -> %s", run.path.name, final["stage"], out_dir)
    return info


def sweep_staging(parent: Path) -> list[Path]:
    """Remove the staging dirs under `parent` of exports that are gone (killed mid-export: the
    `finally` that removes its staging dir never ran); returns them.

    A staging dir is abandoned when its lock (`<staging>.lock`) is free: a live export, of
    another run, another flow or another pod on the same volume, holds it for its whole length.
    """
    removed = []
    for path in sorted(Path(parent).glob(f"{STAGING}*")):
        staging, lock_file = path, _staging_lock(path)
        if path.name.endswith(_LOCK_SUFFIX):  # a lock whose dir is gone, or one seen with it
            staging, lock_file = path.with_name(path.name[: -len(_LOCK_SUFFIX)]), path
            if staging.exists():
                continue
        try:
            fd = acquire(lock_file, what=f"staging dir {staging}", wait=0)
        except (DirectoryInUseError, FileNotFoundError):
            continue  # a live export (or one that just finished)
        try:
            shutil.rmtree(staging, ignore_errors=True)
            lock_file.unlink(missing_ok=True)
        finally:
            release(fd)
        removed.append(staging)
        logger.info("removed %s, left by an export that is gone", staging)
    return removed


def _staging_lock(staging: Path) -> Path:
    return staging.with_name(f"{staging.name}{_LOCK_SUFFIX}")


def _new_staging(out_dir: Path) -> tuple[Path, int]:
    """A fresh staging dir beside `out_dir` and the fd of its held lock.

    A sweep that takes the lock of a dir just made (before its maker did) removes it; the maker
    then finds its lock busy or its dir gone, and makes another.
    """
    for _ in range(_STAGING_TRIES):
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING}{out_dir.name}-", dir=out_dir.parent))
        try:
            fd = acquire(_staging_lock(staging), what=f"staging dir {staging}", wait=0)
        except (DirectoryInUseError, FileNotFoundError):
            continue
        if staging.is_dir():
            return staging, fd
        release(fd)
    raise OSError(f"{out_dir.parent}: no staging dir could be kept for {out_dir.name}")


def _fsync_files(directory: Path) -> None:
    """Flush every file of `directory` (and the directory) to disk before it is published."""
    for path in Path(directory).iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    fsync_dir(directory)


def _save_model(data, checkpoint: Path, path: Path) -> None:
    """The variant's model under float32, with the checkpoint's model weights, as .keras."""
    import keras

    from jetx.model.network import build_model
    from jetx.training.checkpoint import restore_variables

    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        model = build_model(data.model)
        restore_variables(checkpoint, {"model": model.variables})
        model.save(path)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _save_forecasts(run: RunDir, data, path: Path) -> None:
    """The last stage's test forecasts (`jetx evaluate`'s, not recomputed) with their positions
    in the series, so that two bundles of the same rounds are compared round by round."""
    from jetx.evaluation.inference import read_predictions
    from jetx.training.windows import load_split

    index = load_split(data.features_dir, "test", data.max_eval_samples).index
    evaluated = read_predictions(run.predictions)
    p_model = np.atleast_2d(evaluated["p_threshold"])[-1]
    if not index.size == p_model.size == evaluated["y_value"].size:
        raise JetxInputError(
            f"{run.predictions}: {p_model.size} forecasts for {index.size} test rounds; "
            f"evaluate the run again (`jetx evaluate {run.path}`)"
        )
    with open(path, "wb") as handle:
        np.savez(
            handle,
            index=index.astype(np.int64),
            y_value=evaluated["y_value"],
            p_model=p_model,
            p_base_rate=evaluated["p_base_rate"],
        )


def read_forecasts(path: Path) -> dict[str, np.ndarray]:
    """A bundle's forecasts.npz: index, y_value, p_model and p_base_rate, [N] each."""
    with np.load(BundleDir(path).forecasts, allow_pickle=False) as saved:
        return {name: saved[name] for name in saved.files}


def _bundle_info(run: RunDir, data, evaluation: dict, final: dict, manifest: dict) -> dict:
    result = json.loads(run.stage(final["stage"]).result.read_text(encoding="utf-8"))
    at_cut = final["at_val_cut"]
    return {
        "format": BUNDLE_FORMAT,
        "jetx_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": run.path.name,
        "stage": final["stage"],
        "checkpoint": final["checkpoint"],
        "feature_version": manifest["feature_version"],
        "feature_names": manifest["feature_names"],
        "windows": data.model.sequence_inputs,
        "preset": data.preset.to_dict(),
        "variant": data.variant,
        "model": data.model.to_dict(),
        "precision": result["precision"],
        "cut": final["val_cut"],
        "recalibration": {key: final["recalibration"][key] for key in PLATT_KEYS},
        "data_sha256": manifest["series_sha256"],
        "rounds": manifest["n_rounds"],
        "base_rate": prior_base_rate(data.features_dir),
        "house_base_rate": HOUSE_RETURN / CASHOUT,
        "test": {
            "rounds": evaluation["rounds"],
            "verdict": f"{final['skill_verdict']} {final['verdict_at_val_cut']}",
            "bets": at_cut["bets"],
            "win_rate": at_cut["win_rate"],
            "win_rate_ci": at_cut["win_rate_ci"],
            "roi": at_cut["roi"],
            "roi_ci": at_cut["roi_ci"],
            "always_bet_win_rate": evaluation["baselines"]["always"]["win_rate"],
            "skill_verdict": final["skill_verdict"],
            "skill_test": final["skill_test"],
            "skill_tests": run_trials(evaluation),
        },
    }


def _publish(staging: Path, out_dir: Path) -> None:
    """Move the staged bundle into place: one atomic exchange with an old bundle there (which
    `staging` then holds, for the caller to remove), so `out_dir` is never missing.

    Where the exchange is not supported (not Linux, or a file system without it), the old bundle
    is set aside and removed: two renames, with a moment without a bundle at `out_dir`.
    """
    if out_dir.exists() and exchange(staging, out_dir):
        fsync_dir(out_dir.parent)
        return
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f"{TMP_PREFIX}old-{out_dir.name}")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
    staging.rename(out_dir)
    fsync_dir(out_dir.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(path: Path) -> BundleManifest:
    """A bundle's bundle.json, checked field by field, and its files checked against their
    sha256 (no file of the bundle is used before this).

    Raises:
        JetxInputError: not a bundle, another bundle format, a field missing, of the wrong type
            or out of range, or a file that does not match its sha256.
    """
    bundle = BundleDir(path)
    info = bundle.info()
    if not isinstance(info, dict) or info.get("format") != BUNDLE_FORMAT:
        found = info.get("format") if isinstance(info, dict) else None
        raise JetxInputError(
            f"{path}: bundle format {found!r}; this jetx reads format {BUNDLE_FORMAT} (with "
            "the sha256 of every file). Export the run again with this jetx."
        )
    manifest = parse_manifest(bundle.info_path, info)
    verify_files(path, manifest, HASHED)
    return manifest


def load_bundle(path: Path) -> Bundle:
    """Read a bundle (or the one a pointer such as models/latest names), prove it intact
    (`read_manifest`) and check that this jetx computes the features it was trained on.

    Raises:
        JetxInputError: see `read_manifest`; or another feature version or feature list than
            this jetx computes; or a scaler.json that is not the features' scaler.
    """
    path = follow(path)
    manifest = read_manifest(path)
    if manifest.feature_version != FEATURE_VERSION or manifest.feature_names != list(FEATURE_NAMES):
        raise JetxInputError(
            f"{path}: trained on feature version {manifest.feature_version!r}; this jetx "
            f"computes version {FEATURE_VERSION!r}, so its inputs would not be the model's. "
            "Retrain and export with this jetx."
        )
    scaler = _read_scaler(BundleDir(path).scaler, manifest.feature_names)
    return Bundle(Path(path), manifest.model_dump(mode="json"), scaler)


def _read_scaler(path: Path, names: list[str]) -> Scaler:
    """scaler.json, with one finite mean and one finite positive std per feature."""
    data = read_json(path, "export the run again")  # a bundle's copy: the bundle is remade
    try:
        scaler = Scaler.from_dict(data)
        ok = (
            list(scaler.names) == names
            and scaler.mean.shape == scaler.std.shape == (len(names),)
            and np.all(np.isfinite(scaler.mean))
            and np.all(np.isfinite(scaler.std))
            and np.all(scaler.std > 0)
        )
    except (KeyError, TypeError, ValueError, AttributeError, UnicodeDecodeError) as error:
        raise JetxInputError(f"{path}: not a scaler ({type(error).__name__}: {error})") from None
    if not ok:
        raise JetxInputError(
            f"{path}: must hold the {len(names)} features' names, finite means and positive "
            "stds; export the run again"
        )
    return scaler
