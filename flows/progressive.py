"""The `jetx` flow: history -> features -> stages 1..3 -> evaluation, audit -> report -> models.

Run it without a server (Prefect's ephemeral mode) with
`python -m flows.progressive --source data/sample.csv --out runs/demo`, or deploy it with
`prefect deploy --all` (deployment `jetx/progressive`, see prefect.yaml).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Annotated, Literal

from prefect import flow
from pydantic import BeforeValidator, Field
from pydantic.json_schema import SkipJsonSchema

import tasks.logs  # noqa: F401  (the jetx.* loggers reach the run's logs)
from flows.options import add_flow_arguments, flow_parameters
from jetx.cli.common import check_out_dir
from jetx.config import PRESETS, VARIANTS, get_preset
from jetx.layout import RunDir, Workspace
from jetx.runtime import configure_tensorflow, import_tensorflow, memory_device
from tasks.caching import RECORDS
from tasks.data import load_raw
from tasks.evaluate import evaluate_run_task
from tasks.features import build_features_task
from tasks.memory import audit_memory, plan_memory
from tasks.publishing import export_model, promote_model, retain_runs
from tasks.records import ReportRecord
from tasks.report import write_report_task
from tasks.stage import train_stages, training_dir

VariantName = Literal[*VARIANTS]
#: `out`: a directory path, never empty (`jetx.cli.common.check_out_dir`, as `--out`).
OutDir = Annotated[Path, BeforeValidator(check_out_dir)]
PresetName = Literal[*PRESETS]


@flow(name="jetx", flow_run_name="jetx-{preset}", result_serializer=RECORDS)
def progressive(
    source: Path = Path("data/sample.csv"),
    out: OutDir = Path("runs/demo"),
    variant: VariantName | None = None,
    preset: PresetName = "demo",
    stages: Annotated[int, Field(ge=1, le=3)] = 3,
    budget_gib: Annotated[float, Field(gt=0)] | None = None,
    seed: int = 0,
    keep_runs: Annotated[int, Field(ge=1)] = 3,
    skip_memory_audit: SkipJsonSchema[bool] = False,
) -> ReportRecord:
    """Train `variant` (default: the preset's) on `source` in `stages` stages and report.

    Args:
        source: a CSV (`value` column) or SQLite (`jetx_results`) history of multipliers.
        out: project directory; data, features and one training dir per data version go there.
        variant: model variant; None uses the preset's.
        preset: `full` (docs/design.md's model and schedule), `demo` or `tiny`.
        stages: how many of the three stages to run.
        budget_gib: accelerator memory budget; the micro-batch is planned to fit it, by a line
            measured on this device (`plan_memory`; the analytic model where none can run).
        seed: seed of weights and shuffling.
        keep_runs: newest runs kept whole besides champion and latest; older runs keep one
            slim checkpoint per stage (`jetx.serving.retention`).
        skip_memory_audit: leave out the memory audit's probe (a fresh TensorFlow process),
            for tests whose subject is not memory; kept out of the parameter schema
            (`SkipJsonSchema`), so that no deployment's form shows it, and out of prefect.yaml
            and `jetx run`'s options.
    """
    variant = variant or get_preset(preset).variant
    data = load_raw(source, out)
    features = build_features_task(data, out)
    run_dir = training_dir(out, features=features, preset=preset, variant=variant, seed=seed)
    memory_plan = (  # one probe pair on the device the stages use, when a budget is given
        plan_memory(preset, variant, None, memory_device(), RunDir(run_dir).memory)
        if budget_gib
        else None
    )
    trained = train_stages(
        features,
        stages=stages,
        run_dir=run_dir,
        preset=preset,
        variant=variant,
        seed=seed,
        budget_gib=budget_gib,
        memory_line=memory_plan.line if memory_plan else None,
    )
    largest = max(stage.micro_batch for stage in trained)  # the run's peak: one probe
    audit = (  # a probe in its own process, beside the evaluation; left out only by a test
        None
        if skip_memory_audit
        else audit_memory.submit(
            preset, variant, [largest], trained[-1].precision, RunDir(run_dir).memory
        )
    )
    evaluation = evaluate_run_task(trained[-1], seed)
    report = write_report_task(evaluation, audit.result() if audit else None)
    bundle = export_model(evaluation, out)
    promotion = promote_model(bundle, features, seed)
    retain_runs(out, keep_runs, promotion)
    return report


def run_once(
    parameters: dict, *, verbose: bool = False, as_json: bool = False, prog: str = "jetx run"
) -> int:
    """Run the flow once in Prefect's ephemeral mode and print where the report is."""
    configure_tensorflow(verbose=verbose)
    import_tensorflow()  # evaluation runs in this process; keep TF's load lines off the screen
    try:
        record = progressive(**parameters)
    except Exception as error:  # the flow run's log holds the traceback
        print(f"{prog}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    models = Workspace(parameters["out"]).models
    if as_json:
        print(
            json.dumps(
                {
                    "report": str(record.path("report.md")),
                    "run_dir": str(record.directory.parent),
                    "model": str(models.latest),
                    "promotion": str(models.promotion),
                }
            )
        )
    else:
        print(f"Report: {record.path('report.md')}")
        print(f"Model: {models.latest} (promotion decision: {models.promotion})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.progressive`: the same as `jetx run`."""
    parser = argparse.ArgumentParser(prog="python -m flows.progressive", description=__doc__)
    add_flow_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="TensorFlow's own log lines")
    parser.add_argument(  # a test's option: not `jetx run`'s, not the deployment's
        "--skip-memory-audit", action="store_true", help="leave out the memory audit's probe"
    )
    args = parser.parse_args(argv)
    parameters = flow_parameters(args)
    if args.skip_memory_audit:
        parameters["skip_memory_audit"] = True
    return run_once(parameters, verbose=args.verbose, prog=parser.prog)


if __name__ == "__main__":
    sys.exit(main())
