"""Task: write RUN_DIR/report/ and publish the report and the comparison as artifacts."""

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from jetx.evaluation.compare import compare_rows, previous_run
from jetx.evaluation.report import write_report as write
from jetx.layout import RunDir
from tasks.records import AuditRecord, EvaluationRecord, ReportRecord


@task(name="write_report")
def write_report(evaluation: EvaluationRecord, audit: AuditRecord) -> ReportRecord:
    """Write the report of the run `evaluation` scored, compared with the run it replaces.

    Not cached: it is cheap, and its artifacts belong to this flow run.
    """
    run = RunDir(evaluation.directory.parent)
    with run.lock(wait=None):  # one writer of the run at a time
        report = write(run.path)
    previous = previous_run(run.path, run.read_evaluation())
    rows = compare_rows([run.path])
    against = f"vs {previous.name}, the run it replaces" if previous else "(no previous run)"
    create_table_artifact(rows, key="metric-comparison", description=f"{run.path.name} {against}")
    create_table_artifact(
        audit.rows, key="memory-audit", description="Peak memory of one training step"
    )
    create_markdown_artifact(
        report.read_text(encoding="utf-8"), key="report", description=str(report)
    )
    get_run_logger().info("Report: %s (previous run: %s)", report, previous)
    return ReportRecord.of(report.parent, [run.REPORT_MD, run.EVALUATION], previous_run=previous)
