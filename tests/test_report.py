"""The report, the comparison and the pure part of the scoring (jetx.evaluation) on real files."""

import json
import logging

import numpy as np
import pytest

from jetx.config import NORMALIZATIONS
from jetx.errors import JetxInputError
from jetx.evaluation.inference import Predictions, write_predictions
from jetx.evaluation.report import compare, markdown, tables
from jetx.evaluation.run import build_evaluation, stage_evaluation
from jetx.evaluation.scores import heads
from jetx.evaluation.significance import verdicts
from jetx.io import write_json
from jetx.layout import RunDir
from jetx.training.epoch_history import read_records


def _values(n, seed):
    rng = np.random.default_rng(seed)
    return np.maximum(1.0, np.floor(0.97 / rng.random(n) * 100) / 100)


def _predictions(y, p):
    proba = np.tile([0.2, 0.7, 0.1], (y.size, 1))
    return Predictions(y, np.asarray(p, dtype=float), np.full(y.size, 2.0), proba)


def _evaluation(run_dir, p_test=None, sha="abc123", stages=(1, 2)):
    y_test, y_val = _values(300, 1), _values(200, 2)
    rng = np.random.default_rng(3)
    test = _predictions(y_test, rng.random(300) if p_test is None else p_test(y_test))
    val = _predictions(y_val, rng.random(200))
    baselines = heads.baselines(y_test, seed=0)
    evaluated = [stage_evaluation(s, test, val, base_rate=0.65) for s in stages]
    training = tables.training_rows(_records())
    evaluation = build_evaluation(
        y_test,
        evaluated,
        baselines,
        run_dir=run_dir,
        split="test",
        base_rate=0.65,
        data_sha256=sha,
        variant="full",
        normalization="batch",
        preset="tiny",
        parameters=1234,
        training=training,
    )
    return evaluation, test


def _records():
    return [
        dict(
            stage=s,
            epoch=e,
            loss=1.0,
            val_loss=1.0 - 0.1 * e,
            memory_source="allocator" if s == 2 else ("rss" if e == 1 else "allocator"),
            memory_peak_bytes=2**20 * (s + e),
            rss_peak_bytes=2**30,
            micro_batch=8 // s,
            accumulation=8 * s,
            seconds=1.5,
        )
        for s in (1, 2)
        for e in range(3)
    ]


def _write_run(tmp_path, name, **kwargs):
    run_dir = tmp_path / name
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records()))
    evaluation, test = _evaluation(run_dir, **kwargs)
    run = RunDir(run_dir)  # what jetx.evaluation.run.evaluate_run writes
    write_json(run.evaluation, evaluation)
    write_predictions(
        run.predictions,
        y_value=test.y_value,
        stages=[s["stage"] for s in evaluation["stages"]],
        p_threshold=np.stack([test.p_threshold for _ in evaluation["stages"]]),
        p_base_rate=np.full(test.y_value.size, 0.65),
    )
    markdown.write_report(run_dir)
    return run_dir, evaluation


def test_write_report_writes_markdown_json_and_plots(tmp_path):
    run_dir, evaluation = _write_run(tmp_path, "run-a")
    out = run_dir / "report"
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "bankroll.png",
        "confusion.png",
        "evaluation.json",
        "peak_memory.png",
        "predictions.npz",
        "reliability.png",
        "report.md",
        "training_curves.png",
    ]
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["stages"][1]["at_cut"]["bets"] == evaluation["stages"][1]["at_cut"]["bets"]
    text = (out / "report.md").read_text()
    assert markdown.INDEPENDENCE in text
    assert f"the fusion: {NORMALIZATIONS['batch']}." in text  # what accumulation guarantees
    assert "through a Platt map fitted on the 200 validation rounds" in text
    always = evaluation["baselines"]["always"]
    for stage in evaluation["stages"]:  # one sentence of verdict per stage, its figures tabled
        summary = verdicts.stage_summary(stage, always, alpha=0.05)
        assert f"- **Stage {stage['stage']}:** {summary}" in text
        test = stage["skill_test"]
        assert f"{test['p_value']:.3f} ({test['adjusted_p_value']:.3f})" in text
    assert "always: bet every round" in text
    # The verdict leads, then the evidence (skill and calibration), then the bankroll.
    order = [
        "## Verdict",
        "This evaluation made **4 trials**: 2 stages x 2 cuts",
        "## Skill: proper scores",
        "![reliability.png](reliability.png)",
        "## The bankroll: the consequence",
        "![bankroll.png](bankroll.png)",
        "## Per stage: training and the other heads",
    ]
    assert [text.index(part) for part in order] == sorted(text.index(part) for part in order)
    # Every table fits the Prefect UI's artifact pane (~708 px): at most 7 columns.
    widths = [line.count("|") - 1 for line in text.splitlines() if line.startswith("|")]
    assert widths and max(widths) <= 7, max(widths)
    for column in ("ROI [95% CI]", "money-loss risk", "MAE", "peak RSS (MiB)", "Brier", "z's p"):
        assert f"| {column} |" in text or f" {column} |" in text, column  # split, not dropped


