"""The typed shape of evaluation.json, its one writer and its one reader.

An evaluation travels as JSON-ready dicts between the scoring, the tests, the report, the
comparison, the export and the Prefect artifacts, so its shape is declared here as TypedDicts:
a reader sees `stage["forecast"]["dm"]["p_value"]` typed, and pydantic's `TypeAdapter`
checks every evaluation against them when it is written and when it is read, with unknown keys
refused (`extra="forbid"`), so that a key written by one module and read under another name by
the next fails at once, in one line naming the field. Why TypedDicts and not models: the values
stay the dicts that `json` writes and every consumer reads; nothing is converted twice.

An evaluation written by an older jetx (another `schema`) is refused in one line that says to
evaluate the run again; a damaged one is refused in one line naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NotRequired

from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

from jetx.errors import JetxInputError
from jetx.io import write_json
from jetx.layout import RunDir, WalkForwardDir
from jetx.readers import checked

#: The version of this shape; an evaluation.json with another is refused (evaluate again).
SCHEMA = 3

Interval = tuple[float, float]
_STRICT = ConfigDict(extra="forbid")


@with_config(_STRICT)
class Bankroll(TypedDict):
    """`heads.bankroll`: 1 unit per bet, cashed out at 1.5x."""

    bets: int
    wins: int
    profit: float
    win_rate: float | None
    win_rate_ci: Interval | None
    roi: float
    roi_ci: Interval | None


@with_config(_STRICT)
class Bets(Bankroll):
    """`heads.threshold_metrics`: the bet signal's confusion counts, rates and bankroll."""

    rounds: int
    tp: int
    fp: int
    tn: int
    fn: int
    base_rate: float | None
    below_accuracy: float | None
    below_accuracy_ci: Interval | None
    above_accuracy: float | None
    above_accuracy_ci: Interval | None
    money_loss_risk: float | None
    threshold_accuracy: float | None
    threshold_accuracy_ci: Interval | None
    precision: float | None


@with_config(_STRICT)
class Baseline(Bets):
    """A bet rule that uses no model (`heads.baselines`: always, never, random)."""

    rule: str


@with_config(_STRICT)
class HeadScores(Bets):
    """`heads.evaluate_predictions`: every head at one cut (a walk-forward pool has only the
    threshold head's bets, and the validation cut of each origin)."""

    cut: NotRequired[float | None]
    mae: NotRequired[float | None]
    median_abs_error: NotRequired[float | None]
    classification_accuracy: NotRequired[float | None]
    confusion_matrix: NotRequired[list[list[int]]]
    targets: NotRequired[dict[str, bool | None]]


@with_config(_STRICT)
class Forecaster(TypedDict):
    mean_forecast: float
    log_loss: float
    brier: float


@with_config(_STRICT)
class Skill(TypedDict):
    estimate: float
    ci: Interval | None


@with_config(_STRICT)
class DieboldMariano(TypedDict):
    """`diebold_mariano.DieboldMariano.to_dict()`."""

    statistic: float | None
    p_value: float
    df: int
    mean_differential: float
    rounds: int
    alternative: str


@with_config(_STRICT)
class Spiegelhalter(TypedDict):
    z: float | None
    p_value: float | None


@with_config(_STRICT)
class Calibration(TypedDict):
    spiegelhalter: Spiegelhalter
    mean_forecast: float
    observed_rate: float
    forecast_sd: float
    forecast_range: Interval


@with_config(_STRICT)
class ReliabilityBin(TypedDict):
    low: float
    high: float
    count: int
    mean_forecast: float
    observed_rate: float
    observed_ci: Interval | None


@with_config(_STRICT)
class ForecastScores(TypedDict):
    """`forecasts.forecast_scores`: the primary evidence."""

    rounds: int
    forecasters: dict[str, Forecaster]  # model, base_rate, house
    skill: dict[str, dict[str, Skill]]  # reference -> score -> skill
    dm: DieboldMariano
    calibration: Calibration
    reliability: list[ReliabilityBin]


