"""Walk-forward evaluation: train at K rolling origins and pool their out-of-sample rounds.

Each origin (`jetx.evaluation.walk_forward.origins`) is an ordinary run: the stage engine trains it
(`jetx.training.schedule`, with its checkpoints and resume) on the origin's own features dir and
`jetx.evaluation.run.evaluate_run` scores its block. `pool_origins` then joins the K blocks
into one set of out-of-sample rounds: one proper-score comparison per stage (each round's
base-rate forecast is its own origin's prior base rate), one DM test, one bankroll (each
origin's bets at its own validation-chosen cut), every test adjusted for the trials, and one row
per origin and stage beside it, whose skill p-values are adjusted over all origin rows.

`run_walk_forward` is the whole thing in one process (the `jetx walk-forward` command and the
validity tests); the walk-forward flow runs the same steps as Prefect tasks.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from jetx.config import Preset
from jetx.errors import JetxInputError
from jetx.evaluation.inference import read_predictions, write_predictions
from jetx.evaluation.records import read_evaluation, write_evaluation
from jetx.evaluation.report.markdown import render_report
from jetx.evaluation.run import build_evaluation, evaluate_run
from jetx.evaluation.scores import forecasts, heads
from jetx.evaluation.significance import trials
from jetx.evaluation.walk_forward.origins import Origin, build_origin, plan_for_preset
from jetx.features import FIRST_SAMPLE
from jetx.io import write_json
from jetx.layout import RunDir, SeriesDir, WalkForwardDir
from jetx.training.result import read_run_record

logger = logging.getLogger(__name__)


def _origin_arrays(origin: Origin, run_dir: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    run = RunDir(run_dir)
    evaluation, saved = read_evaluation(run), read_predictions(run.predictions)
    if evaluation["rounds"] != origin.test:
        raise JetxInputError(
            f"Origin {origin.number} scored {evaluation['rounds']} rounds, not its block of "
            f"{origin.test}: the preset's evaluation cap must be at least the block."
        )
    return evaluation, saved


def _pooled_stage(
    number: int, index: int, pooled: dict[str, np.ndarray], cut: float, seed: int
) -> dict[str, Any]:
    y, p = pooled["y_value"], pooled["p_threshold"][index]
    return {
        "stage": number,
        "checkpoint": None,
        "cut": cut,
        "val_cut": None,
        "forecast": forecasts.forecast_scores(y, p, pooled["p_base_rate"], seed=seed),
        "at_cut": heads.threshold_metrics(y, heads.bet_signal(p, cut)),
        "at_val_cut": heads.threshold_metrics(y, p >= pooled["val_cut"][index]),
    }


def _train_cap(run_dir: Path) -> int | None:
    """The cap on train samples the origin's run was trained with (its run.json), if any."""
    run = RunDir(run_dir)
    if not run.run_file.is_file():
        return None
    return read_run_record(run.path)["preset"].get("max_train_samples")


def origin_rows(
    origins: Sequence[Origin],
    evaluations: Sequence[dict[str, Any]],
    train_caps: Sequence[int | None] | None = None,
) -> list[dict[str, Any]]:
    """One row per origin and stage: the rounds it trained on (the newest `train_caps` samples
    before its validation block, when its preset caps them) and scored, and its own scores; the
    skill p-values are Holm-adjusted over all the rows."""
    rows = []
    caps = train_caps or [None] * len(origins)
    for origin, evaluation, cap in zip(origins, evaluations, caps, strict=True):
        first = FIRST_SAMPLE + (0 if cap is None else max(0, origin.train - cap))
        for stage in evaluation["stages"]:
            forecast = stage["forecast"]
            skill = forecast["skill"]["base_rate"]["log_loss"]
            rows.append(
                {
                    "origin": origin.number,
                    "stage": stage["stage"],
                    "train rounds": f"{first}-{FIRST_SAMPLE + origin.train - 1}",
                    "scored rounds": f"{FIRST_SAMPLE + origin.origin}-"
                    f"{FIRST_SAMPLE + origin.end - 1}",
                    "base rate": evaluation["base_rate"],
                    "log loss": forecast["forecasters"]["model"]["log_loss"],
                    "base-rate log loss": forecast["forecasters"]["base_rate"]["log_loss"],
                    "skill": skill["estimate"],
                    "skill_ci": skill["ci"],
                    "p_value": forecast["dm"]["p_value"],
                    "bets": stage["at_cut"]["bets"],
                    "win_rate": stage["at_cut"]["win_rate"],
                    "val_cut": stage["val_cut"],
                }
            )
    adjusted = trials.holm([row["p_value"] for row in rows])
    return [{**row, "adjusted_p_value": p} for row, p in zip(rows, adjusted, strict=True)]