def test_the_report_is_short_and_keeps_every_figure(tmp_path):
    # Three stages, the demo's shape: every figure of the evaluation that the old report printed
    # is still there, once, in at most 120 lines.
    run_dir, evaluation = _write_run(tmp_path, "run-c", stages=(1, 2, 3))
    text = (run_dir / "report" / "report.md").read_text()
    assert len(text.splitlines()) <= 120, len(text.splitlines())
    for stage in evaluation["stages"]:
        forecast, at_cut, at_val = stage["forecast"], stage["at_cut"], stage["at_val_cut"]
        figures = [
            f"{forecast['forecasters']['model']['log_loss']:.4f}",
            f"{stage['skill_test']['detectable_log_loss_improvement']:.4f} nats",
            f"{forecast['calibration']['spiegelhalter']['z']:.2f}",
            f"{at_cut['bets']} / {at_cut['rounds']}",
            f"{at_val['bets']} / {at_val['rounds']}",
            f"{100 * stage['bankroll_tests']['at_cut']['detectable_win_rate']:.1f}%",
            f"{at_cut['mae']:.3f}",
        ]
        for figure in figures:
            assert figure in text, figure


def test_training_rows_summarise_each_stage():
    rows = tables.training_rows(_records())
    assert rows[1] == {
        "stage": 2,
        "epochs": 3,
        "best val_loss": pytest.approx(0.8),
        "best epoch": 3,  # the third of 3 epochs (records count from 0, people from 1)
        "micro-batch": 4,
        "accumulation": 16,
        "peak memory (MiB)": 4.0,
        "memory source": "allocator",
        "peak RSS (MiB)": 1024.0,
        "seconds": 4.5,
    }
    # Stage 1 had an epoch without allocator statistics: its peak is the RSS, and says so.
    assert (rows[0]["peak memory (MiB)"], rows[0]["memory source"]) == (1024.0, "rss")


def test_result_rows_hold_model_at_both_cuts_then_baselines(tmp_path):
    evaluation, _ = _evaluation(tmp_path, stages=(3,))
    rows = tables.result_rows(evaluation)
    keys = [r["stage @ cut"] for r in rows]
    assert keys[0] == "3 @ 0.50" and keys[1].startswith("3 @ val ")
    assert keys[2:] == ["always", "never", "random"]
    assert rows[3]["win rate [95% CI]"] == "undefined (no bet)"
    assert rows[3]["ROI [95% CI]"] == "0 (no bet)"


def test_a_model_that_never_bets_reports_undefined_not_nan(tmp_path):
    evaluation, _ = _evaluation(tmp_path, p_test=lambda y: np.zeros(y.size), stages=(1,))
    stage = evaluation["stages"][0]
    assert stage["at_cut"]["bets"] == 0
    assert "never bets" in stage["verdict"]
    text = markdown.render_markdown(evaluation)
    assert "nan" not in text.lower()
    assert "0 / 300" in text


def test_a_model_that_knows_the_outcome_is_called_a_leakage_suspect(tmp_path):
    evaluation, _ = _evaluation(tmp_path, p_test=lambda y: (y >= 1.5).astype(float))
    assert "leakage suspect" in evaluation["stages"][0]["verdict"]
    assert "leakage suspect" in markdown.render_markdown(evaluation)


def test_target_rows_are_pass_fail_or_undefined(tmp_path):
    evaluation, _ = _evaluation(tmp_path, p_test=lambda y: np.ones(y.size), stages=(1,))
    (row,) = tables.target_rows(evaluation)
    assert row["below-1.5 accuracy >= 75%"] == "FAIL"
    assert row["above-1.5 accuracy >= 75%"] == "pass"
    assert row["money-loss risk < 20%"] == "FAIL"


