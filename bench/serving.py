"""A flow's models on disk and in use: bundle size, one prediction's time, retention's savings.

Run (after `make demo`, or any flow run): .venv/bin/python bench/serving.py --out runs/demo

Figures (one function each), on the run `OUT/models/latest` names:
  1. the bundle's size, by file;
  2. one `jetx predict --json` as a user runs it (a fresh process: imports, ingest of the
     history, the model's load and one prediction), wall time of each of `--repeats` runs, and
     `predict_next` alone in this process once the bundle is loaded;
  3. the run's disk use before and after retention prunes it (`prune_run` on a copy), with the
     size of one checkpoint in full and slim.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jetx.layout import ModelsDir, RunDir, Workspace
from jetx.serving.bundle import load_bundle
from jetx.serving.pointers import follow
from jetx.serving.predict import predict_next, read_history
from jetx.serving.retention import directory_bytes, prune_run
from jetx.training.checkpoint import checkpoints

MIB = 2**20


def bundle_size(bundle: Path) -> None:
    """Figure 1: bytes of each file of the bundle."""
    sizes = {p.name: p.stat().st_size for p in sorted(bundle.iterdir()) if p.is_file()}
    parts = ", ".join(f"{name} {size / MIB:.2f}" for name, size in sizes.items())
    print(f"bundle {bundle.name}: {sum(sizes.values()) / MIB:.2f} MiB ({parts} MiB)")


def prediction_time(bundle: Path, history: Path, repeats: int) -> None:
    """Figure 2: wall time of `jetx predict` in a fresh process, and of `predict_next` alone."""
    command = [sys.executable, "-m", "jetx", "predict", str(bundle), "--history", str(history)]
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([*command, "--json"], check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
    times = ", ".join(f"{wall:.1f}" for wall in walls)
    print(f"jetx predict (fresh process, {history.name}): {times} s")
    loaded = load_bundle(bundle)
    values = read_history(history)
    predict_next(loaded, values)  # the first call builds the model's graph
    start = time.perf_counter()
    for _ in range(repeats):
        predict_next(loaded, values)
    each = (time.perf_counter() - start) / repeats
    print(f"predict_next once loaded ({len(values)} rounds): {each * 1000:.0f} ms per prediction")


def retention_savings(run: RunDir) -> None:
    """Figure 3: the run's bytes before and after `prune_run`, on a copy."""
    with tempfile.TemporaryDirectory(prefix="jetx-retention-") as tmp:
        copy = RunDir(Path(tmp) / run.path.name)
        shutil.copytree(run.path, copy.path)
        stages = sorted(p for p in copy.path.glob("stage*") if p.is_dir())
        counts = [len(checkpoints(stage)) for stage in stages]
        full = checkpoints(stages[-1])[-1] / "variables.npz"
        full_bytes = full.stat().st_size
        before = directory_bytes(copy.path)
        prune_run(copy)
        after = directory_bytes(copy.path)
        slim = checkpoints(stages[-1])[-1] / "variables.npz"
        print(
            f"run {run.path.name}: {before / MIB:.1f} MiB -> {after / MIB:.1f} MiB after retention "
            f"({counts} checkpoints per stage -> 1 each; one checkpoint's variables "
            f"{full_bytes / MIB:.2f} MiB full, {slim.stat().st_size / MIB:.2f} MiB slim)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="a flow's out dir")
    parser.add_argument("--history", type=Path, default=Path("data/sample.csv"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    models: ModelsDir = Workspace(args.out).models
    bundle = follow(models.latest)
    machine = platform.processor() or platform.machine()
    print(f"{machine}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    bundle_size(bundle)
    prediction_time(models.latest, args.history, args.repeats)
    retention_savings(Workspace(args.out).run(bundle.name))


if __name__ == "__main__":
    main()
