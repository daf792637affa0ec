"""Shared test setup: the environment of every test process, and the artifacts many modules use.

The environment is set here, at the top, before anything imports TensorFlow, and only here: the
pytest processes (each xdist worker imports this file first) and every child they start (stage
children, `jetx` commands, flows, servers) inherit it. A user's own setting wins.

- TensorFlow and BLAS thread caps: each of the `-n` workers gets its share of the cores for
  intra-op work (TensorFlow, OpenMP, OpenBLAS, MKL), so that two workers and their TensorFlow
  children do not oversubscribe the 2-core machine. TensorFlow reads `TF_NUM_INTRAOP_THREADS` and
  `TF_NUM_INTEROP_THREADS` when it starts; jetx itself sets no thread count except in the memory
  probe, which runs one op at a time on purpose (`jetx.model.probe`). Two inter-op threads stay:
  the mirrored strategy's collectives run two replicas' ops side by side.
- Quiet TensorFlow, fixed hash seeds.

Session fixtures (one per xdist worker; each worker is its own session) build what many modules
need once: a tiny features directory, one tiny trained-and-evaluated run and its exported
bundle. They are shared read-only: a test that changes one works on a copy
(`train_data.copy_of`).

The Prefect test harness is not one of them: open for a whole session it keeps Prefect's
background threads (log and event workers, jittered reconnects) running through every later
module, and they draw from Python's global `random`, which `keras.utils.set_random_seed` seeds
and Keras's default seeds read. With it session-wide, two builds of a model from one seed
differed once (tests/test_network.py, -n 1; not reproduced in two reruns, so this is the likely
cause, not a proven one). test_tasks.py and test_flows.py each open and close their own.
"""

import os

_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
_THREADS = str(max(1, (os.cpu_count() or 1) // _WORKERS))
for _name, _value in {
    "TF_NUM_INTRAOP_THREADS": _THREADS,
    "TF_NUM_INTEROP_THREADS": "2",
    "OMP_NUM_THREADS": _THREADS,
    "OPENBLAS_NUM_THREADS": _THREADS,
    "MKL_NUM_THREADS": _THREADS,
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONHASHSEED": "0",
}.items():
    os.environ.setdefault(_name, _value)

import dataclasses  # noqa: E402  (after the environment above, as everything below)
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_features(tmp_path_factory) -> Path:
    """The tiny features dir (`train_data.make_features_dir`: 1600 seeded rounds), read-only."""
    from train_data import make_features_dir

    return make_features_dir(tmp_path_factory.mktemp("tiny-features"))


@pytest.fixture(scope="session")
def tiny_run(tiny_features, tmp_path_factory) -> Path:
    """One run on `tiny_features`: stage 1 of the tiny preset for one epoch, then evaluated
    (report/, predictions), as `jetx train --stages 1 --epochs 1` and `jetx evaluate` make it.
    Read-only: a test that evaluates or trains it again works on `copy_of(tiny_run, tmp_path)`.
    """
    from jetx.config import PRESETS
    from jetx.evaluation.run import evaluate_run
    from jetx.training.schedule import StageData, run_schedule

    tiny = PRESETS["tiny"]
    one_stage = dataclasses.replace(tiny, stages=(dataclasses.replace(tiny.stages[0], epochs=1),))
    run_dir = tmp_path_factory.mktemp("tiny-run") / "run"
    run_schedule(StageData(tiny_features, one_stage, "full", 0), run_dir, verbose=0)
    evaluate_run(run_dir)
    return run_dir


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> dict:
    """`tiny_run` exported: {"bundle": its bundle directory, "info": what `export_bundle`
    returned}. Read-only: a test that changes the bundle copies it first."""
    from jetx.serving.bundle import export_bundle

    bundle = tmp_path_factory.mktemp("tiny-bundle") / "bundle"
    return {"bundle": bundle, "info": export_bundle(tiny_run, bundle)}
