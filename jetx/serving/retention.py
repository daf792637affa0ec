"""Retention: scheduled retraining must not fill a disk.

A workspace keeps whole the runs of `champion`, of `latest` and the newest `keep_runs` runs (by
the time their run.json was written). An older run keeps its report, metrics and results and,
of each finished stage, only its best checkpoint, slimmed to the model's variables
(`jetx.training.checkpoint.slim_checkpoint`): enough to evaluate or export it again, not to
resume it. Its bundle in models/ is removed, under the models dir's lock (`ModelsDir.lock`), so
that a `jetx promote` or an export's promotion never points at a bundle being removed: retention
waits for the decision in progress (up to `wait` seconds) and then reads the pointers. A run in
use (its lock held) and an unfinished stage are left as they are.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from jetx.errors import DirectoryInUseError
from jetx.layout import ModelsDir, RunDir, Workspace
from jetx.serving.pointers import pointed
from jetx.training.checkpoint import best_checkpoint, checkpoints, slim_checkpoint

logger = logging.getLogger(__name__)


def directory_bytes(path: Path) -> int:
    """Bytes of the files under `path` (what `du --apparent-size` counts)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def protected_runs(models: ModelsDir) -> set[str]:
    """Run ids that `latest` and `champion` name (a bundle is named after its run)."""
    return {name for name in map(lambda p: pointed(models, p), ModelsDir.POINTERS) if name}


def retain(
    workspace: Workspace, keep_runs: int = 3, *, wait: float | None = None
) -> dict[str, Any]:
    """Prune the runs of `workspace` that are neither champion, latest nor among the newest.

    Args:
        workspace: the flow's `out`.
        keep_runs: newest runs kept whole, besides champion and latest (>= 1).
        wait: seconds to wait for the models dir's lock (None: as long as it takes).

    Raises:
        DirectoryInUseError: the models dir is still locked by another process after `wait`.

    Returns:
        kept (run ids), pruned ({run id: bytes freed}), skipped ({run id: why}),
        bundles_removed (names).
    """
    if keep_runs < 1:
        raise ValueError(f"`keep_runs` must be at least 1. Received: keep_runs={keep_runs}")
    runs = sorted(
        (RunDir(p) for p in Path(workspace.runs).glob("*") if RunDir(p).is_complete()),
        key=lambda run: run.run_file.stat().st_mtime,
        reverse=True,
    )
    models = workspace.models
    with models.lock(wait=wait):  # no promotion moves a pointer while bundles are removed
        kept = {run.path.name for run in runs[:keep_runs]} | protected_runs(models)
        pruned, skipped = {}, {}
        for run in runs:
            if run.path.name in kept:
                continue
            try:
                pruned[run.path.name] = prune_run(run)
            except DirectoryInUseError as error:
                skipped[run.path.name] = str(error)
        removed = []
        for bundle in models.bundles():
            if bundle.path.name not in kept and not bundle.path.name.startswith("."):
                shutil.rmtree(bundle.path)
                removed.append(bundle.path.name)
    logger.info("retention: kept %s, pruned %s", sorted(kept), sorted(pruned))
    return {
        "kept": sorted(kept),
        "pruned": pruned,
        "skipped": skipped,
        "bundles_removed": removed,
    }


def prune_run(run: RunDir) -> int:
    """Keep of each finished stage of `run` its best checkpoint, slimmed; returns bytes freed.

    Raises:
        DirectoryInUseError: another process holds the run (it is training or evaluated).
    """
    before = directory_bytes(run.path)
    with run.lock(wait=0):
        numbers = sorted(
            int(p.name[5:]) for p in Path(run.path).glob("stage*") if p.name[5:].isdigit()
        )
        for number in numbers:
            stage_dir = run.stage(number)
            if not stage_dir.is_complete():
                continue
            best = best_checkpoint(stage_dir.path)
            if best is None:
                continue
            for checkpoint in checkpoints(stage_dir.path):
                if checkpoint.name != best.name:
                    shutil.rmtree(checkpoint)
            shutil.rmtree(stage_dir.set_aside, ignore_errors=True)
            slim_checkpoint(best)
    return before - directory_bytes(run.path)
