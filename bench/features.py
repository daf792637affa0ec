"""Prep benchmark of jetx.features: one function per figure, each printed with its configuration.

Figures: wall time and peak RSS of streaming the 121 features of a 1M-round synthetic series
(in a fresh subprocess, so RSS is the computation's alone); speedup over the per-row reference
(tests/feature_reference.py, timed on a sample of rows and scaled); the wall time as a ratio to a
bare pyarrow CSV -> Parquet conversion of the same series (the I/O floor); and feature time on the
real history. Run: .venv/bin/python bench/features.py [--rounds 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pywt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the per-row reference lives with the tests

from feature_reference import reference_features  # noqa: E402

from jetx.features import (  # noqa: E402
    DEFAULT_CHUNK_SIZE,
    FEATURE_NAMES,
    FEATURE_VERSION,
    FIRST_SAMPLE,
    compute_features,
)

REAL_HISTORY = Path(__file__).resolve().parents[1] / "data" / "real" / "jetx_history.csv"

_CHILD = """
import json, resource, sys, time
import numpy as np
from jetx.features import iter_feature_chunks
values = np.load(sys.argv[1])
begin, cpu_begin = time.perf_counter(), time.process_time()
rows = sum(len(block) for _, block in iter_feature_chunks(values, chunk_size=int(sys.argv[2])))
seconds, cpu = time.perf_counter() - begin, time.process_time() - cpu_begin
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "seconds": seconds, "cpu": cpu, "peak_rss_mib": peak_mib}))
"""


def crash_series(seed: int, rounds: int) -> np.ndarray:
    """P(X >= x) = 0.97 / x, floored at 1.00, two decimals (docs/design.md "Data")."""
    uniform = 1.0 - np.random.default_rng(seed).random(rounds)
    return np.maximum(1.0, np.floor(0.97 / uniform * 100) / 100)


def configuration(rounds: int) -> str:
    return (
        f"rounds={rounds:,} samples={rounds - FIRST_SAMPLE:,} features={len(FEATURE_NAMES)} "
        f"version={FEATURE_VERSION} chunk_size={DEFAULT_CHUNK_SIZE} device=CPU "
        f"cores={os.cpu_count()} python={platform.python_version()} numpy={np.__version__} "
        f"pywt={pywt.__version__} pyarrow={pa.__version__}"
    )


def streaming_time_and_rss(values_path: Path) -> dict:
    """Wall time and peak RSS of iter_feature_chunks over the whole series, in a subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(values_path), str(DEFAULT_CHUNK_SIZE)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(result.stdout)


def reference_seconds_per_row(values: np.ndarray, rows: int) -> tuple[float, float]:
    """Per-row reference wall and CPU seconds on `rows` random samples of the same series.

    CPU time is reported beside wall time because the machine is shared: a busy neighbour
    stretches wall time but not the CPU seconds each implementation needs.
    """
    samples = np.random.default_rng(0).choice(np.arange(FIRST_SAMPLE, len(values)), rows, False)
    begin, cpu_begin = time.perf_counter(), time.process_time()
    for sample in samples:
        reference_features(values[:sample])
    return (time.perf_counter() - begin) / rows, (time.process_time() - cpu_begin) / rows


def csv_to_parquet_seconds(values: np.ndarray, workdir: Path) -> float:
    """The I/O floor: pyarrow reads an id,value CSV of the series and writes it as Parquet."""
    csv_path, parquet_path = workdir / "series.csv", workdir / "series.parquet"
    table = pa.table({"id": np.arange(1, len(values) + 1), "value": values})
    pacsv.write_csv(table, csv_path)
    begin = time.perf_counter()
    pq.write_table(pacsv.read_csv(csv_path), parquet_path)
    return time.perf_counter() - begin


def real_history_seconds(path: Path) -> tuple[int, int, float]:
    """Rounds kept, cells dropped and feature time on the real history's `value` column."""
    column = pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(column_types={"value": pa.string()})
    )["value"].to_pylist()
    values = []
    for cell in column:
        try:
            values.append(float(cell))
        except (TypeError, ValueError):
            continue
    series = np.asarray(values)
    begin = time.perf_counter()
    compute_features(series)
    return len(series), len(column) - len(series), time.perf_counter() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=200)
    args = parser.parse_args()
    values = crash_series(0, args.rounds)
    samples = args.rounds - FIRST_SAMPLE
    print(f"config: {configuration(args.rounds)}")
    with tempfile.TemporaryDirectory() as tmp:
        values_path = Path(tmp) / "values.npy"
        np.save(values_path, values)
        stream = streaming_time_and_rss(values_path)
        print(
            f"vectorised (iter_feature_chunks, subprocess): {stream['seconds']:.1f} s wall, "
            f"{stream['cpu']:.1f} s CPU for {stream['rows']:,} samples = "
            f"{stream['cpu'] / samples * 1e6:.1f} us CPU/sample; "
            f"peak RSS {stream['peak_rss_mib']:.0f} MiB (goal < 2048)"
        )
        wall, cpu = reference_seconds_per_row(values, args.reference_rows)
        print(
            f"per-row reference: {wall * 1e3:.2f} ms wall, {cpu * 1e3:.2f} ms CPU per sample on "
            f"{args.reference_rows} rows, scaled to {wall * samples:.0f} s wall; speedup "
            f"{wall * samples / stream['seconds']:.0f}x wall, "
            f"{cpu * samples / stream['cpu']:.0f}x CPU (goal >= 100x)"
        )
        floor = csv_to_parquet_seconds(values, Path(tmp))
        print(
            f"pyarrow CSV -> Parquet of the same series: {floor:.2f} s; features / floor = "
            f"{stream['seconds'] / floor:.0f}x"
        )
    kept, dropped, seconds = real_history_seconds(REAL_HISTORY)
    print(
        f"real history {REAL_HISTORY.name}: {kept:,} rounds ({dropped} non-numeric cells "
        f"dropped), {kept - FIRST_SAMPLE:,} samples, features in {seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
