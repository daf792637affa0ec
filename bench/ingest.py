"""Ingestion throughput and peak RSS against the floor of a bare pyarrow CSV -> Parquet copy.

Run: .venv/bin/python bench/ingest.py [--rounds 10000000] [--keep DIR]

Figures (one function each), every run in a fresh subprocess so that peak RSS (VmHWM of the
child) is that run's alone:
  1. `jetx.data.ingest.ingest` of an N-round synthetic `id,value` CSV: rows/s and peak RSS;
  2. the floor: `pyarrow.csv.read_csv` + `pyarrow.parquet.write_table` of the same file;
  3. the ratios ingest / floor for time and peak RSS (goal: time <= 2x).
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

from jetx.data.synth import synthesize, write_csv

# VmHWM of the child's own address space: ru_maxrss would carry over the parent's high-water mark
# (fork copies it), and the parent holds the generated series.
_PEAK = """
def peak_rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
"""

_INGEST = """
import json, sys, time
{PEAK}from pathlib import Path
from jetx.data.ingest import ingest
begin = time.perf_counter()
manifest = ingest(Path(sys.argv[1]), Path(sys.argv[2]))
seconds = time.perf_counter() - begin
rss = peak_rss()
print(json.dumps({"seconds": seconds, "rows": manifest["rows_kept"], "peak_rss": rss}))
"""

_FLOOR = """
import json, sys, time
{PEAK}import pyarrow.csv as pacsv, pyarrow.parquet as pq
begin = time.perf_counter()
table = pacsv.read_csv(sys.argv[1])
pq.write_table(table, sys.argv[2] + "/floor.parquet")
seconds = time.perf_counter() - begin
rss = peak_rss()
print(json.dumps({"seconds": seconds, "rows": table.num_rows, "peak_rss": rss}))
"""


def _child(code: str, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", code.replace("{PEAK}", _PEAK), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def make_csv(path: Path, rounds: int) -> float:
    """Write the synthetic CSV (seed 0, signal none); returns its size in MiB."""
    write_csv(path, synthesize(rounds, seed=0))
    return path.stat().st_size / 2**20


def figure_ingest(path: Path, out: Path) -> dict:
    """Figure 1: jetx ingest of the CSV."""
    return _child(_INGEST, str(path), str(out))


def figure_floor(path: Path, out: Path) -> dict:
    """Figure 2: bare pyarrow read_csv + write_table of the same CSV."""
    out.mkdir(parents=True, exist_ok=True)
    return _child(_FLOOR, str(path), str(out))


def _line(name: str, run: dict) -> str:
    return (
        f"{name:<8} {run['rows']:>11,d} rows  {run['seconds']:7.2f} s  "
        f"{run['rows'] / run['seconds'] / 1e6:6.2f} M rows/s  "
        f"peak RSS {run['peak_rss'] / 2**20:7.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="work directory to keep")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="jetx-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    source = work / "synthetic.csv"
    begin = time.perf_counter()
    size = make_csv(source, args.rounds)
    print(
        f"config: rounds={args.rounds:,d} csv={size:.0f} MiB (written in "
        f"{time.perf_counter() - begin:.1f} s) python={platform.python_version()} "
        f"pyarrow={pa.__version__} numpy={np.__version__} cpus={os.cpu_count()} "
        f"machine={platform.machine()}"
    )
    ingest_run = figure_ingest(source, work / "ingest")
    floor_run = figure_floor(source, work / "floor")
    print(_line("ingest", ingest_run))
    print(_line("floor", floor_run))
    print(
        f"ratio ingest/floor: time {ingest_run['seconds'] / floor_run['seconds']:.2f}x "
        f"(goal <= 2x), peak RSS {ingest_run['peak_rss'] / floor_run['peak_rss']:.2f}x"
    )
    if args.keep is None:
        for path in sorted(work.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
