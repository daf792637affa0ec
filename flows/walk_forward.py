"""The `jetx-walk-forward` flow: raw history -> K rolling origins, each trained on the rounds
before it and scored on the block after it -> one pooled evaluation -> report.

Run it without a server (Prefect's ephemeral mode) with
`python -m flows.walk_forward --source data/sample.csv --out runs/walk-forward`, or deploy it
with `prefect deploy --all` (deployment `jetx-walk-forward/walk-forward`, see prefect.yaml).
Each origin is an ordinary run of the `jetx` flow's tasks (cached, checkpointed, retried after
an OOM), so a rerun is all cache hits and an interrupted one resumes.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Literal

from prefect import flow
from pydantic import Field

import tasks.logs  # noqa: F401  (the jetx.* loggers reach the run's logs)
from jetx.cli.common import add_preset, add_seed, add_stages, add_variant
from jetx.config import PRESETS, VARIANTS, get_preset
from jetx.evaluation.walk_forward.origins import MIN_ORIGINS
from jetx.runtime import configure_tensorflow, import_tensorflow
from tasks.caching import RECORDS
from tasks.data import load_raw
from tasks.evaluate import evaluate_run_task
from tasks.records import EvaluationRecord, ReportRecord
from tasks.stage import train_stages, training_dir
from tasks.walk_forward import (
    build_origin_features,
    plan_walk_forward,
    pool_walk_forward,
    write_walk_forward_report,
)

VariantName = Literal[*VARIANTS]
PresetName = Literal[*PRESETS]


@flow(
    name="jetx-walk-forward",
    flow_run_name="jetx-walk-forward-{preset}",
    result_serializer=RECORDS,
)
def walk_forward(
    source: Path = Path("data/sample.csv"),
    out: Path = Path("runs/walk-forward"),
    origins: Annotated[int, Field(ge=MIN_ORIGINS)] = MIN_ORIGINS,
    block: Annotated[int, Field(ge=10)] | None = None,
    variant: VariantName | None = None,
    preset: PresetName = "demo",
    stages: Annotated[int, Field(ge=1, le=3)] = 1,
    seed: int = 0,
) -> ReportRecord:
    """Train `variant` at `origins` rolling origins of `source` and pool their scored blocks.

    Args:
        source: a CSV (`value` column) or SQLite (`jetx_results`) history of multipliers.
        out: project directory: data, origins, one training dir per origin, the pooled report.
        origins: K rolling origins (at least 5); the newest K blocks are scored.
        block: samples each origin scores; None uses the preset's evaluation cap.
        variant: model variant; None uses the preset's.
        preset: `full` (docs/design.md's model and schedule), `demo` or `tiny`.
        stages: how many of the three stages each origin trains.
        seed: seed of weights, shuffling and the bootstrap intervals.
    """
    variant = variant or get_preset(preset).variant
    data = load_raw(source, out)
    plan = plan_walk_forward(data, origins=origins, block=block, preset=preset)
    scored: list[EvaluationRecord] = []
    for origin in plan:
        features = build_origin_features(data, origin, out)
        run_dir = training_dir(out, features=features, preset=preset, variant=variant, seed=seed)
        trained = train_stages(
            features,
            stages=stages,
            run_dir=run_dir,
            preset=preset,
            variant=variant,
            seed=seed,
            name=f"train_stage-o{origin.number}",
        )
        scored.append(evaluate_run_task(trained[-1], seed))
    pool = pool_walk_forward(scored, plan, out, seed)
    return write_walk_forward_report(pool)


def main(argv: list[str] | None = None) -> int:
    """Run the flow once in Prefect's ephemeral mode; print the pooled verdict and the time."""
    parser = argparse.ArgumentParser(prog="python -m flows.walk_forward", description=__doc__)
    parser.add_argument(
        "--source", type=Path, default=Path("data/sample.csv"), help="CSV or SQLite history"
    )
    parser.add_argument(
        "--out", type=Path, default=Path("runs/walk-forward"), help="where everything goes"
    )
    parser.add_argument("--origins", type=int, default=MIN_ORIGINS, help="rolling origins, >= 5")
    parser.add_argument("--block", type=int, help="rounds scored per origin (default: eval cap)")
    add_variant(parser)
    add_preset(parser)
    add_stages(parser, default=1)
    add_seed(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="TensorFlow's own log lines")
    args = vars(parser.parse_args(argv))
    configure_tensorflow(verbose=args.pop("verbose"))
    import_tensorflow()  # evaluation runs in this process; keep TF's load lines off the screen
    started = time.monotonic()
    try:
        record = walk_forward(**args)
    except Exception as error:  # the flow run's log holds the traceback
        print(f"{parser.prog}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    evaluation = json.loads(record.path("evaluation.json").read_text(encoding="utf-8"))
    for stage in evaluation["stages"]:
        print(f"Pooled stage {stage['stage']}: {stage['skill_verdict']}")
    print(f"Report: {record.path('report.md')} ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
