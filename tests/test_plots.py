"""jetx.evaluation.report.plots writes readable PNGs from real records (pyplot-free, real files)."""

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from jetx.evaluation.report import plots


def _records():
    rows = []
    for stage, micro in ((1, 8), (2, 4), (3, 2)):
        for epoch in range(3):
            rows.append(
                dict(
                    stage=stage,
                    epoch=epoch,
                    loss=1.0 / (epoch + 1),
                    val_loss=1.1 / (epoch + 1),
                    memory_source="allocator",
                    memory_peak_bytes=(100 + stage) * 2**20,
                    micro_batch=micro,
                    accumulation=64 // micro // 8 * 8,
                    an_extra_key="ignored",
                )
            )
    return rows


def _is_png_with_content(path):
    image = mpimg.imread(path)
    return image.ndim == 3 and image.shape[0] > 200 and image.std() > 0.01


@pytest.mark.parametrize(
    "draw",
    [
        pytest.param(lambda p: plots.plot_training_curves(_records(), p), id="curves"),
        pytest.param(lambda p: plots.plot_training_curves([], p), id="curves-empty"),
        pytest.param(lambda p: plots.plot_memory(_records(), p), id="memory"),
        pytest.param(lambda p: plots.plot_memory([{"stage": 1, "epoch": 0}], p), id="no-memory"),
        pytest.param(
            lambda p: plots.plot_confusion([[3, 1, 0], [0, 0, 0], [1, 1, 1]], p, "t"),
            id="confusion-with-empty-row",
        ),
        pytest.param(
            lambda p: plots.plot_bankroll(
                np.array([2.0, 1.1, 3.0]), {"model": np.array([1, 0, 1], bool)}, p
            ),
            id="bankroll",
        ),
        pytest.param(lambda p: plots.plot_bankroll(np.array([]), {}, p), id="bankroll-empty"),
    ],
)
def test_plot_writes_a_png(tmp_path, draw):
    path = tmp_path / "sub" / "figure.png"
    assert draw(path) == path
    assert _is_png_with_content(path)
    assert [p.name for p in path.parent.iterdir()] == ["figure.png"]


def test_memory_plot_labels_each_stage_with_its_micro_batch(tmp_path, monkeypatch):
    panels = []
    original = plots._save

    def capture(fig, path):
        for ax in fig.axes:
            labels = [t.get_text() for t in ax.get_legend().get_texts()]
            panels.append((ax.get_title(), labels))
        return original(fig, path)

    monkeypatch.setattr(plots, "_save", capture)
    records = _records()
    for record in records:
        record["rss_peak_bytes"] = 2**30
        record["memory_device"] = "CPU:0"
    plots.plot_memory(records, tmp_path / "m.png")
    labels = [
        "stage 1 (micro-batch 8 x 8)",
        "stage 2 (micro-batch 4 x 16)",
        "stage 3 (micro-batch 2 x 32)",
    ]
    assert panels == [("Allocator peak (CPU:0)", labels), ("Process peak RSS", labels)]


def test_writing_a_report_leaves_the_processs_matplotlib_backend_alone(tmp_path):
    # A caller's backend (a notebook's, a GUI's; here svg, which is not Agg) survives importing
    # jetx and writing a whole report, in a fresh process where nothing set it before.
    script = (
        "import sys, pathlib, matplotlib\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import jetx.cli, jetx.evaluation.report.markdown\n"
        "from test_report import _write_run\n"
        "run_dir, _ = _write_run(pathlib.Path(sys.argv[2]), 'run')\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules,\n"
        "      len(list((run_dir / 'report').glob('*.png'))))\n"
    )
    env = {**os.environ, "MPLBACKEND": "svg"}
    tests = str(Path(__file__).parent)
    done = subprocess.run(
        [sys.executable, "-c", script, tests, str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["svg", "False", "5"]
