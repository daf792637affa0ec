"""Walk-forward evaluation (jetx.evaluation.walk_forward: origins, pool), without training:
the origins' construction on real ingested series and real features dirs, and the pooling and
verdicts on real forecasts of real synth rounds.

The pooling is tested here on forecasts with a known truth: on planted rounds, the planted
rule's own probability (a model that learned the rule); on i.i.d. rounds, the training base
rate plus noise (a model that learned nothing, as a good model of an i.i.d. game does). The
same verdicts with origins trained for real are in tests/test_walk_forward_training.py.
"""

import numpy as np
import pyarrow.parquet as pq
import pytest

from jetx.data.ingest import ingest
from jetx.data.synth import PLANTED_P_UNDER, PLANTED_RUN, synthesize, write_csv
from jetx.errors import JetxInputError
from jetx.evaluation.inference import Predictions, write_predictions
from jetx.evaluation.report import markdown
from jetx.evaluation.run import build_evaluation, stage_evaluation
from jetx.evaluation.scores import heads
from jetx.evaluation.walk_forward.origins import MIN_ORIGINS, build_origin, plan_origins
from jetx.evaluation.walk_forward.pool import pool_origins
from jetx.features import FIRST_SAMPLE
from jetx.io import write_json
from jetx.layout import RunDir, WalkForwardDir

BLOCK = 400


def test_each_origin_trains_before_it_and_scores_the_next_block():
    samples = 7000
    plan = plan_origins(samples, origins=MIN_ORIGINS, block=BLOCK)
    assert len(plan) == MIN_ORIGINS
    for origin in plan:
        assert origin.train + origin.val == origin.origin  # every fitted sample is before it
        assert origin.end == origin.origin + BLOCK
        assert origin.rounds == FIRST_SAMPLE + origin.end  # it reads nothing after its block
    # The scored blocks are the newest K, back to back: none scored twice, none skipped.
    assert [o.origin for o in plan[1:]] == [o.end for o in plan[:-1]]
    assert plan[-1].end == samples
    # Each origin trains on everything before its validation block (an expanding window).
    assert [o.train for o in plan] == [
        samples - (MIN_ORIGINS - k) * BLOCK - BLOCK for k in range(5)
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"origins": 4, "block": 100}, "`origins` must be at least 5. Received: origins=4"),
        ({"origins": 5, "block": 5}, "`block` and `val` must be at least 10 samples"),
        ({"origins": 5, "block": 200}, "5 origins of 200 samples (+ 200 validation, + at least"),
    ],
)
def test_a_plan_that_cannot_be_made_says_why(kwargs, message):
    with pytest.raises(JetxInputError) as error:
        plan_origins(1000, **kwargs)
    assert message in str(error.value)


@pytest.fixture(scope="module")
def histories(tmp_path_factory):
    """One real ingested history, and a copy whose rounds after origin 3's block differ."""
    root = tmp_path_factory.mktemp("origins")
    values = synthesize(FIRST_SAMPLE + 140, seed=4)
    plan = plan_origins(140, origins=5, block=20)
    changed = values.copy()
    changed[plan[2].rounds :] = 1.0  # every later round a crash at 1.00x
    for name, series in (("a", values), ("b", changed)):
        write_csv(root / f"{name}.csv", series)
        ingest(root / f"{name}.csv", root / name)
    return root, values, plan


def test_an_origin_reads_the_history_up_to_its_block_and_nothing_later(histories):
    root, values, plan = histories
    origin = plan[2]
    built = {name: build_origin(root / name, origin, root / f"origin-{name}") for name in "ab"}
    assert built["a"]["counts"] == {"train": origin.train, "val": origin.val, "test": origin.test}
    series = pq.read_table(root / "origin-a" / "series" / "series.parquet")
    assert series.num_rows == origin.rounds
    np.testing.assert_array_equal(series["value"].to_numpy(), values[: origin.rounds])
    # Rounds after the block changed completely; the origin's data did not change at all.
    features = [pq.read_table(root / f"origin-{n}" / "features" / "features.parquet") for n in "ab"]
    assert features[0].equals(features[1])
    splits = features[0]["split"].to_pylist()
    assert splits == ["train"] * origin.train + ["val"] * origin.val + ["test"] * origin.test


def test_an_origin_beyond_the_history_is_refused(histories):
    root, _, plan = histories
    short = plan_origins(200, origins=5, block=20)[-1]  # reads 1,200 rounds of 1,140
    with pytest.raises(JetxInputError) as error:
        build_origin(root / "a", short, root / "too-long")
    assert f"Origin 5 reads {short.rounds} rounds;" in str(error.value)


def _planted_forecast(values: np.ndarray) -> np.ndarray:
    """P(round t >= 1.5 | rounds before t) under the planted rule, for every round t."""
    under = values < 1.5
    run = np.zeros(values.size, dtype=int)
    for t in range(1, values.size):
        run[t] = min(PLANTED_RUN, run[t - 1] + 1) if under[t - 1] else 0
    return np.where(run >= PLANTED_RUN, 1.0 - PLANTED_P_UNDER, 0.97 / 1.5)