def pool_origins(
    origins: Sequence[Origin],
    run_dirs: Sequence[Path],
    out: Path,
    *,
    seed: int = 0,
    description: str = "",
    source_sha256: str | None = None,
) -> dict[str, Any]:
    """Pool the evaluated origins' scored blocks into one evaluation; write it to `out`/report.

    Args:
        origins: the plan, oldest first.
        run_dirs: each origin's evaluated run (`evaluate_run` wrote its report/).
        out: the `WalkForwardDir`; its plan.json and report/evaluation.json are written.
        seed: seed of the bootstrap intervals and the random baseline.
        description: how the origins were trained, for the report's header.
        source_sha256: the history's sha256, for the record.

    Returns:
        The pooled evaluation (`scoring.build_evaluation`, split "walk-forward"), with
        walk_forward (the plan) and origins (`origin_rows`).

    Raises:
        JetxInputError: an origin not evaluated, evaluated on fewer rounds than its block, or
            with other stages or another cut than the first.
    """
    layout = WalkForwardDir(Path(out))
    loaded = [_origin_arrays(o, r) for o, r in zip(origins, run_dirs, strict=True)]
    evaluations = [evaluation for evaluation, _ in loaded]
    first = evaluations[0]
    numbers = [s["stage"] for s in first["stages"]]
    for origin, evaluation in zip(origins, evaluations, strict=True):
        if [s["stage"] for s in evaluation["stages"]] != numbers or any(
            s["cut"] != first["stages"][0]["cut"] for s in evaluation["stages"]
        ):
            raise JetxInputError(
                f"Origin {origin.number} was evaluated at other stages or another cut than "
                f"origin {origins[0].number}; pool runs of one plan."
            )
    pooled = {
        "y_value": np.concatenate([s["y_value"] for _, s in loaded]),
        "p_threshold": np.concatenate([s["p_threshold"] for _, s in loaded], axis=1),
        "p_base_rate": np.concatenate([s["p_base_rate"] for _, s in loaded]),
        "val_cut": np.concatenate(
            [
                np.repeat([[st["val_cut"]] for st in e["stages"]], e["rounds"], axis=1)
                for e in evaluations
            ],
            axis=1,
        ),
    }
    cut = first["stages"][0]["cut"]
    stages = [_pooled_stage(n, i, pooled, cut, seed) for i, n in enumerate(numbers)]
    plan = plan_record(origins, run_dirs, description, source_sha256)
    write_json(layout.plan_file, plan)
    evaluation = build_evaluation(
        pooled["y_value"],
        stages,
        heads.baselines(pooled["y_value"], seed),
        run_dir=layout.path,
        split="walk-forward",
        base_rate=float(pooled["p_base_rate"].mean()),
        data_sha256=first.get("data_sha256"),
        variant=first.get("variant"),
        normalization=first.get("normalization"),
        preset=first.get("preset"),
        parameters=first.get("parameters"),
        walk_forward=plan,
        origins=origin_rows(origins, evaluations, [_train_cap(r) for r in run_dirs]),
    )
    Path(layout.report).mkdir(parents=True, exist_ok=True)
    write_evaluation(layout.evaluation, evaluation)
    write_predictions(
        layout.predictions,
        y_value=pooled["y_value"],
        stages=numbers,
        p_threshold=pooled["p_threshold"],
        p_base_rate=pooled["p_base_rate"],
        val_cut=pooled["val_cut"],
    )
    return evaluation


def plan_record(
    origins: Sequence[Origin],
    run_dirs: Sequence[Path],
    description: str = "",
    source_sha256: str | None = None,
) -> dict[str, Any]:
    """plan.json: the origins, the run each is trained in, and the report's words on them."""
    return {
        "source_sha256": source_sha256,
        "origins": [o.to_dict() for o in origins],
        "runs": [str(Path(r).resolve()) for r in run_dirs],
        "description": description or describe(origins),
        "origins_note": ORIGINS_NOTE,
    }


