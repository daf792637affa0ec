"""Tasks of the walk-forward flow: plan the origins, build each origin's data, pool, report.

Training and scoring an origin are the `jetx` flow's own tasks (`tasks.stage.train_stage_task`,
`tasks.evaluate.evaluate_run_task`): an origin is an ordinary run on its own features dir, with the
same caching, checkpoints and OOM retries.
"""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.utilities.hashing import hash_objects

from jetx.config import get_preset
from jetx.evaluation.records import read_evaluation
from jetx.evaluation.report.markdown import render_report
from jetx.evaluation.report.tables import origin_table
from jetx.evaluation.walk_forward.origins import Origin, build_origin, plan_for_preset
from jetx.evaluation.walk_forward.pool import pool_origins
from jetx.features import FIRST_SAMPLE
from jetx.layout import RunDir, SeriesDir, WalkForwardDir, Workspace
from tasks.caching import cached_task, task_code_digest
from tasks.records import DataRecord, EvaluationRecord, FeaturesRecord, ReportRecord
from tasks.report import inline_images


@task(name="plan_origins")
def plan_walk_forward(
    data: DataRecord, *, origins: int, block: int | None, preset: str
) -> list[Origin]:
    """The K origins over `data`'s history; the block is at most the preset's evaluation cap.

    Not cached: it is arithmetic on the record's row count.
    """
    cap = get_preset(preset).max_eval_samples
    samples = data.rows_kept - FIRST_SAMPLE
    plan = plan_for_preset(samples, origins=origins, block=block, max_eval_samples=cap)
    get_run_logger().info("%d origins: %s", len(plan), ", ".join(o.key for o in plan))
    return plan


@cached_task(
    "build_origin",
    task_run_name="build_origin-{origin.number}",
)
def build_origin_features(data: DataRecord, origin: Origin, out: Path) -> FeaturesRecord:
    """Cut the history after `origin`'s block and build its features into the workspace.

    Cached on the series' hash, the origin and the code; the directory's name carries all three,
    so an origin of another history or plan never reuses it.
    """
    code = task_code_digest(build_origin_features.fn)
    key = f"{data.files[SeriesDir.SERIES][:12]}-{origin.key}-{code[:8]}"
    place = Workspace(Path(out).resolve()).origin(key)
    record = build_origin(data.directory, origin, place.path)
    features = place.features
    return FeaturesRecord.of(features.path, features.FILES, samples=record["counts"])


@cached_task("pool_origins")
def pool_walk_forward(
    evaluations: list[EvaluationRecord], origins: list[Origin], out: Path, seed: int = 0
) -> EvaluationRecord:
    """Pool the origins' scored blocks into one evaluation (the workspace's walk-forward/).

    Cached on the origins' evaluation records (which hash their files) and the code.
    """
    code = task_code_digest(pool_walk_forward.fn)
    runs_digest = hash_objects([record.digest for record in evaluations], raise_on_failure=True)
    name = f"k{len(origins)}-b{origins[0].test}-{runs_digest[:12]}-{code[:8]}"
    layout = Workspace(Path(out).resolve()).walk_forward(name)
    runs = [record.directory.parent for record in evaluations]
    evaluation = pool_origins(origins, runs, layout.path, seed=seed)
    verdict = evaluation["stages"][-1]["skill_verdict"]
    get_run_logger().info("Walk-forward of %d origins: %s", len(origins), verdict)
    names = [RunDir.EVALUATION, RunDir.PREDICTIONS]
    return EvaluationRecord.of(layout.report, names, verdict=verdict)


@task(name="write_walk_forward_report")
def write_walk_forward_report(pool: EvaluationRecord) -> ReportRecord:
    """Render the pooled report and publish it and the per-origin rows as artifacts.

    Not cached: it is cheap, and its artifacts belong to this flow run.
    """
    layout = WalkForwardDir(pool.directory.parent)
    evaluation = read_evaluation(layout)
    report = render_report(layout.report, evaluation)
    create_table_artifact(
        origin_table(evaluation["origins"]), key="walk-forward-origins", description=str(report)
    )
    create_markdown_artifact(
        inline_images(report.read_text(encoding="utf-8"), report.parent),
        key="walk-forward-report",
        description=str(report),
    )
    get_run_logger().info("Walk-forward report: %s", report)
    return ReportRecord.of(layout.report, [RunDir.REPORT_MD, RunDir.EVALUATION], previous_run=None)
