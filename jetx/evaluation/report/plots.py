"""PNG plots of a run: training curves, peak memory, the confusion matrix and the bankroll.

Matplotlib's object-oriented API: each plot builds its own `matplotlib.figure.Figure` and saves
it with `Figure.savefig` (the Agg renderer behind it), never through pyplot, so no display is
needed on a server or in a worker and the process's backend (`matplotlib.use`, MPLBACKEND, a
notebook's inline backend) is left as the caller set it. Every figure has a
title, labelled axes with units and a legend, and is written atomically like every other output.
Training records are the dicts of RUN_DIR/metrics.jsonl; keys beyond the ones read are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from jetx.config import CLASS_NAMES, MIB
from jetx.evaluation.scores.heads import bankroll_curve
from jetx.io import atomic_path

#: Panels of the memory plot -> how a metrics.jsonl record gives its figure in bytes (or None).
MEMORY_PANELS = {
    "allocator peak": lambda r: (
        r.get("memory_peak_bytes") if r.get("memory_source") == "allocator" else None
    ),
    "process peak RSS": lambda r: r.get("rss_peak_bytes"),
}


def _save(fig: Figure, path: Path) -> Path:
    """Write `fig` as a PNG, atomically. A pyplot-free Figure is freed with its last reference."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)


def records_by_stage(records: Sequence[Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
    """Records grouped by stage (ascending), each group sorted by epoch; others are ignored."""
    stages: dict[int, list[Mapping[str, Any]]] = {}
    for record in records:
        if "stage" in record and "epoch" in record:
            stages.setdefault(int(record["stage"]), []).append(record)
    return {s: sorted(rows, key=lambda r: r["epoch"]) for s, rows in sorted(stages.items())}


def plot_training_curves(records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Training and validation loss against epoch, one panel per stage.

    Args:
        records: metrics.jsonl records with stage, epoch, loss and val_loss.
        path: the PNG to write.

    Returns:
        `path`.
    """
    stages = records_by_stage(records) or {0: []}
    fig = Figure(figsize=(4.2 * len(stages), 3.6))
    axes = fig.subplots(1, len(stages), squeeze=False)
    for ax, (stage, rows) in zip(axes[0], stages.items(), strict=True):
        epochs = [r["epoch"] for r in rows]
        for key, label, style in (("loss", "train", "-o"), ("val_loss", "validation", "--s")):
            points = [(e, r[key]) for e, r in zip(epochs, rows, strict=True) if key in r]
            if points:
                ax.plot(*zip(*points, strict=True), style, label=label, markersize=4)
        ax.set_title(f"Stage {stage}" if rows else "No training records")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("weighted total loss")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.suptitle("Training curves per stage")
    return _save(fig, path)


def plot_memory(records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Peak memory per epoch across the stages: the allocator's peak and the process's RSS.

    Two panels with their own scales: on a CPU the allocator's peak (what the memory plan
    predicts) is far below the process RSS (TensorFlow's runtime), and one axis would flatten it.

    Args:
        records: metrics.jsonl records with stage, epoch, `memory_source`, `memory_peak_bytes`
            (drawn only where the source is the allocator) and `rss_peak_bytes`.
        path: the PNG to write.

    Returns:
        `path`.
    """
    panels = list(MEMORY_PANELS)
    fig = Figure(figsize=(8, 5.6))
    axes = fig.subplots(len(panels), 1, sharex=True)
    device = next((r["memory_device"] for r in records if r.get("memory_device")), None)
    x = 0
    for index, (stage, rows) in enumerate(records_by_stage(records).items()):
        xs = np.arange(x, x + len(rows))
        micro = {r.get("micro_batch") for r in rows} - {None}
        accumulation = {r.get("accumulation") for r in rows} - {None}
        shape = f" (micro-batch {_join(micro)} x {_join(accumulation)})" if micro else ""
        for panel, figure in MEMORY_PANELS.items():
            mib = [figure(r) / MIB for r in rows if figure(r) is not None]
            if len(mib) == len(rows):
                ax = axes[panels.index(panel)]
                ax.plot(xs, mib, "-o", c=f"C{index}", ms=4, label=f"stage {stage}{shape}")
        for ax in axes:
            ax.axvline(x - 0.5, color="grey", lw=0.8, alpha=0.5)
        x += len(rows)
    for ax, panel in zip(axes, panels, strict=True):
        where = f" ({device})" if device and panel == "allocator peak" else ""
        ax.set_title(f"{panel[0].upper()}{panel[1:]}{where}", fontsize=10)
        ax.set_ylabel("MiB")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right")
        else:
            ax.set_xlim(-1, max(x, 1))
            missing = "no allocator statistics (see memory_note)" if panel != panels[-1] else ""
            ax.text(0.5, 0.5, missing or "no records", ha="center", transform=ax.transAxes)
    axes[-1].set_xlabel("epoch (all stages, in order)")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle("Peak memory per epoch")
    return _save(fig, path)


def _join(values: set) -> str:
    return "/".join(str(v) for v in sorted(values))


def plot_confusion(matrix: Sequence[Sequence[int]], path: Path, title: str) -> Path:
    """The classification head's 3x3 confusion matrix, counts and row shares in each cell.

    Args:
        matrix: int [3][3], rows true class, columns predicted class.
        path: the PNG to write.
        title: what the matrix is of (model, stage, split).

    Returns:
        `path`.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    fig = Figure(figsize=(4.8, 4.2))
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        colour = "white" if shares[i, j] > 0.6 else "black"
        ax.text(j, i, f"{count}\n{100 * shares[i, j]:.0f}%", ha="center", va="center", c=colour)
    ticks = range(len(CLASS_NAMES))
    ax.set_xticks(ticks, CLASS_NAMES)
    ax.set_yticks(ticks, CLASS_NAMES)
    ax.set_xlabel("predicted class (multiplier)")
    ax.set_ylabel("true class (multiplier)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="share of the true class")
    return _save(fig, path)


def plot_bankroll(y_value: np.ndarray, bets: Mapping[str, np.ndarray], path: Path) -> Path:
    """Cumulative profit over the rounds, 1 unit per bet cashed out at 1.5x, one line per rule.

    Args:
        y_value: float64 [N] true multipliers, in round order.
        bets: label -> bool [N] bet signal (the model's, always-bet's, ...).
        path: the PNG to write.

    Returns:
        `path`.
    """
    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    rounds = np.arange(1, len(y_value) + 1)
    for label, bet in bets.items():
        curve = bankroll_curve(y_value, bet)
        final = curve[-1] if curve.size else 0.0
        ax.plot(rounds, curve, label=f"{label} ({int(np.sum(bet))} bets, {final:+.1f} units)")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title("Bankroll over the test rounds (1 unit per bet, cash out at 1.5x)")
    ax.set_xlabel("test round (chronological)")
    ax.set_ylabel("cumulative profit (units)")
    ax.grid(alpha=0.3)
    if bets:
        ax.legend()
    return _save(fig, path)


def plot_reliability(
    bins: Mapping[str, Sequence[Mapping[str, Any]]], base_rate: float, path: Path, title: str
) -> Path:
    """The reliability diagram: observed rate against mean forecast per bin, with the diagonal.

    Two panels: the whole unit square, where forecasts near the base rate show as one cluster
    (what a good model of an i.i.d. game does), and a zoom on the forecasts' range. Each point
    carries its 95% Wilson interval; the last series' points carry their count of rounds.

    Args:
        bins: label (e.g. "stage 3") -> `reliability.reliability_bins` rows.
        base_rate: the prior base rate, drawn as a reference line.
        path: the PNG to write.
        title: what the forecasts are of (split, rounds).

    Returns:
        `path`.
    """
    fig = Figure(figsize=(10, 4.8))
    axes = fig.subplots(1, 2)
    forecasts = [row["mean_forecast"] for rows in bins.values() for row in rows]
    low, high = (min(forecasts), max(forecasts)) if forecasts else (0.0, 1.0)
    pad = max(0.02, 0.15 * (high - low))
    zoom = (max(0.0, low - pad), min(1.0, high + pad))
    last = list(bins)[-1] if bins else None
    for ax, x_range, label in ((axes[0], (0.0, 1.0), "Whole range"), (axes[1], zoom, "Zoom")):
        ax.plot([0, 1], [0, 1], color="black", lw=0.8, label="perfect calibration")
        ax.axhline(base_rate, color="grey", ls=":", lw=0.8, label=f"base rate {base_rate:.3f}")
        for index, (name, rows) in enumerate(bins.items()):
            x = np.array([r["mean_forecast"] for r in rows])
            y = np.array([r["observed_rate"] for r in rows])
            ci = np.array([r["observed_ci"] for r in rows]).reshape(-1, 2)
            ax.errorbar(x, y, yerr=np.abs(ci.T - y), fmt="o", ms=4, c=f"C{index}", capsize=2,
                        label=name)  # fmt: skip
            if ax is axes[1] and name == last:
                for r in rows:
                    ax.annotate(f"n={r['count']}", (r["mean_forecast"], r["observed_rate"]),
                                textcoords="offset points", xytext=(4, 4), fontsize=7)  # fmt: skip
        ax.set_xlim(*x_range)
        ax.set_ylim(*(x_range if ax is axes[0] else (0.0, 1.0)))
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("mean forecast P(value >= 1.5) in the bin")
        ax.set_ylabel("observed share of rounds reaching 1.5x")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"{title} (equal-count bins, 95% Wilson intervals)")
    return _save(fig, path)
