"""A run's tables as plain rows: one dict per row, column -> printable value.

The orchestration layer publishes the same rows as Prefect table artifacts, `jetx compare`
prints them, and the report renders them as markdown.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from jetx.config import CLASS_NAMES, MIB
from jetx.evaluation.formatting import interval, number, p_value, percent
from jetx.evaluation.records import Evaluation
from jetx.evaluation.report import plots
from jetx.runtime import stage_peak

logger = logging.getLogger(__name__)


def metric_row(name: str, result: Mapping[str, Any], cut: str = "") -> dict[str, str]:
    """One printable row of a `threshold_metrics`/`evaluate_predictions` result."""
    return {
        "rule": name,
        "cut": cut,
        "bets": f"{result['bets']} / {result['rounds']}",
        "win rate [95% CI]": f"{percent(result['win_rate'])} {interval(result['win_rate_ci'])}"
        if result["bets"]
        else "undefined (no bet)",
        "ROI [95% CI]": f"{percent(result['roi'], True)} {interval(result['roi_ci'], True)}"
        if result["bets"]
        else "0 (no bet)",
        "below-1.5 acc": percent(result["below_accuracy"]),
        "above-1.5 acc": percent(result["above_accuracy"]),
        "money-loss risk": percent(result["money_loss_risk"]),
        "accuracy": percent(result["threshold_accuracy"]),
        "precision": percent(result["precision"]),
        "MAE": number(result.get("mae")) if "mae" in result else "",
        "class acc": percent(result["classification_accuracy"]) if "mae" in result else "",
    }


def result_rows(evaluation: Evaluation) -> list[dict[str, str]]:
    """The model at each stage (at the given cut and at the validation-chosen cut), then the
    baselines, all on the same rounds; one short key column, so that more columns fit."""
    rows = []
    for stage in evaluation["stages"]:
        chosen = "each origin's" if stage["val_cut"] is None else f"{stage['val_cut']:.2f}"
        for key, cut in (("at_cut", f"{stage['cut']:.2f}"), ("at_val_cut", f"val {chosen}")):
            rows.append(_rule_row(f"{stage['stage']} @ {cut}", stage[key]))
    for key, baseline in evaluation["baselines"].items():
        rows.append(_rule_row(key, baseline))
    return rows


def _rule_row(name: str, result: Mapping[str, Any]) -> dict[str, str]:
    """`metric_row` with one short key column ("stage @ cut", or the baseline's name)."""
    row = metric_row(name, result)
    del row["rule"], row["cut"]
    return {"stage @ cut": name, **row}


def baseline_rules(evaluation: Evaluation) -> str:
    """What each baseline row bets on, in words ("always: bet every round; ...")."""
    return "; ".join(f"{key}: {b['rule']}" for key, b in evaluation["baselines"].items())


def target_rows(evaluation: Evaluation) -> list[dict[str, str]]:
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
                "best val_loss": round(min(val)[0], 4) if val else None,
                "best epoch": min(val)[1] + 1 if val else None,  # 1-based, as the log counts
                "micro-batch": last.get("micro_batch"),
                "accumulation": last.get("accumulation"),
                "peak memory (MiB)": None if peak is None else round(peak / MIB, 1),
                "memory source": source,
                "peak RSS (MiB)": round(max(rss) / MIB, 1) if rss else None,
                "seconds": round(sum(r.get("seconds") or 0.0 for r in stage_records), 1),
            }
        )
    return rows


