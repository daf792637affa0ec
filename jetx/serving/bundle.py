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
from jetx.errors import JetxInputError
from jetx.evaluation.calibration.platt import PlattMap
from jetx.evaluation.records import read_evaluation
from jetx.evaluation.run import prior_base_rate
from jetx.evaluation.significance.trials import run_trials
from jetx.features import FEATURE_NAMES, FEATURE_VERSION
from jetx.features.splits import Scaler
from jetx.io import write_json
from jetx.layout import BundleDir, FeaturesDir, RunDir
from jetx.serving.pointers import follow
from jetx.testing import faults

logger = logging.getLogger(__name__)

#: Version of bundle.json's layout; a bundle of another format is refused, not guessed at.
#: Format 2 added the recalibration map: format 1's threshold output was the raw head's score.
BUNDLE_FORMAT = 2
#: What names an export's staging dir, `.<bundle name><STAGING><pid>-<random>`.
STAGING = ".staging-"
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
        """The Keras model, loaded with `safe_mode=True` on first use."""
        if self._model is None:
            import keras

            import jetx.model.layers  # noqa: F401  (registers the custom layers)

            self._model = keras.saving.load_model(BundleDir(self.path).model, safe_mode=True)
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
    staging = Path(
        tempfile.mkdtemp(prefix=f".{out_dir.name}{STAGING}{os.getpid()}-", dir=out_dir.parent)
    )
    try:
        bundle = BundleDir(staging)
        _save_model(data, checkpoint, bundle.model)
        shutil.copyfile(FeaturesDir(data.features_dir).scaler, bundle.scaler)
        info = json.loads(json.dumps(_bundle_info(run, data, evaluation, final, manifest)))
        _save_forecasts(run, data, bundle.forecasts)
        write_json(bundle.info_path, info)
        if (injected := faults.active()) is not None:  # a test's hook, None in production
            injected.hold_before_publishing("bundle")
        _publish(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s stage %d -> %s", run.path.name, final["stage"], out_dir)
    return info


def sweep_staging(parent: Path) -> list[Path]:
    """Remove the staging dirs under `parent` of exports whose process is gone (killed
    mid-export: the `finally` that removes its staging dir never ran); returns them.

    A staging dir is named after its writer's pid, so that a live export beside this one, of
    another run or another flow, is never touched.
    """
    removed = []
    for path in Path(parent).glob(f".*{STAGING}*"):
        pid = path.name.rsplit(STAGING, 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
            logger.info("removed %s, left by export process %s that is gone", path, pid)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


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
    """Move the staged bundle into place; an old bundle there is set aside, then removed."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
    staging.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_bundle(path: Path) -> Bundle:
    """Read a bundle (or the one a pointer such as models/latest names) and check that this
    jetx computes the features it was trained on.

    Raises:
        JetxInputError: not a bundle, another bundle format, or another feature version or
            feature list than this jetx computes.
    """
    path = follow(path)
    bundle = BundleDir(path)
    info = bundle.info()
    if info.get("format") != BUNDLE_FORMAT:
        raise JetxInputError(
            f"{path}: bundle format {info.get('format')!r}; this jetx reads format "
            f"{BUNDLE_FORMAT}. Export the run again with this jetx."
        )
    if info.get("feature_version") != FEATURE_VERSION or info.get("feature_names") != list(
        FEATURE_NAMES
    ):
        raise JetxInputError(
            f"{path}: trained on feature version {info.get('feature_version')!r}; this jetx "
            f"computes version {FEATURE_VERSION!r}, so its inputs would not be the model's. "
            "Retrain and export with this jetx."
        )
    return Bundle(Path(path), info, Scaler.load(bundle.scaler))
