"""One table across runs, stages and variants, read from each run's evaluation.

The previous run of a run is the newest sibling directory (same parent) whose evaluation is
older: what it replaces, whether trained on the same data (same `data_sha256`, the series hash
the features manifest records) or on an older history. It joins the table when it is not already
there, with a note that says which, so a change is always seen next to what it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jetx.errors import JetxInputError
from jetx.evaluation.records import Evaluation, read_evaluation
from jetx.evaluation.report.tables import metric_row
from jetx.layout import RunDir

logger = logging.getLogger(__name__)


def previous_run(run_dir: Path, evaluation: Evaluation) -> Path | None:
    """The newest sibling run evaluated before this one, of any data version, if any."""
    run_dir = Path(run_dir).resolve()
    created = evaluation.get("created_at", "")
    found: list[tuple[str, Path]] = []
    for sibling in sorted(run_dir.parent.iterdir()):
        other = RunDir(sibling)
        if sibling == run_dir or not other.is_evaluated():
            continue
        try:
            stamp = read_evaluation(other).get("created_at", "")
        except JetxInputError as error:
            logger.warning("%s; not a candidate previous run", error)
            continue
        if stamp < created:
            found.append((stamp, sibling))
    return max(found)[1] if found else None


def previous_note(evaluation: Evaluation, previous: Mapping[str, Any]) -> str:
    """How the previous run relates to this one: the same data, or an older history."""
    if previous.get("data_sha256") == evaluation.get("data_sha256"):
        return "previous run, same data"
    return f"previous run, other data ({previous.get('rounds')} test rounds)"


def run_rows(run_dir: Path, evaluation: Evaluation, note: str = "") -> list[dict[str, str]]:
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
        metrics of `tables.metric_row`, peak memory, seconds and parameters.

    Raises:
        JetxInputError: a run without an evaluation (report/evaluation.json).
    """
    wanted = [Path(d) for d in run_dirs]
    seen = {d.resolve() for d in wanted}
    rows: list[dict[str, str]] = []
    for run_dir in wanted:
        evaluation = read_evaluation(RunDir(run_dir))
        rows += run_rows(run_dir, evaluation)
        previous = previous_run(run_dir, evaluation) if include_previous else None
        if previous is not None and previous.resolve() not in seen:
            seen.add(previous.resolve())
            before = read_evaluation(RunDir(previous))
            note = f"{previous_note(evaluation, before)} of {run_dir.name}"
            rows += run_rows(previous, before, note)
    return rows
