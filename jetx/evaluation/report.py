"""A run's report: report.md and its PNG plots, from the evaluation written once beside them.

An evaluation (what `scoring.evaluate_run` returns and RUN_DIR/report/evaluation.json holds):
    schema, run_dir, created_at (ISO UTC), split, rounds, data_sha256 (the raw input's sha256 from
    the features manifest: "same data" for `compare`), features_dir, variant, preset, parameters,
    training (`training_rows` of metrics.jsonl), baselines (`metrics.baselines`), and
    stages: one dict per evaluated stage with stage, checkpoint, cut, val_cut, at_cut and
    at_val_cut (`jetx.evaluation.metrics.evaluate_predictions`), verdict and verdict_at_val_cut
    (`jetx.evaluation.metrics.verdict` against the always-bet baseline).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetx.config import BREAK_EVEN_WIN_RATE, CASHOUT
from jetx.evaluation import plots
from jetx.evaluation.metrics import bet_signal
from jetx.evaluation.tables import (
    confusion_rows,
    markdown_table,
    percent,
    result_rows,
    target_rows,
)
from jetx.io import atomic_path
from jetx.layout import RunDir
from jetx.training.epoch_history import read_records

logger = logging.getLogger(__name__)

INDEPENDENCE = (
    "Crash games are designed so that each round is independent of the rounds before it: a "
    "model that appears to beat the house by more than noise is first a suspect for leakage, "
    "not a success."
)


def render_markdown(evaluation: Mapping[str, Any], figures: Sequence[str] = ()) -> str:
    """report.md's text: the verdict first, then the tables, then the plots."""
    final = evaluation["stages"][-1] if evaluation["stages"] else None
    head = [
        f"# jetx report: {Path(evaluation['run_dir']).name}",
        "",
        f"Split `{evaluation['split']}`, {evaluation['rounds']} rounds; variant "
        f"`{evaluation.get('variant')}`, preset `{evaluation.get('preset')}`, "
        f"{evaluation.get('parameters')} parameters; data sha256 "
        f"`{(evaluation.get('data_sha256') or 'unknown')[:12]}`; {evaluation['created_at']}.",
        "",
    ]
    for stage in evaluation["stages"]:
        head += [
            f"**Verdict (stage {stage['stage']}, cut {stage['cut']:.2f}):** {stage['verdict']}",
            "",
            f"**Stage {stage['stage']} at the cut chosen on validation ({stage['val_cut']:.2f}):** "
            f"{stage['verdict_at_val_cut']}",
            "",
        ]
    head += [f"> {INDEPENDENCE}", ""]
    notes = (
        f"Win rate = wins / bets; a bet is p(value >= {CASHOUT:g}) >= cut, cashed out at "
        f"{CASHOUT:g}x (+{CASHOUT - 1:g} or -1 unit). Intervals are 95% Wilson; ROI = {CASHOUT:g} "
        "x win rate - 1, so its interval is the win rate's mapped through that line. Break-even "
        f"win rate is {percent(BREAK_EVEN_WIN_RATE)}. The validation cut "
        "maximises the validation bankroll's profit over cuts 0.01..0.99; it is never chosen "
        "on test. The random baseline bets with probability equal to the base rate of these "
        "rounds (seeded draw; its expected win rate is the base rate). 'undefined' marks a rate "
        "with nothing to divide by (no bet, or no round under 1.5)."
    )
    body = [
        "## Metrics on the same rounds",
        "",
        markdown_table(result_rows(evaluation)),
        "",
        notes,
        "",
        "## The original tool's targets",
        "",
        markdown_table(target_rows(evaluation)),
        "",
    ]
    if final:
        body += [
            f"## Confusion matrix (stage {final['stage']}, classification head)",
            "",
            markdown_table(confusion_rows(final["at_cut"]["confusion_matrix"])),
            "",
        ]
    if evaluation.get("training"):
        body += ["## Training", "", markdown_table(evaluation["training"]), ""]
    body += [f"![{name}]({name})" for name in figures]
    return "\n".join(head + body) + "\n"


def write_report(run_dir: Path) -> Path:
    """Write report.md and its PNG plots from the run's evaluation and training records.

    Args:
        run_dir: an evaluated run (`jetx.evaluation.scoring.evaluate_run` wrote its
            report/evaluation.json and report/predictions.npz; metrics.jsonl feeds the training
            plots).

    Returns:
        The path of report.md.

    Raises:
        JetxInputError: the run has not been evaluated.
    """
    run = RunDir(run_dir)
    evaluation = run.read_evaluation()
    out = run.report
    records = read_records(run.metrics)
    figures = [
        plots.plot_training_curves(records, out / "training_curves.png").name,
        plots.plot_memory(records, out / "peak_memory.png").name,
    ]
    if evaluation["stages"]:
        final = evaluation["stages"][-1]
        title = f"Classification head, stage {final['stage']}, {evaluation['split']} split"
        figures.append(
            plots.plot_confusion(
                final["at_cut"]["confusion_matrix"], out / "confusion.png", title
            ).name
        )
        if run.predictions.is_file():
            with np.load(run.predictions) as predictions:
                y_value, p_threshold = predictions["y_value"], predictions["p_threshold"]
            bets = {
                f"model stage {final['stage']}, cut {final['cut']:.2f}": bet_signal(
                    p_threshold, final["cut"]
                ),
                f"model stage {final['stage']}, validation cut {final['val_cut']:.2f}": bet_signal(
                    p_threshold, final["val_cut"]
                ),
                "always bet": np.ones(len(y_value), dtype=bool),
            }
            figures.append(plots.plot_bankroll(y_value, bets, out / "bankroll.png").name)
    with atomic_path(run.report_md) as tmp:
        tmp.write_text(render_markdown(evaluation, figures), encoding="utf-8")
    return run.report_md