@with_config(_STRICT)
class Recalibration(TypedDict):
    """The Platt map fitted on validation, and the raw head's figures before it."""

    intercept: float
    slope: float
    rounds: int
    raw_mean_forecast: float
    raw_log_loss: float


@with_config(_STRICT)
class SkillTest(TypedDict):
    p_value: float
    adjusted_p_value: float
    tests: int
    detectable_log_loss_improvement: float | None
    detectable_skill: float | None


@with_config(_STRICT)
class BankrollTest(TypedDict):
    p_value: float
    adjusted_p_value: float
    tests: int
    detectable_win_rate: float | None


@with_config(_STRICT)
class StageEvaluation(TypedDict):
    """One evaluated stage: `run.stage_evaluation`, then `trials.adjust_stages`' tests and
    verdicts."""

    stage: int
    checkpoint: str | None
    cut: float
    val_cut: float | None
    recalibration: NotRequired[Recalibration]
    forecast: ForecastScores
    at_cut: HeadScores
    at_val_cut: HeadScores
    skill_test: SkillTest
    bankroll_tests: dict[str, BankrollTest]  # at_cut, at_val_cut
    skill_verdict: str
    bankroll_verdict: str
    bankroll_verdict_at_val_cut: str
    verdict: str
    verdict_at_val_cut: str


@with_config(_STRICT)
class TriedRow(TypedDict):
    stage: int
    cut: str
    cut_value: float | None
    bets: int
    skill_p_value: float
    skill_adjusted_p_value: float
    bankroll_p_value: float
    bankroll_adjusted_p_value: float


@with_config(_STRICT)
class Trials(TypedDict):
    """Every trial counted (`trials.adjust_stages`)."""

    count: int
    stages: list[int]
    cuts: list[str]
    skill_tests: int
    bankroll_tests: int
    alpha: float
    power: float
    tried: list[TriedRow]


@with_config(_STRICT)
class Evaluation(TypedDict):
    """report/evaluation.json of a run (`run.build_evaluation`) or a walk-forward pool."""

    schema: int
    created_at: str
    rounds: int
    run_dir: str
    split: str
    base_rate: float | None
    data_sha256: str | None
    features_dir: NotRequired[str | None]
    variant: str | None
    normalization: NotRequired[str | None]
    preset: str | None
    parameters: int | None
    training: NotRequired[list[dict[str, Any]]]  # a run: `tables.training_rows`
    baselines: dict[str, Baseline]
    trials: Trials
    stages: list[StageEvaluation]
    walk_forward: NotRequired[dict[str, Any]]  # a pool: `pool.plan_record` and its words
    origins: NotRequired[list[dict[str, Any]]]  # a pool: `pool.origin_rows`


_EVALUATION = TypeAdapter(Evaluation)


def check_evaluation(data: Any, source: Path | str) -> Evaluation:
    """`data` as an Evaluation, or one JetxInputError naming `source` and the first bad field."""
    if isinstance(data, dict) and data.get("schema") != SCHEMA:
        raise JetxInputError(
            f"{source}: an evaluation of schema {data.get('schema')!r}, this jetx reads schema "
            f"{SCHEMA}; run `jetx evaluate` on the run again (its checkpoints are kept)."
        )
    return checked(_EVALUATION, data, source)


def write_evaluation(path: Path, evaluation: Evaluation) -> None:
    """Check `evaluation` against its shape, then write it atomically."""
    write_json(path, check_evaluation(evaluation, f"the evaluation for {path}"))


def read_evaluation(directory: RunDir | WalkForwardDir) -> Evaluation:
    """report/evaluation.json of a run or a walk-forward, checked (one line when it is missing,
    damaged or from an older jetx)."""
    return check_evaluation(directory.read_evaluation(), directory.evaluation)
