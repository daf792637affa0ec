"""Task: score every trained stage of a run on the test split, with baselines."""

import numpy as np
from prefect import get_run_logger, task

from jetx.evaluation.scoring import evaluate_run as evaluate
from jetx.io import atomic_path, write_json
from tasks.caching import content_policy
from tasks.records import EvaluationRecord, FeaturesRecord, StageRecord

EVALUATION_DIR = "evaluation"


@task(name="evaluate_run", cache_policy=content_policy(), persist_result=True)
def evaluate_run(
    features: FeaturesRecord, final: StageRecord, preset: str, variant: str, seed: int = 0
) -> EvaluationRecord:
    """Evaluate the run that `final` (the last stage) ends, into RUN_DIR/evaluation/.

    Cached on the last stage's record (which names its weights by hash) and the features'.
    """
    evaluation, test = evaluate(final.directory, features.directory, preset, variant, seed=seed)
    out = final.directory / EVALUATION_DIR
    write_json(out / "evaluation.json", evaluation)
    with atomic_path(out / "predictions.npz") as tmp, open(tmp, "wb") as handle:
        np.savez(handle, y_value=test.y_value, p_threshold=test.p_threshold)
    verdict = evaluation["stages"][-1]["verdict"]
    get_run_logger().info("Evaluation of %s: %s", final.directory.name, verdict)
    return EvaluationRecord.of(out, ["evaluation.json", "predictions.npz"], verdict=verdict)
