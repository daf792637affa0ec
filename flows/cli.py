"""The `jetx` command: the library's commands, plus `run` and `serve`, which need Prefect.

The library's command line (`jetx.cli`, also `python -m jetx`) never imports Prefect; this
module adds the two commands of the orchestration layer and is the `jetx` console script:

- `jetx run [flow options]`: the whole flow once, in Prefect's ephemeral mode (no server to
  start), what `make demo` calls.
- `jetx serve [--cron CRON] [flow options]`: `prefect.serve`, one long-running process that
  creates the `progressive` deployment with the flow's typed parameters, a schedule and a
  concurrency limit of one run at a time (later runs queue: `ONE_AT_A_TIME`, as prefect.yaml's
  deployments), and runs the scheduled runs itself: retraining on a schedule on a single
  machine, with no work pool and no worker. Pools and workers stay the way for clusters
  (docs/operations.md).

`jetx run` holds the out dir's run lock (`jetx.layout.Workspace.run_lock`) for the whole run:
a second `jetx run` on the same --out is refused at once in one line (exit 2) naming the pid of
the run in progress, and a killed run's lock is released by the kernel.
"""

from __future__ import annotations

import argparse
import sys
import types

from flows.options import add_flow_arguments, flow_parameters
from jetx.cli import main as jetx_main
from jetx.cli.common import add_command, add_json

#: The schedule of the `progressive` deployment in prefect.yaml: Monday 03:00 UTC.
WEEKLY = "0 3 * * 1"
DEPLOYMENT = "progressive"
#: Runs of one deployment at a time (later ones queue), for every deployment jetx creates.
ONE_AT_A_TIME = 1


def _register_run(subparsers) -> None:
    parser = add_command(
        subparsers,
        "run",
        summary="run the whole jetx flow once (Prefect's ephemeral mode, no server needed)",
        description="""
        Run the jetx flow once: load the history, build the features, train the stages (each in
        a child process), evaluate, audit the memory and write the report. Prefect starts a
        temporary server for the run; nothing else is needed. A rerun skips every step whose
        inputs and code are unchanged, and resumes an interrupted stage from its checkpoint.""",
        example="jetx run --source data/sample.csv --out runs/demo --preset demo",
    )
    add_flow_arguments(parser)
    add_json(parser, "where the report and the run are")
    parser.set_defaults(run=_run)


def _register_serve(subparsers) -> None:
    parser = add_command(
        subparsers,
        "serve",
        summary="serve the flow on a schedule from this process (no work pool, no worker)",
        description=f"""
        Create the `{DEPLOYMENT}` deployment of the jetx flow with the given parameters as its
        defaults and a cron schedule, and stay running to execute its scheduled (and manually
        triggered) runs. Needs a Prefect server: set PREFECT_API_URL (e.g. after `prefect server
        start`). Stop it with Ctrl-C; the schedule keeps its state for the next `jetx serve`.""",
        example=f'jetx serve --cron "{WEEKLY}" --source data/history.db --out runs/weekly',
    )
    parser.add_argument("--cron", default=WEEKLY, help="when to run (cron, UTC)")
    parser.add_argument("--name", default=DEPLOYMENT, help="the deployment's name")
    add_flow_arguments(parser)
    parser.set_defaults(run=_serve)


def _run(args: argparse.Namespace) -> int:
    from jetx.layout import Workspace

    verbose = getattr(args, "verbose", False)
    # One run per out dir, refused at once otherwise: before the flow's imports, whose
    # TensorFlow prints its own start-up lines, so that a refusal is one line.
    with Workspace(args.out).run_lock():
        from flows.progressive import run_once

        return run_once(flow_parameters(args), verbose=verbose, as_json=args.json)


def served_deployment(args: argparse.Namespace):
    """The deployment `jetx serve` creates: the flow's parameters, a cron schedule, and one run
    at a time (`ONE_AT_A_TIME`)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from flows.progressive import progressive

    parameters = {
        k: (str(v) if hasattr(v, "__fspath__") else v) for k, v in flow_parameters(args).items()
    }
    limit = ConcurrencyLimitConfig(
        limit=ONE_AT_A_TIME, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
    )
    return progressive.to_deployment(
        name=args.name, cron=args.cron, parameters=parameters, concurrency_limit=limit
    )


def _serve(args: argparse.Namespace) -> int:
    from prefect import serve

    serve(served_deployment(args), pause_on_shutdown=False)
    return 0


#: The orchestration commands, as the library's command line takes extra ones.
COMMANDS = (
    types.SimpleNamespace(register=_register_run),
    types.SimpleNamespace(register=_register_serve),
)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `jetx` console script."""
    return jetx_main(argv, extra=COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
