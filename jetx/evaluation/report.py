"""A run's report: tables as plain rows, report.md, metrics.json and the PNG plots.

The tables are functions returning `list[dict]` (one dict per row, column -> printable value) so
that the orchestration layer can publish the same rows as Prefect table artifacts and a report
renders them as markdown.

An evaluation (what `scoring.evaluate_run` returns and RUN_DIR/report/metrics.json holds):
    schema, run_dir, created_at (ISO UTC), split, rounds, data_sha256 (the raw input's sha256 from
    the features manifest: "same data" for `compare`), features_dir, variant, preset, parameters,
    training (`training_rows` of metrics.jsonl), baselines (`metrics.baselines`), and
    stages: one dict per evaluated stage with stage, checkpoint, cut, val_cut, at_cut and
    at_val_cut (`jetx.evaluation.metrics.evaluate_predictions`), verdict and verdict_at_val_cut
    (`jetx.evaluation.metrics.verdict` against the always-bet baseline).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetx.config import BREAK_EVEN_WIN_RATE, CASHOUT, CLASS_NAMES, MIB
from jetx.evaluation import plots
from jetx.evaluation.metrics import bet_signal
from jetx.io import atomic_path, write_json
from jetx.runtime import stage_peak

logger = logging.getLogger(__name__)

REPORT_DIR = "report"
METRICS_JSON = "metrics.json"
METRICS_JSONL = "metrics.jsonl"
INDEPENDENCE = (
    "Crash games are designed so that each round is independent of the rounds before it: a "
    "model that appears to beat the house by more than noise is first a suspect for leakage, "
    "not a success."
)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl, oldest first; an absent file has none.

    A line that is not a JSON object is skipped with a warning naming it, never silently.
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            logger.warning("%s:%d is not a JSON record; skipped", path, number)
    return records


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "undefined"
    return f"{100 * value:+.1f}%" if signed else f"{100 * value:.1f}%"


def _ci(interval: Sequence[float] | None, signed: bool = False) -> str:
    if interval is None:
        return "undefined"
    return "[" + ", ".join(_pct(v, signed) for v in interval) + "]"


def _num(value: float | None, digits: int = 3) -> str:
    return "undefined" if value is None else f"{value:.{digits}f}"


def metric_row(name: str, result: Mapping[str, Any], cut: str = "") -> dict[str, str]:
    """One printable row of a `threshold_metrics`/`evaluate_predictions` result."""
    return {
        "rule": name,
        "cut": cut,
        "bets": f"{result['bets']} / {result['rounds']}",
        "win rate [95% CI]": f"{_pct(result['win_rate'])} {_ci(result['win_rate_ci'])}"
        if result["bets"]
        else "undefined (no bet)",
        "ROI [95% CI]": f"{_pct(result['roi'], True)} {_ci(result['roi_ci'], True)}"
        if result["bets"]
        else "0 (no bet)",
        "below-1.5 acc": _pct(result["below_accuracy"]),
        "above-1.5 acc": _pct(result["above_accuracy"]),
        "money-loss risk": _pct(result["money_loss_risk"]),
        "threshold acc": _pct(result["threshold_accuracy"]),
        "precision": _pct(result["precision"]),
        "MAE": _num(result.get("mae")) if "mae" in result else "",
        "class acc": _pct(result["classification_accuracy"]) if "mae" in result else "",
    }


def result_rows(evaluation: Mapping[str, Any]) -> list[dict[str, str]]:
    """The model at each stage (at the given cut and at the validation-chosen cut), then the
    baselines, all on the same rounds."""
    rows = []
    for stage in evaluation["stages"]:
        name = f"model, stage {stage['stage']}"
        rows.append(metric_row(name, stage["at_cut"], f"{stage['cut']:.2f} (given)"))
        rows.append(metric_row(name, stage["at_val_cut"], f"{stage['val_cut']:.2f} (validation)"))
    for key, baseline in evaluation["baselines"].items():
        rows.append(metric_row(f"baseline: {key} ({baseline['rule']})", baseline))
    return rows


def target_rows(evaluation: Mapping[str, Any]) -> list[dict[str, str]]:
    """The original tool's targets as pass/fail/undefined, per stage at the given cut."""
    labels = {True: "pass", False: "FAIL", None: "undefined"}
    rows = []
    for stage in evaluation["stages"]:
        row = {"stage": str(stage["stage"]), "cut": f"{stage['cut']:.2f}"}
        row.update({name: labels[ok] for name, ok in stage["at_cut"]["targets"].items()})
        rows.append(row)
    return rows


def confusion_rows(matrix: Sequence[Sequence[int]]) -> list[dict[str, str]]:
    """The 3x3 confusion matrix: one row per true class, one column per predicted class."""
    return [
        {
            "true \\ predicted": name,
            **{p: str(n) for p, n in zip(CLASS_NAMES, row, strict=True)},
        }
        for name, row in zip(CLASS_NAMES, matrix, strict=True)
    ]


def training_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per stage: epochs, best validation loss, micro-batch x accumulation, peak memory, time.

    Values are numbers (None when a record lacks the key) so that `compare` can reuse them.
    """
    rows = []
    for stage, stage_records in plots.records_by_stage(records).items():
        val = [(r["val_loss"], r["epoch"]) for r in stage_records if r.get("val_loss") is not None]
        peak, source = stage_peak(stage_records)
        rss = [r["rss_peak_bytes"] for r in stage_records if r.get("rss_peak_bytes")]
        last = stage_records[-1]
        rows.append(
            {
                "stage": stage,
                "epochs": len(stage_records),
                "best val_loss": min(val)[0] if val else None,
                "best epoch": min(val)[1] if val else None,
                "micro-batch": last.get("micro_batch"),
                "accumulation": last.get("accumulation"),
                "peak memory (MiB)": None if peak is None else round(peak / MIB, 1),
                "memory source": source,
                "peak RSS (MiB)": round(max(rss) / MIB, 1) if rss else None,
                "seconds": round(sum(r.get("seconds") or 0.0 for r in stage_records), 1),
            }
        )
    return rows


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as a GitHub markdown table (columns from the first row); "" for no rows."""
    if not rows:
        return ""
    columns = list(rows[0])

    def cell(value: Any) -> str:
        return ("" if value is None else str(value)).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


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
        f"win rate is {_pct(BREAK_EVEN_WIN_RATE)}. The validation cut "
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


def write_report(
    run_dir: Path,
    evaluation: Mapping[str, Any],
    y_value: np.ndarray | None = None,
    p_threshold: np.ndarray | None = None,
) -> Path:
    """Write RUN_DIR/report/: metrics.json, the PNG plots and report.md.

    Args:
        run_dir: the run's directory (its metrics.jsonl feeds the training plots).
        evaluation: the evaluation dict described in the module docstring.
        y_value: float64 [N] true multipliers of the evaluated rounds, for the bankroll plot.
        p_threshold: float [N] the final stage's threshold probabilities on those rounds.

    Returns:
        The path of report.md.
    """
    out = Path(run_dir) / REPORT_DIR
    write_json(out / METRICS_JSON, evaluation)
    records = read_records(Path(run_dir) / METRICS_JSONL)
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
        if y_value is not None and p_threshold is not None:
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
    with atomic_path(out / "report.md") as tmp:
        tmp.write_text(render_markdown(evaluation, figures), encoding="utf-8")
    return out / "report.md"
