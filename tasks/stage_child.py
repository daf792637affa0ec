"""The child process of the `train_stage` task: `python -m tasks.stage_child FEATURES RUN_DIR ...`.

It trains one stage with `jetx.training.schedule.train_stage`, which resumes from the stage's last
checkpoint in RUN_DIR, halves its micro-batch itself after an in-process ResourceExhaustedError
and writes the stage's one result record (stage{N}/result.json). The exit code tells the task
what happened: 0 done, `EXIT_OUT_OF_MEMORY` for an out-of-memory that escaped the stage, 2 for
bad input (including out of memory at micro-batch 1, which no retry can fix), 1 for any other
error. A failure's reason is the last line the child logs (`ERROR tasks.stage_child: Type:
message`, after its traceback), which the task reads from the output it streams. The child dies
with its parent (`tasks.child_process.die_with_parent`). Prefect is not imported here.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from pathlib import Path

from jetx.config import GIB, StageConfig, get_preset
from jetx.errors import JetxInputError
from jetx.runtime import configure_tensorflow, import_tensorflow
from jetx.training.checkpoint import latest_checkpoint, load_state, stage_dir
from tasks.child_process import die_with_parent

logger = logging.getLogger("tasks.stage_child")

#: Format of the child's log lines; the task parses the level and logger name back out.
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
#: Exit code after a ResourceExhaustedError that the stage did not recover from (EX_TEMPFAIL).
EXIT_OUT_OF_MEMORY = 75


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
    parser.add_argument("--init", type=Path, help="previous stage's best checkpoint")
    return parser


def _train(args: argparse.Namespace) -> None:
    """Train the stage; its result record is written by the training library."""
    from jetx.training.schedule import StageData, train_stage  # TensorFlow loads in the child only

    preset = get_preset(args.preset)
    stage = preset.stages[args.stage - 1]
    data = StageData(args.features_dir, preset, args.variant, args.seed)
    resumed_from = latest_checkpoint(stage_dir(args.run_dir, args.stage))
    train_stage(
        stage,
        data,
        args.init,
        args.run_dir,
        budget_bytes=int(args.budget_gib * GIB) if args.budget_gib else None,
        verbose=0,
        micro_batch=_halved(stage, resumed_from) if args.halve_micro_batch else None,
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


def _fail(error: BaseException, code: int) -> int:
    logger.error("%s: %s", type(error).__name__, " | ".join(str(error).splitlines()))
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one stage and return the exit code (see the module docstring)."""
    die_with_parent()
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    configure_tensorflow()
    tf = import_tensorflow()
    try:
        _train(args)
    except tf.errors.ResourceExhaustedError as error:
        return _fail(error, EXIT_OUT_OF_MEMORY)
    except JetxInputError as error:
        return _fail(error, 2)
    except Exception as error:
        traceback.print_exc()
        return _fail(error, 1)
    return 0


if __name__ == "__main__":
    code = main()
    # Every output is written and fsynced by now; skip TensorFlow's teardown (1-2 s).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
