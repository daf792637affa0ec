"""Tasks: export the run to out/models, decide its promotion, and prune old runs."""

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from jetx.layout import BundleDir, ModelsDir, Workspace
from jetx.serving.bundle import export_bundle
from jetx.serving.promotion import decision_markdown, promote_run
from jetx.serving.retention import retain
from tasks.caching import cached_task
from tasks.records import BundleRecord, EvaluationRecord, FeaturesRecord, PromotionRecord


@cached_task("export_model")
def export_model(evaluation: EvaluationRecord, out: Path) -> BundleRecord:
    """Export the evaluated run to out/models/<run id>/ (`jetx export`).

    Cached on the evaluation's record (its files by hash) and this code.
    """
    run_dir = evaluation.directory.parent
    bundle = Workspace(out).models.bundle(run_dir.name)
    export_bundle(run_dir, bundle.path)
    get_run_logger().info("Bundle: %s", bundle.path)
    return BundleRecord.of(bundle.path, BundleDir.FILES, name=run_dir.name)


@task(name="promote_model")
def promote_model(bundle: BundleRecord, features: FeaturesRecord, seed: int = 0) -> PromotionRecord:
    """Point models/latest at the bundle and decide whether it becomes the champion, which is
    re-scored on the run's test rounds of `features` when it can be.

    Not cached: the decision depends on the champion of the moment, and `latest` always moves.
    """
    models = ModelsDir(bundle.directory.parent)
    record = promote_run(models, bundle.name, features_dir=features.directory, seed=seed)
    create_markdown_artifact(
        decision_markdown(record), key="promotion", description=str(models.promotion)
    )
    get_run_logger().info(
        "Promotion of %s: %s", bundle.name, "blessed" if record["blessed"] else "not blessed"
    )
    return PromotionRecord.of(
        models.path,
        [ModelsDir.PROMOTION],
        blessed=record["blessed"],
        champion=record["champion"],
        latest=record["latest"],
    )


@task(name="retain_runs")
def retain_runs(out: Path, keep_runs: int, promotion: PromotionRecord) -> dict:
    """Prune runs older than the newest `keep_runs` that are neither champion nor latest.

    Runs after `promotion`, so that a new champion is never pruned.
    """
    pruned = retain(Workspace(out), keep_runs)
    get_run_logger().info(
        "Retention: kept %s; pruned %s", ", ".join(pruned["kept"]), pruned["pruned"] or "nothing"
    )
    return pruned