def _learned_nothing(values: np.ndarray, base_rate: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0.0, 0.01, values.size)
    return np.clip(base_rate + noise, 0.01, 0.99)


def _origin_run(run_dir, values, origin, forecast, seed):
    """An evaluated origin run, as `evaluate_run` writes it, from forecasts of every round."""
    reached = lambda lo, hi: values[FIRST_SAMPLE + lo : FIRST_SAMPLE + hi]  # noqa: E731
    base_rate = float(np.mean(reached(0, origin.train) >= 1.5))
    p = forecast(values, base_rate, seed)

    def predictions(lo, hi):
        y = reached(lo, hi)
        proba = np.tile([0.3, 0.6, 0.1], (y.size, 1))
        return Predictions(y, p[FIRST_SAMPLE + lo : FIRST_SAMPLE + hi], np.full(y.size, 2.0), proba)

    test = predictions(origin.origin, origin.end)
    val = predictions(origin.train, origin.origin)
    stages = [stage_evaluation(1, test, val, base_rate=base_rate, seed=seed)]
    run = RunDir(run_dir)
    run.report.mkdir(parents=True)
    evaluation = build_evaluation(
        test.y_value,
        stages,
        heads.baselines(test.y_value, seed),
        run_dir=run_dir,
        split="test",
        base_rate=base_rate,
        data_sha256="synth",
        variant="full",
        preset="tiny",
        parameters=0,
    )
    write_json(run.evaluation, evaluation)
    write_predictions(
        run.predictions,
        y_value=test.y_value,
        stages=[1],
        p_threshold=test.p_threshold[None, :],
        p_base_rate=np.full(test.y_value.size, base_rate),
    )
    return run_dir


def _pooled(tmp_path, signal, forecast):
    samples = 7 * BLOCK
    values = synthesize(FIRST_SAMPLE + samples, seed=21, signal=signal)
    plan = plan_origins(samples, origins=MIN_ORIGINS, block=BLOCK)
    runs = [
        _origin_run(tmp_path / f"run{o.number}", values, o, forecast, seed=o.number) for o in plan
    ]
    out = tmp_path / "walk-forward"
    evaluation = pool_origins(plan, runs, out, seed=0)
    return evaluation, markdown.render_report(WalkForwardDir(out).report, evaluation)


def test_on_planted_rounds_the_pool_finds_skill_at_every_origin_beyond_its_interval(tmp_path):
    evaluation, path = _pooled(tmp_path, "planted", lambda v, base, seed: _planted_forecast(v))
    (stage,) = evaluation["stages"]
    assert evaluation["rounds"] == MIN_ORIGINS * BLOCK
    skill = stage["forecast"]["skill"]["base_rate"]["log_loss"]
    assert skill["ci"][0] > 0, skill
    assert stage["skill_test"]["adjusted_p_value"] < 0.05
    assert "evidence of skill over the base rate" in stage["skill_verdict"]
    assert "leakage suspect first" in stage["skill_verdict"]
    rows = evaluation["origins"]
    assert [row["origin"] for row in rows] == list(range(1, MIN_ORIGINS + 1))
    for row in rows:  # every origin alone, after Holm over the five
        assert row["skill_ci"][0] > 0 and row["adjusted_p_value"] < 0.05, row
    text = path.read_text()
    assert "## Origins" in text and "5 rolling origins" in text
    assert "fitted on that origin's own validation block" in text
    assert max(line.count("|") - 1 for line in text.splitlines() if line.startswith("|")) <= 7


def test_on_iid_rounds_the_pool_finds_no_skill_and_says_what_it_could_have_seen(tmp_path):
    evaluation, path = _pooled(tmp_path, "none", _learned_nothing)
    (stage,) = evaluation["stages"]
    assert stage["skill_test"]["adjusted_p_value"] >= 0.05
    verdict = stage["skill_verdict"]
    assert "no evidence of skill." in verdict
    assert f"on these {MIN_ORIGINS * BLOCK} rounds" in verdict
    assert "these rounds could only have shown a log-loss improvement of" in verdict
    assert evaluation["trials"]["count"] == 2  # one stage x the given and validation cuts
    assert "not above break-even" in stage["bankroll_verdict"] or stage["at_cut"]["bets"] == 0
    text = path.read_text()  # the report: the verdict in one sentence, its figures tabled
    assert "- **Stage 1:** No evidence of skill; at cut 0.50: " in text
    assert f"{stage['skill_test']['detectable_log_loss_improvement']:.4f} nats" in text


def test_pooling_origins_of_other_stages_is_refused(tmp_path):
    samples = 7 * BLOCK
    values = synthesize(FIRST_SAMPLE + samples, seed=5)
    plan = plan_origins(samples, origins=MIN_ORIGINS, block=BLOCK)
    runs = [_origin_run(tmp_path / f"r{o.number}", values, o, _learned_nothing, 1) for o in plan]
    evaluation = RunDir(runs[3]).read_evaluation()
    evaluation["stages"][0]["stage"] = 2
    write_json(RunDir(runs[3]).evaluation, evaluation)
    with pytest.raises(JetxInputError) as error:
        pool_origins(plan, runs, tmp_path / "wf")
    assert "Origin 4 was evaluated at other stages or another cut than origin 1" in str(error.value)
