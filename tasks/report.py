"""Task: write RUN_DIR/report/ and publish the report, the comparison and the audit as artifacts."""

import json
from pathlib import Path

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from jetx.evaluation.compare import compare_rows
from jetx.evaluation.report import write_report as write
from tasks.records import AuditRecord, EvaluationRecord, ReportRecord

REPORT_FILES = ("report.md", "metrics.json")


def previous_run(run_dir: Path) -> Path | None:
    """The newest other evaluated run beside `run_dir` (any data version): what it replaces."""
    others = [
        d
        for d in Path(run_dir).parent.iterdir()
        if d != run_dir and (d / "report/metrics.json").is_file()
    ]
    return max(others, key=lambda d: (d / "report/metrics.json").stat().st_mtime, default=None)


@task(name="write_report")
def write_report(evaluation: EvaluationRecord, audit: AuditRecord) -> ReportRecord:
    """Write the report of the run `evaluation` scored, compared with the run before it.

    Not cached: it is cheap, and its artifacts belong to this flow run.
    """
    run_dir = evaluation.directory.parent
    scores = json.loads(evaluation.path("evaluation.json").read_text(encoding="utf-8"))
    predictions = np.load(evaluation.path("predictions.npz"))
    previous = previous_run(run_dir)
    report = write(run_dir, scores, predictions["y_value"], predictions["p_threshold"])
    rows = compare_rows([run_dir, previous] if previous else [run_dir])
    create_table_artifact(
        rows, key="metric-comparison", description=f"{run_dir.name} vs the previous run"
    )
    create_table_artifact(
        audit.rows, key="memory-audit", description="Peak memory of one training step"
    )
    create_markdown_artifact(
        report.read_text(encoding="utf-8"), key="report", description=str(report)
    )
    get_run_logger().info("Report: %s (previous run: %s)", report, previous)
    return ReportRecord.of(report.parent, REPORT_FILES, previous_run=previous)
