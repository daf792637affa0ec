"""The child process of the `train_stage_task` task: `python -m tasks.stage_child FEATURES RUN_DIR`.

It trains one stage with `jetx.training.schedule.train_stage`, which resumes from the stage's
newest intact checkpoint in RUN_DIR, halves its micro-batch itself after an in-process
ResourceExhaustedError and writes the stage's one result record (stage{N}/result.json). It holds
RUN_DIR's lock while it trains: a second writer of the same run (another flow run, `jetx train`)
waits for it here, or finds the lock taken.

The exit code is the failure's class (`jetx.errors.classify`): 0 done, `EXIT_OUT_OF_MEMORY` (75)
for an out-of-memory that escaped the stage, 2 for the user's fault (including out of memory at
micro-batch 1, which no retry can fix), 1 for the machine's (disk full, an I/O error) or a bug.
A failure's reason is the last line the child logs, `ERROR tasks.stage_child: KIND: Type:
message` (KIND is input, machine, out of memory or bug; a bug's traceback comes before it),
which the task reads from the output it streams. The child dies with its parent
(`tasks.child_process.die_with_parent`). Prefect is not imported here.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from pathlib import Path

from jetx.config import GIB, StageConfig, get_preset
from jetx.errors import EXIT_MACHINE, JetxInputError, classify
from jetx.layout import RunDir
from jetx.runtime import configure_tensorflow, import_tensorflow
from jetx.training.checkpoint import load_state, newest_intact
from tasks.child_process import die_with_parent

logger = logging.getLogger("tasks.stage_child")

#: Format of the child's log lines; the task parses the level and logger name back out.
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasks.stage_child", description=__doc__)
    parser.add_argument("features_dir", type=Path)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--stage", type=int, required=True)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--variant", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--halve-micro-batch",
        action="store_true",
        help="the previous attempt ran out of memory: continue at half the micro-batch in use",
    )
    parser.add_argument("--budget-gib", type=float)
    parser.add_argument(
        "--memory-line", type=json.loads, help="the measured plan's line (MemoryLine as JSON)"
    )
    parser.add_argument("--init", type=Path, help="previous stage's best checkpoint")
    return parser


def _train(args: argparse.Namespace) -> None:
    """Train the stage; its result record is written by the training library."""
    from jetx.training.memory_plan import MemoryLine
    from jetx.training.schedule import StageData, train_stage  # TensorFlow loads in the child only

    preset = get_preset(args.preset)
    stage = preset.stages[args.stage - 1]
    data = StageData(args.features_dir, preset, args.variant, args.seed)
    with RunDir(args.run_dir).lock(wait=None):  # another writer of this run: wait for it
        resumed_from = newest_intact(RunDir(args.run_dir).stage(args.stage).path)
        train_stage(
            stage,
            data,
            args.init,
            args.run_dir,
            budget_bytes=int(args.budget_gib * GIB) if args.budget_gib else None,
            verbose=0,
            micro_batch=_halved(stage, resumed_from) if args.halve_micro_batch else None,
            lock_wait=None,
            memory_line=MemoryLine.from_dict(args.memory_line) if args.memory_line else None,
        )


def _halved(stage: StageConfig, resumed_from: Path | None) -> int:
    """Half the micro-batch the killed attempt was using (its last checkpoint says which)."""
    in_use = load_state(resumed_from).batching.micro_batch if resumed_from else stage.micro_batch
    smaller = stage.smaller_micro_batch(in_use)
    if smaller is None:
        raise JetxInputError(
            f"stage {stage.stage} ran out of memory at micro-batch {in_use}; it cannot be halved "
            "further. Choose a smaller variant or precision, or a bigger memory budget."
        )
    return smaller


def failure_line(error: BaseException) -> tuple[str, int]:
    """The child's last line for `error` (KIND: Type: message) and its exit code."""
    failure = classify(error)
    if failure is None:
        message = " | ".join(str(error).splitlines())
        return f"bug: {type(error).__name__}: {message}", EXIT_MACHINE
    return f"{failure.kind}: {type(error).__name__}: {failure.message}", failure.exit_code


def main(argv: list[str] | None = None) -> int:
    """Run one stage and return the exit code (see the module docstring)."""
    die_with_parent()
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    configure_tensorflow()
    import_tensorflow()
    try:
        _train(args)
    except Exception as error:
        if classify(error) is None:
            traceback.print_exc()
        line, code = failure_line(error)
        logger.error("%s", line)
        return code
    return 0


if __name__ == "__main__":
    code = main()
    # Every output is written and fsynced by now; skip TensorFlow's teardown (1-2 s).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
