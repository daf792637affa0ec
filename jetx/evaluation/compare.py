"""One table across runs, stages and variants, read from each run's report/metrics.json.

"The same data" means the same `data_sha256` (the raw input's sha256 that the features manifest
records, copied into metrics.json by `jetx evaluate`). The previous run of a run is the newest
sibling directory (same parent) whose metrics.json has the same data_sha256 and an older
`created_at`; it joins the table when it is not already there, so a change is always seen next
to what it changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jetx.errors import JetxInputError
from jetx.evaluation.report import METRICS_JSON, REPORT_DIR, metric_row

logger = logging.getLogger(__name__)


def load_evaluation(run_dir: Path) -> dict[str, Any]:
    """RUN_DIR/report/metrics.json.

    Raises:
        JetxInputError: the run has no evaluation yet, or its metrics.json is not JSON.
    """
    path = Path(run_dir) / REPORT_DIR / METRICS_JSON
    if not path.is_file():
        raise JetxInputError(
            f"`{run_dir}` has no {REPORT_DIR}/{METRICS_JSON}: run `jetx evaluate {run_dir}` first."
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise JetxInputError(f"{path} is not valid JSON: {error}") from error


def previous_run(run_dir: Path, evaluation: Mapping[str, Any]) -> Path | None:
    """The newest sibling run of the same data that was evaluated before this one, if any."""
    run_dir = Path(run_dir).resolve()
    sha, created = evaluation.get("data_sha256"), evaluation.get("created_at", "")
    if not sha:
        return None
    found: list[tuple[str, Path]] = []
    for sibling in sorted(run_dir.parent.iterdir()):
        path = sibling / REPORT_DIR / METRICS_JSON
        if sibling == run_dir or not path.is_file():
            continue
        try:
            other = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            logger.warning("%s is not valid JSON; not a candidate previous run", path)
            continue
        if other.get("data_sha256") == sha and other.get("created_at", "") < created:
            found.append((other["created_at"], sibling))
    return max(found)[1] if found else None


def run_rows(run_dir: Path, evaluation: Mapping[str, Any], note: str = "") -> list[dict[str, str]]:
    """Rows of one run: each stage at its given cut, then its always-bet baseline."""
    training = {row["stage"]: row for row in evaluation.get("training", [])}
    rows = []
    for stage in evaluation["stages"]:
        spent = training.get(stage["stage"], {})
        row = metric_row(f"stage {stage['stage']}", stage["at_cut"], f"{stage['cut']:.2f}")
        rows.append(_with_run(row, run_dir, evaluation, note, spent))
    always = metric_row("always bet", evaluation["baselines"]["always"])
    rows.append(_with_run(always, run_dir, evaluation, note, {}))
    return rows


def _with_run(row: dict, run_dir: Path, evaluation: Mapping, note: str, spent: Mapping) -> dict:
    def shown(key: str) -> str:
        value = spent.get(key)
        return "" if value is None else str(value)

    return {
        "run": Path(run_dir).name + (f" ({note})" if note else ""),
        "variant": str(evaluation.get("variant")),
        **row,
        "peak memory (MiB)": shown("peak memory (MiB)"),
        "memory source": shown("memory source"),
        "seconds": shown("seconds"),
        "parameters": str(evaluation.get("parameters", "")),
    }


def compare_rows(run_dirs: Sequence[Path], include_previous: bool = True) -> list[dict[str, str]]:
    """The comparison table of `run_dirs`, with each run's previous run of the same data.

    Args:
        run_dirs: evaluated run directories, in the order their rows appear.
        include_previous: add each run's `previous_run` when it is not among `run_dirs`.

    Returns:
        Rows (column -> printable value): run, variant, rule (stage or baseline), cut, the
        metrics of `jetx.evaluation.report.metric_row`, peak memory, seconds and parameters.

    Raises:
        JetxInputError: a run without report/metrics.json.
    """
    wanted = [Path(d) for d in run_dirs]
    seen = {d.resolve() for d in wanted}
    rows: list[dict[str, str]] = []
    for run_dir in wanted:
        evaluation = load_evaluation(run_dir)
        rows += run_rows(run_dir, evaluation)
        previous = previous_run(run_dir, evaluation) if include_previous else None
        if previous is not None and previous.resolve() not in seen:
            seen.add(previous.resolve())
            rows += run_rows(previous, load_evaluation(previous), f"previous run of {run_dir.name}")
    return rows
