"""A run's report: report.md and its PNG plots, from the evaluation written once beside them.

The report leads with the evidence (the forecasts' proper scores against the constant
forecasters, the skill test adjusted for every trial and what it could have detected, the
reliability diagram), lists what was tried, and then shows the bankroll as the consequence.
A walk-forward pool (`jetx.evaluation.walk_forward.pool`) is rendered by the same code, with its
origins.

The evaluation it renders is `jetx.evaluation.records.Evaluation` (report/evaluation.json).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetx.config import BREAK_EVEN_WIN_RATE, CASHOUT, NORMALIZATIONS
from jetx.evaluation.formatting import number, percent
from jetx.evaluation.inference import read_predictions
from jetx.evaluation.records import Evaluation, read_evaluation
from jetx.evaluation.report import plots
from jetx.evaluation.report.tables import (
    baseline_rules,
    calibration_rows,
    columns,
    confusion_rows,
    fitted_tables,
    origin_table,
    result_rows,
    score_rows,
    skill_rows,
    target_rows,
    verdict_rows,
)
from jetx.evaluation.scores.heads import bet_signal
from jetx.evaluation.significance import verdicts
from jetx.io import atomic_path
from jetx.layout import RunDir
from jetx.training.epoch_history import read_records

logger = logging.getLogger(__name__)

INDEPENDENCE = (
    "Crash games are designed so that each round is independent of the rounds before it: a "
    "model that appears to beat the house by more than noise is first a suspect for leakage, "
    "not a success."
)
RELIABILITY = "reliability.png"
BANKROLL = "bankroll.png"
#: The training rows' columns in the report (the values are `tables.training_rows`').
TRAINING_COLUMNS = ("stage", "epochs", "best val_loss", "best epoch", "seconds",
                    "micro-batch", "accumulation", "peak memory (MiB)", "memory source",
                    "peak RSS (MiB)", "MAE", "class acc")  # fmt: skip
#: The bankroll table's columns, and the other heads' (model rows only).
#: Precision (wins / bets) is the win rate, so it is shown once, as the win rate.
RESULT_COLUMNS = ("stage @ cut", "bets", "win rate [95% CI]", "ROI [95% CI]", "accuracy",
                  "below-1.5 acc", "above-1.5 acc", "money-loss risk")  # fmt: skip
ORIGIN_DATA = ("origin", "stage", "train rounds", "scored rounds", "base rate",
               "bets at the given cut", "win rate")  # fmt: skip

SCORE_NOTES = (
    "Log loss (nats per round) and the Brier score are strictly proper: the forecaster that "
    "states its true belief scores best in expectation. Skill = 1 - score / reference score "
    "(above 0: better than the reference). Intervals are 95% percentile intervals of a circular "
    "block bootstrap over rounds (blocks of ceil(n^(1/3)) consecutive rounds, 2,000 resamples, "
    "seeded), so serial dependence cannot narrow them. The skill test is the Diebold-Mariano "
    "test of the per-round log-loss differential against the prior base rate (every round before "
    "the test), one-sided, with a HAR variance: the equal-weighted cosine estimate with "
    "floor(0.41 n^(2/3)) cosines and its Student t (Lazarus, Lewis, Stock and Watson 2018), so "
    "that slowly drifting forecasts cannot make it reject too often. The "
    "detectable improvement is the smallest mean log-loss gain that this many rounds show with "
    "80% power at the adjusted level, for a calibrated forecaster near the base rate "
    "(2 (t_(1-a) + t_0.8)^2 / n, with the test's own Student t)."
)


def _verdicts(evaluation: Evaluation) -> list[str]:
    """One sentence of verdict per stage (its figures are in the verdict table)."""
    always, alpha = evaluation["baselines"]["always"], evaluation["trials"]["alpha"]
    return [
        f"- **Stage {stage['stage']}:** {verdicts.stage_summary(stage, always, alpha=alpha)}"
        for stage in evaluation["stages"]
    ]


def _targets(evaluation: Evaluation) -> list[str]:
    """The original tool's targets at the given cut, one line per stage."""
    lines = []
    for row in target_rows(evaluation):
        stage, cut = row.pop("stage"), row.pop("cut")
        by = {
            label: [name for name, got in row.items() if got == label]
            for label in set(row.values())
        }
        said = "; ".join(f"{label} {', '.join(names)}" for label, names in sorted(by.items()))
        lines.append(f"- Stage {stage} at cut {cut}: {said}.")
    return lines