ORIGINS_NOTE = (
    "Each origin is an ordinary run trained only on rounds before its scored block. The rows are "
    "descriptive: each origin's skill p-value is Holm-adjusted over all the rows (origins x "
    "stages); the pooled tests above are the verdict."
)


def describe(origins: Sequence[Origin]) -> str:
    """The report's sentence on the plan: how many origins, what each trained on and scored."""
    first, last = origins[0], origins[-1]
    return (
        f"Walk-forward evaluation at **{len(origins)} rolling origins**: origin k trains on "
        "the rounds before its validation block (the newest of them, up to the preset's cap), "
        f"validates on the {first.val} samples just before its origin and scores the next "
        f"{first.test}; the scored blocks are rounds {FIRST_SAMPLE + first.origin} to "
        f"{FIRST_SAMPLE + last.end - 1}, back to back, so the pool holds "
        f"{sum(o.test for o in origins)} out-of-sample rounds, none scored twice, and no origin "
        "ever read a round after its block."
    )


def run_walk_forward(
    series_dir: Path,
    out: Path,
    *,
    preset: Preset,
    variant: str | None = None,
    origins: int = 5,
    block: int | None = None,
    stages: tuple[int, ...] = (1,),
    seed: int = 0,
    cut: float = 0.5,
    **train_options: Any,
) -> dict[str, Any]:
    """Plan, build, train, evaluate and pool the origins of a history, in this process.

    A rerun on the same `out` resumes: built origins are kept, finished stages are not trained
    again and an interrupted stage resumes from its last checkpoint.

    Args:
        series_dir: the ingested history (`jetx ingest` output).
        out: the `WalkForwardDir`.
        preset: model, schedule and caps of every origin's run.
        variant: model variant (default: the preset's).
        origins: K, at least 5.
        block: samples each origin scores (default: `origins.default_block`; at most the
            preset's evaluation cap).
        stages: the stages each origin trains.
        seed: seed of weights, shuffling, bootstraps and the random baseline.
        cut: the given probability cut.
        **train_options: options of `jetx.training.schedule.train_stage` (verbose, precision...).

    Returns:
        The pooled evaluation; report/ holds it with report.md and its plots.

    Raises:
        JetxInputError: a bad plan, a block larger than the preset's evaluation cap, or `out`
            holding a walk-forward of another plan.
    """
    from jetx.training.inputs import StageData
    from jetx.training.schedule import run_schedule

    manifest = SeriesDir(series_dir).manifest()
    samples = manifest["rows_kept"] - FIRST_SAMPLE
    plan = plan_for_preset(
        samples, origins=origins, block=block, max_eval_samples=preset.max_eval_samples
    )
    layout = WalkForwardDir(Path(out))
    _check_plan(layout, plan, manifest["sha256"])
    runs = [layout.origin(o.number).run.path for o in plan]
    write_json(layout.plan_file, plan_record(plan, runs, source_sha256=manifest["sha256"]))
    for origin in plan:
        place = layout.origin(origin.number)
        if not place.is_complete():
            build_origin(series_dir, origin, place.path)
        data = StageData(place.features.path, preset, variant, seed)
        run_schedule(data, place.run.path, stages=stages, **train_options)
        evaluate_run(place.run.path, cut=cut, seed=seed)
    evaluation = pool_origins(plan, runs, layout.path, seed=seed, source_sha256=manifest["sha256"])
    render_report(layout.report, evaluation)
    return evaluation


def _check_plan(layout: WalkForwardDir, plan: Sequence[Origin], source_sha256: str) -> None:
    """A rerun resumes only the same plan on the same history: anything else would score
    origins built from other rounds."""
    if not layout.plan_file.is_file():
        return
    recorded = layout.read_plan()
    origins = [Origin.from_dict(o) for o in recorded["origins"]]
    if origins != list(plan) or recorded.get("source_sha256") != source_sha256:
        raise JetxInputError(
            f"{layout.path} holds a walk-forward of another history or other origins "
            f"({origins[0].key}, ...); give another output directory for a new plan."
        )
