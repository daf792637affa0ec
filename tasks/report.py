"""Task: write RUN_DIR/report/ and publish the report and the comparison as artifacts."""

import base64
import re
from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from jetx.evaluation.records import read_evaluation
from jetx.evaluation.report.compare import compare_rows, previous_run
from jetx.evaluation.report.markdown import write_report
from jetx.layout import RunDir
from tasks.records import AuditRecord, EvaluationRecord, ReportRecord

#: A markdown image whose target is a file name beside the report: `![name](name.png)`.
_LOCAL_IMAGE = re.compile(r"!\[([^\]]*)\]\(([\w.-]+\.png)\)")


def inline_images(markdown: str, directory: Path) -> str:
    """The report with its plots as data URIs, so that the Prefect UI shows them.

    report.md links its PNGs by relative name, which a reader of the file resolves beside it but
    the UI cannot: the PNGs exist only on the worker's disk. Each PNG here is 30-80 KB.
    """

    def embed(match: re.Match) -> str:
        data = base64.b64encode((directory / match.group(2)).read_bytes()).decode("ascii")
        return f"![{match.group(1)}](data:image/png;base64,{data})"

    return _LOCAL_IMAGE.sub(embed, markdown)


@task(name="write_report")
def write_report_task(evaluation: EvaluationRecord, audit: AuditRecord | None) -> ReportRecord:
    """Write the report of the run `evaluation` scored, compared with the run it replaces.

    `audit` (None when the flow skipped it) orders the report after the memory audit.

    Not cached: it is cheap, and its artifacts belong to this flow run.
    """
    run = RunDir(evaluation.directory.parent)
    with run.lock(wait=None):  # one writer of the run at a time
        report = write_report(run.path)
    previous = previous_run(run.path, read_evaluation(run))
    rows = compare_rows([run.path])
    against = f"vs {previous.name}, the run it replaces" if previous else "(no previous run)"
    create_table_artifact(rows, key="metric-comparison", description=f"{run.path.name} {against}")
    create_markdown_artifact(
        inline_images(report.read_text(encoding="utf-8"), report.parent),
        key="report",
        description=str(report),
    )
    get_run_logger().info("Report: %s (previous run: %s)", report, previous)
    return ReportRecord.of(report.parent, [run.REPORT_MD, run.EVALUATION], previous_run=previous)