def _trials_text(evaluation: Evaluation) -> str:
    trials = evaluation["trials"]
    stages = len(trials["stages"])
    return (
        f"This evaluation made **{trials['count']} trials**: {stages} stage"
        f"{'s' if stages != 1 else ''} x {len(trials['cuts'])} cuts ({' and '.join(trials['cuts'])}"
        f"). A cut does not change a forecast, so the skill test has one test per stage "
        f"({trials['skill_tests']}, Holm-adjusted over {trials['skill_tests']}); the win-rate "
        f"test against break-even has one per trial ({trials['bankroll_tests']}, adjusted over "
        f"{trials['bankroll_tests']}). Every verdict reads the adjusted p-values at "
        f"{trials['alpha']:g}, and each detectable effect is at Holm's first-step level "
        f"{trials['alpha']:g} / tests. In the tables above, p (adj.) is a test's p-value with its "
        "Holm-adjusted value in brackets, and could show is the smallest effect the test could "
        "have detected with 80% power: a log-loss gain per round (and its skill), or a true win "
        "rate."
    )


def _calibration_text(evaluation: Evaluation) -> str:
    final = evaluation["stages"][-1]
    calibration = final["forecast"]["calibration"]
    low, high = calibration["forecast_range"]
    return (
        "On i.i.d. rounds nothing of the past helps, so a good model's forecasts sit near the "
        f"base rate ({percent(evaluation.get('base_rate'))} here): stage {final['stage']}'s "
        f"forecasts range from {percent(low)} to {percent(high)} (sd "
        f"{100 * calibration['forecast_sd']:.2f} points). Spiegelhalter's z tests whether each "
        "round's outcome has its forecast's probability (standard normal when calibrated); the "
        "diagram bins the forecasts into equal-count bins with each bin's count and 95% Wilson "
        "interval." + _recalibration_text(evaluation, final)
    )


def _recalibration_text(evaluation: Evaluation, final: Mapping[str, Any]) -> str:
    """What recalibration did to the last stage's forecasts (a walk-forward pool's stages have
    one map per origin, each in its origin's report)."""
    platt = final.get("recalibration")
    if platt is None:
        if not evaluation.get("walk_forward"):
            return ""
        return (
            " Each origin's forecasts are its threshold head's outputs through a Platt map "
            "fitted on that origin's own validation block (its report gives the map), so no "
            "scored round reaches the map that scores it."
        )
    return (
        " The threshold head is trained with a weighted BCE or a focal loss, neither of them "
        "proper, so its outputs are scores; every forecast scored here is the head's output "
        "through a Platt map fitted on the "
        f"{platt['rounds']} validation rounds (slope {platt['slope']:.3f}, intercept "
        f"{platt['intercept']:.3f}; a slope near 0 means the head's ranking told validation "
        f"nothing). Before it, stage {final['stage']}'s raw outputs averaged "
        f"{percent(platt['raw_mean_forecast'])} with a log loss of {platt['raw_log_loss']:.4f}."
    )


def _header(evaluation: Evaluation) -> list[str]:
    walk, name = evaluation.get("walk_forward"), Path(evaluation["run_dir"]).name
    lines = [
        f"# jetx walk-forward report: {name}" if walk else f"# jetx report: {name}",
        "",
        f"Split `{evaluation['split']}`, {evaluation['rounds']} rounds; variant "
        f"`{evaluation.get('variant')}`, preset `{evaluation.get('preset')}`, "
        f"{evaluation.get('parameters')} parameters; data sha256 "
        f"`{(evaluation.get('data_sha256') or 'unknown')[:12]}`; {evaluation['created_at']}.",
        "",
    ]
    if evaluation.get("normalization") in NORMALIZATIONS:
        lines += [
            "Normalisation of the MLP branches and the fusion: "
            f"{NORMALIZATIONS[evaluation['normalization']]}.",
            "",
        ]
    if walk:
        lines += [walk["description"], ""]
    return lines