def test_markdown_table_escapes_pipes_and_keeps_column_order():
    table = tables.markdown_table([{"b": "x|y", "a": 1}, {"b": None, "a": 2}])
    assert table.splitlines() == ["| b | a |", "|---|---|", "| x\\|y | 1 |", "|  | 2 |"]
    assert tables.markdown_table([]) == ""


def test_read_records_skips_a_broken_line_with_a_warning(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"stage": 1, "epoch": 0}\n{"stage": 1, "ep\n\n[1]\n')
    with caplog.at_level(logging.WARNING):
        assert read_records(path) == [{"stage": 1, "epoch": 0}]
    assert "metrics.jsonl:2 is not a JSON record" in caplog.text
    assert "metrics.jsonl:4 is not a JSON record" in caplog.text
    assert read_records(tmp_path / "absent.jsonl") == []


def _backdate(run_dir, stamp):
    path = RunDir(run_dir).evaluation
    saved = json.loads(path.read_text())
    saved["created_at"] = stamp
    path.write_text(json.dumps(saved))
    return saved


def test_compare_includes_the_run_it_replaces_and_says_whether_the_data_is_the_same(tmp_path):
    old, _ = _write_run(tmp_path, "run-old")
    saved = _backdate(old, "2000-01-01T00:00:00+00:00")
    other, _ = _write_run(tmp_path, "run-other-data", sha="different")
    _backdate(other, "2001-01-01T00:00:00+00:00")
    new, _ = _write_run(tmp_path, "run-new")
    rows = compare.compare_rows([new])
    runs = [r["run"] for r in rows]
    note = "previous run, other data (300 test rounds) of run-new"
    assert runs == ["run-new"] * 3 + [f"run-other-data ({note})"] * 3
    assert [r["rule"] for r in rows[:3]] == ["stage 1", "stage 2", "always bet"]
    assert rows[0]["peak memory (MiB)"] == "1024.0" and rows[0]["memory source"] == "rss"
    assert rows[1]["peak memory (MiB)"] == "4.0" and rows[1]["memory source"] == "allocator"
    assert rows[0]["seconds"] == "4.5"
    assert rows[0]["parameters"] == "1234"
    assert compare.previous_run(old, saved) is None
    RunDir(other).evaluation.unlink()  # the other-data run is gone: the same-data one replaces
    rows = compare.compare_rows([new])
    assert rows[-1]["run"] == "run-old (previous run, same data of run-new)"


def test_compare_of_an_unevaluated_run_names_the_fix(tmp_path):
    with pytest.raises(JetxInputError) as error:
        compare.compare_rows([tmp_path])
    assert f"{tmp_path / 'report'}: no evaluation.json; run `jetx evaluate" in str(error.value)


def test_compare_command_prints_the_table_and_names_bad_runs(tmp_path, capsys):
    from jetx.cli import main

    run_dir, _ = _write_run(tmp_path, "run-a")
    assert main(["compare", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| run | variant | rule |") and "| run-a | full | stage 2 |" in out
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "missing/report: no evaluation.json; run `jetx evaluate" in capsys.readouterr().err


def test_an_evaluation_is_checked_against_its_typed_shape(tmp_path):
    from jetx.evaluation.records import check_evaluation, read_evaluation

    run_dir, evaluation = _write_run(tmp_path, "run-a")
    assert read_evaluation(RunDir(run_dir)) == check_evaluation(evaluation, "x")
    stage = evaluation["stages"][0]
    damaged = [
        ({**evaluation, "schema": 2}, "schema 2, this jetx reads schema 3; run `jetx evaluate`"),
        ({**evaluation, "stages": [{**stage, "verdict": None}]}, "stages.0.verdict:"),
        ({**evaluation, "stages": [{**stage, "p_value": 0.5}]}, "stages.0.p_value: Extra"),
        (
            {**evaluation, "trials": {**evaluation["trials"], "alpha": "five percent"}},
            "trials.alpha:",
        ),
    ]
    for data, line in damaged:
        write_json(RunDir(run_dir).evaluation, data)
        with pytest.raises(JetxInputError) as caught:
            read_evaluation(RunDir(run_dir))
        message = str(caught.value)
        assert line in message and "\n" not in message, message
        assert str(RunDir(run_dir).evaluation) in message