def columns(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    """`rows` cut to the columns `names`, in that order (a wide table split into narrow ones:
    the report's tables must fit the Prefect UI's artifact pane, about 7 columns)."""
    return [{name: row.get(name, "") for name in names} for row in rows]


#: The width a report table may take: the Prefect UI's artifact pane is about 726 px wide in a
#: 1280 px window (measured in tests/test_deployment.py, which checks that no table overflows).
PANE_PX = 700
#: A cell's width in that pane, estimated on the safe side: px per character, and padding.
CHAR_PX, CELL_PX = 9, 16


def fitted_tables(rows: Sequence[Mapping[str, Any]], keys: int = 1) -> str:
    """`rows` as markdown tables that fit the UI's pane: the first `keys` columns in each, the
    others split among as many tables as their estimated widths need (at least one each)."""
    if not rows:
        return ""
    names = list(rows[0])

    def width(name: str) -> int:
        cells = [len(_cell(row.get(name))) for row in rows]
        return CHAR_PX * max(len(name), *cells) + CELL_PX

    key_names, groups = names[:keys], [[]]
    base = sum(width(name) for name in key_names)
    for name in names[keys:]:
        if groups[-1] and base + sum(map(width, groups[-1])) + width(name) > PANE_PX:
            groups.append([])
        groups[-1].append(name)
    return "\n\n".join(markdown_table(columns(rows, key_names + group)) for group in groups)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as a GitHub markdown table (columns from the first row); "" for no rows."""
    if not rows:
        return ""
    columns = list(rows[0])

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return ("" if value is None else str(value)).replace("|", "\\|")


def _skill(block: Mapping[str, Any]) -> str:
    return f"{percent(block['estimate'], True)} {interval(block['ci'], True)}"


def score_rows(evaluation: Evaluation) -> list[dict[str, str]]:
    """The proper scores: the model at each stage, then the two constant forecasters, all on
    the same rounds."""
    rows = []
    for stage in evaluation["stages"]:
        model = stage["forecast"]["forecasters"]["model"]
        rows.append(_score_row(f"model, stage {stage['stage']}", model))
    if evaluation["stages"]:
        forecasters = evaluation["stages"][-1]["forecast"]["forecasters"]
        for name, label in (("base_rate", "prior base rate"), ("house", "house (0.97 / 1.5)")):
            rows.append(_score_row(f"constant: {label}", forecasters[name]))
    return rows


def _score_row(name: str, scores: Mapping[str, Any]) -> dict[str, str]:
    return {
        "forecaster": name,
        "mean forecast": percent(scores["mean_forecast"]),
        "log loss": f"{scores['log_loss']:.4f}",
        "Brier": f"{scores['brier']:.4f}",
    }


def skill_rows(evaluation: Evaluation) -> list[dict[str, str]]:
    """Per stage: the skill scores beside the verdict table's (Brier against the base rate,
    log loss against the house), with their block-bootstrap intervals."""
    return [
        {
            "stage": str(stage["stage"]),
            "Brier skill vs base rate": _skill(stage["forecast"]["skill"]["base_rate"]["brier"]),
            "log-loss skill vs house": _skill(stage["forecast"]["skill"]["house"]["log_loss"]),
        }
        for stage in evaluation["stages"]
    ]


def verdict_rows(evaluation: Evaluation) -> list[dict[str, str]]:
    """Per stage, every figure its verdict reads: the skill test (log-loss skill over the base
    rate, DM p with its Holm-adjusted value in brackets, the smallest gain these rounds could
    show) and the win-rate test at the given and the validation cut (p (adjusted), the smallest
    win rate those bets could show)."""
    rows = []
    for stage in evaluation["stages"]:
        skill, test = stage["forecast"]["skill"]["base_rate"]["log_loss"], stage["skill_test"]
        row = {
            "stage": str(stage["stage"]),
            "log-loss skill vs base rate": _skill(skill),
            "DM p (adj.)": _adjusted(test),
            "could show": f"{number(test['detectable_log_loss_improvement'], 4)} nats "
            f"({percent(test['detectable_skill'])})",
        }
        for key, cut in (("at_cut", "given"), ("at_val_cut", "val")):
            bank = stage["bankroll_tests"][key]
            row[f"{cut}: p (adj.)"] = _adjusted(bank) if stage[key]["bets"] else "no bet"
            row[f"{cut}: could show"] = percent(bank["detectable_win_rate"])
        rows.append(row)
    return rows


def _adjusted(test: Mapping[str, Any]) -> str:
    return f"{p_value(test['p_value'])} ({p_value(test['adjusted_p_value'])})"


def calibration_rows(evaluation: Evaluation) -> list[dict[str, str]]:
    """Per stage: the forecasts' mean against the observed rate, their spread, and
    Spiegelhalter's calibration test."""
    rows = []
    for stage in evaluation["stages"]:
        calibration = stage["forecast"]["calibration"]
        test = calibration["spiegelhalter"]
        low, high = calibration["forecast_range"]
        rows.append(
            {
                "stage": str(stage["stage"]),
                "observed rate": percent(calibration["observed_rate"]),
                "forecast sd": f"{100 * calibration['forecast_sd']:.2f} points",
                "forecast range": f"{percent(low)} to {percent(high)}",
                "Spiegelhalter z": number(test["z"], 2),
                "z's p": p_value(test["p_value"]),
            }
        )
    return rows


def trial_rows(evaluation: Evaluation) -> list[dict[str, str]]:
    """What was tried: one row per trial (stage x cut) with its raw and adjusted p-values."""
    trials = evaluation["trials"]
    return [
        {
            "stage": str(row["stage"]),
            "cut": row["cut"] + ("" if row["cut_value"] is None else f" ({row['cut_value']:.2f})"),
            "bets": str(row["bets"]),
            "skill p": p_value(row["skill_p_value"]),
            f"skill p (Holm over {trials['skill_tests']})": p_value(row["skill_adjusted_p_value"]),
            "win-rate p": p_value(row["bankroll_p_value"]) if row["bets"] else "no bet",
            f"win-rate p (Holm over {trials['bankroll_tests']})": p_value(
                row["bankroll_adjusted_p_value"]
            ),
        }
        for row in trials["tried"]
    ]


def origin_table(origins: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """A walk-forward's per-origin rows (`walk_forward.pool.origin_rows`), printable."""
    return [
        {
            "origin": str(row["origin"]),
            "stage": str(row["stage"]),
            "train rounds": row["train rounds"],
            "scored rounds": row["scored rounds"],
            "base rate": percent(row["base rate"]),
            "log loss": f"{row['log loss']:.4f}",
            "base-rate log loss": f"{row['base-rate log loss']:.4f}",
            "log-loss skill [95% CI]": _skill({"estimate": row["skill"], "ci": row["skill_ci"]}),
            "DM p": p_value(row["p_value"]),
            f"p (Holm over {len(origins)})": p_value(row["adjusted_p_value"]),
            "validation cut": number(row["val_cut"], 2),
            "bets at the given cut": str(row["bets"]),
            "win rate": percent(row["win_rate"]),
        }
        for row in origins
    ]