def _origin_tables(origins: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per-origin rows as two tables: the data and bets, then the scores and tests."""
    rows = origin_table(origins)
    scores = ["origin", "stage"] + [
        c for c in rows[0] if c not in ORIGIN_DATA + ("validation cut",)
    ]
    return [
        fitted_tables(columns(rows, ORIGIN_DATA), keys=2),
        "",
        fitted_tables(columns(rows, scores), keys=2),
    ]


def _stage_rows(evaluation: Evaluation) -> list[dict[str, Any]]:
    """Per stage: its training row and its other heads on the evaluated split (MAE and class
    accuracy, which the cut does not change)."""
    heads = {s["stage"]: s["at_cut"] for s in evaluation["stages"]}
    rows = []
    for row in evaluation.get("training", []):
        at_cut = heads.get(row["stage"], {})
        rows.append(
            {
                **row,
                "best val_loss": number(row.get("best val_loss"), 4),
                "MAE": number(at_cut.get("mae")),
                "class acc": percent(at_cut.get("classification_accuracy")),
            }
        )
    return rows


def render_markdown(evaluation: Evaluation, figures: Sequence[str] = ()) -> str:
    """report.md's text: the verdict (one table, one sentence per stage, what was tried), the
    evidence (skill, calibration), the bankroll, then per stage training and the other heads.
    Every table fits the Prefect UI's artifact pane."""
    stages = evaluation["stages"]
    final = stages[-1] if stages else None
    lines = _header(evaluation)
    if stages:
        lines += ["## Verdict", "", fitted_tables(verdict_rows(evaluation)), ""]
        lines += [_trials_text(evaluation), "", *_verdicts(evaluation), "", f"> {INDEPENDENCE}"]
        lines += ["", "## Skill: proper scores against the constant forecasters", ""]
        lines += [fitted_tables(score_rows(evaluation)), ""]
        lines += [fitted_tables(skill_rows(evaluation)), "", SCORE_NOTES, ""]
        lines += ["## Calibration", ""]
        lines += [f"![{RELIABILITY}]({RELIABILITY})", ""] if RELIABILITY in figures else []
        lines += [_calibration_text(evaluation), ""]
        lines += [fitted_tables(calibration_rows(evaluation)), ""]
    if evaluation.get("origins"):
        lines += ["## Origins", "", evaluation["walk_forward"]["origins_note"], ""]
        lines += [*_origin_tables(evaluation["origins"]), ""]
    lines += ["## The bankroll: the consequence, not the evidence", ""]
    lines += [fitted_tables(columns(result_rows(evaluation), RESULT_COLUMNS)), ""]
    lines += [f"Baselines: {baseline_rules(evaluation)}. {_bankroll_notes()}", ""]
    lines += [f"![{BANKROLL}]({BANKROLL})", ""] if BANKROLL in figures else []
    if evaluation.get("training"):
        lines += ["## Per stage: training and the other heads", ""]
        lines += [fitted_tables(columns(_stage_rows(evaluation), TRAINING_COLUMNS)), ""]
    if final and "targets" in final["at_cut"]:
        lines += ["The original tool's targets:", "", *_targets(evaluation), ""]
        lines += [f"Confusion matrix (stage {final['stage']}, classification head):", ""]
        lines += [fitted_tables(confusion_rows(final["at_cut"]["confusion_matrix"])), ""]
    rest = [f"![{name}]({name})" for name in figures if name not in (RELIABILITY, BANKROLL)]
    lines += [" ".join(rest)]  # one paragraph: the plots side by side where the pane is wide
    return "\n".join(lines).rstrip("\n") + "\n"


def _bankroll_notes() -> str:
    return (
        f"Win rate = wins / bets; a bet is p(value >= {CASHOUT:g}) >= cut, cashed out at "
        f"{CASHOUT:g}x (+{CASHOUT - 1:g} or -1 unit). Intervals are 95% Wilson; ROI = {CASHOUT:g} "
        "x win rate - 1, so its interval is the win rate's mapped through that line. Break-even "
        f"win rate is {percent(BREAK_EVEN_WIN_RATE)}; the win-rate test is the one-sided exact "
        "binomial test against it, and its detectable win rate uses the normal approximation "
        "(80% power). The validation cut maximises the validation bankroll's profit over cuts "
        "0.01..0.99; it is never chosen on test. The random baseline bets with probability equal "
        "to the base rate of these rounds (seeded draw; its expected win rate is the base rate). "
        "'undefined' marks a rate with nothing to divide by (no bet, or no round under 1.5)."
    )


def render_report(
    out: Path, evaluation: Evaluation, records: Sequence[Mapping[str, Any]] = ()
) -> Path:
    """Write report.md and its plots into `out`, beside evaluation.json and predictions.npz.

    Args:
        out: the report directory (RUN_DIR/report, or a walk-forward pool's).
        evaluation: the evaluation written there.
        records: metrics.jsonl records for the training plots (none for a pool).

    Returns:
        The path of report.md.
    """
    out = Path(out)
    figures = []
    if records:
        figures.append(plots.plot_training_curves(records, out / "training_curves.png").name)
        figures.append(plots.plot_memory(records, out / "peak_memory.png").name)
    stages = evaluation["stages"]
    if stages:
        final = stages[-1]
        bins = {f"stage {s['stage']}": s["forecast"]["reliability"] for s in stages}
        title = f"Reliability, {evaluation['split']} split, {evaluation['rounds']} rounds"
        base = float(
            evaluation.get("base_rate") or final["forecast"]["calibration"]["mean_forecast"]
        )
        figures.append(plots.plot_reliability(bins, base, out / RELIABILITY, title).name)
        if "confusion_matrix" in final["at_cut"]:
            title = f"Classification head, stage {final['stage']}, {evaluation['split']} split"
            matrix = final["at_cut"]["confusion_matrix"]
            figures.append(plots.plot_confusion(matrix, out / "confusion.png", title).name)
        predictions = out / RunDir.PREDICTIONS
        if predictions.is_file():
            figures.append(_bankroll_plot(read_predictions(predictions), final, out).name)
    path = out / RunDir.REPORT_MD
    with atomic_path(path) as tmp:
        tmp.write_text(render_markdown(evaluation, figures), encoding="utf-8")
    return path


def _bankroll_plot(saved: Mapping[str, np.ndarray], final: Mapping[str, Any], out: Path) -> Path:
    """The final stage's bets at both cuts against always-bet, over the evaluated rounds."""
    y_value = saved["y_value"]
    p_threshold = saved["p_threshold"][-1]
    val_cut = saved["val_cut"][-1] if "val_cut" in saved else final["val_cut"]
    label = (
        "each origin's validation cut" if "val_cut" in saved else f"validation cut {val_cut:.2f}"
    )
    bets = {
        f"model stage {final['stage']}, cut {final['cut']:.2f}": bet_signal(
            p_threshold, final["cut"]
        ),
        f"model stage {final['stage']}, {label}": p_threshold >= val_cut,
        "always bet": np.ones(len(y_value), dtype=bool),
    }
    return plots.plot_bankroll(y_value, bets, out / BANKROLL)


def write_report(run_dir: Path) -> Path:
    """Write report.md and its PNG plots from the run's evaluation and training records.

    Args:
        run_dir: an evaluated run (`jetx.evaluation.run.evaluate_run` wrote its
            report/evaluation.json and report/predictions.npz; metrics.jsonl feeds the training
            plots).

    Returns:
        The path of report.md.

    Raises:
        JetxInputError: the run has not been evaluated.
    """
    run = RunDir(run_dir)
    return render_report(run.report, read_evaluation(run), read_records(run.metrics))
