"""Task: score every trained stage of a run on the test split, with baselines."""

from prefect import get_run_logger

from jetx.evaluation.run import evaluate_run
from jetx.layout import RunDir
from tasks.caching import cached_task
from tasks.records import EvaluationRecord, StageRecord


@cached_task("evaluate_run")
def evaluate_run_task(final: StageRecord, seed: int = 0) -> EvaluationRecord:
    """Evaluate the run that `final` (the last stage) ends; the library writes it once.

    Cached on the last stage's record (which names its weights by hash) and this code; the
    run's run.json says which features, preset and variant it was trained on.
    """
    run = RunDir(final.directory)
    with run.lock(wait=None):  # one writer of the run at a time
        evaluation = evaluate_run(run.path, seed=seed)
    verdict = evaluation["stages"][-1]["verdict"]
    get_run_logger().info("Evaluation of %s: %s", run.path.name, verdict)
    names = [run.EVALUATION, run.PREDICTIONS]
    return EvaluationRecord.of(run.report, names, verdict=verdict)
