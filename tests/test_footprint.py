"""Memory prediction, the budget planner, the measured step and the `jetx memory` command."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from jetx.cli import main
from jetx.config import GIB, PLAN_MARGIN, PRESETS, STAGES, VARIANTS
from jetx.errors import JetxInputError
from jetx.model.footprint import measure_step, plan, predict_peak
from jetx.model.network import build_model
from jetx.model.parameters import count_params, trainable_params
from jetx.runtime import read_memory

FULL = PRESETS["full"]


@pytest.mark.parametrize("preset", ["tiny", "demo"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_analytic_parameter_count_equals_the_built_models(preset, variant):
    config = PRESETS[preset].model_for(variant)
    model = build_model(config)
    assert count_params(config) == model.count_params()
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
    assert trainable_params(config) == trainable


def test_prediction_parts_add_up_and_grow_with_the_micro_batch():
    small = predict_peak(FULL.model_for("full"), 8, "float32")
    big = predict_peak(FULL.model_for("full"), 16, "float32")
    parts = (
        small.parameter_bytes
        + small.gradient_bytes
        + small.accumulator_bytes
        + small.optimizer_bytes
        + small.weight_copy_bytes
        + small.input_bytes
        + sum(small.activation_bytes.values())
    )
    assert small.predicted_peak_bytes == parts
    assert small.optimizer_bytes == 2 * small.parameter_bytes  # Adam's two slots
    assert big.activation_bytes["attention"] == 2 * small.activation_bytes["attention"]
    assert big.predicted_peak_bytes > small.predicted_peak_bytes


@pytest.mark.parametrize(
    ("smaller", "larger"),
    [
        (("remat", "float32"), ("full", "float32")),
        (("chunked", "float32"), ("remat", "float32")),
        (("blockwise", "float32"), ("chunked", "float32")),
        (("blockwise", "mixed_bfloat16"), ("chunked", "mixed_bfloat16")),
        (("no1000", "float32"), ("full", "float32")),
        (("full", "mixed_bfloat16"), ("full", "float32")),
        (("full", "mixed_float16"), ("full", "float32")),
    ],
)
def test_memory_saving_choices_predict_less(smaller, larger):
    def peak(variant, precision):
        return predict_peak(FULL.model_for(variant), 8, precision).predicted_peak_bytes

    assert peak(*smaller) < peak(*larger)


def test_plan_with_a_t4_budget_trains_the_full_model_at_micro_batch_64():
    chosen = plan(FULL.model_for("remat"), STAGES[0], 15 * GIB, "mixed_float16")
    assert (chosen.micro_batch, chosen.accumulation) == (64, 1)
    assert chosen.predicted_peak_bytes * (1 + PLAN_MARGIN) <= chosen.budget_bytes


def test_plan_adds_the_derived_margin_by_default():
    config, stage = FULL.model_for("chunked"), STAGES[0]
    peak = predict_peak(config, 16, "float32").predicted_peak_bytes
    just_fits = int(peak * (1 + PLAN_MARGIN)) + 1
    assert plan(config, stage, just_fits, "float32").micro_batch == 16
    assert plan(config, stage, just_fits - 2, "float32").micro_batch < 16


def test_blockwise_attention_term_has_no_length_squared_tensor():
    config = FULL.model_for("blockwise")
    estimate = predict_peak(config, 8, "float32")
    whole_scores = 8 * config.num_heads * config.seq_lengths[-1] ** 2 * 4
    assert estimate.activation_bytes["attention"] < whole_scores / 20
    assert estimate.accumulator_bytes == 4 * trainable_params(config)


def test_plan_picks_the_largest_divisor_that_fits():
    config, stage = FULL.model_for("full"), STAGES[0]
    budget = 6 * GIB
    chosen = plan(config, stage, budget, "float32", margin=0.1)
    assert stage.effective_batch % chosen.micro_batch == 0
    assert chosen.micro_batch * chosen.accumulation == stage.effective_batch
    assert predict_peak(config, chosen.micro_batch, "float32").predicted_peak_bytes * 1.1 <= budget
    larger = chosen.micro_batch * 2
    assert predict_peak(config, larger, "float32").predicted_peak_bytes * 1.1 > budget


def test_plan_names_the_model_and_budget_when_nothing_fits():
    with pytest.raises(JetxInputError, match=r"does not fit the budget 0\.10 GiB.*micro_batch=1"):
        plan(FULL.model_for("full"), STAGES[0], GIB // 10)


@pytest.mark.parametrize(
    ("micro_batch", "precision", "message"),
    [
        (8, "float64", "`precision` must be one of"),
        (0, "float32", "`micro_batch` must be >= 1. Received: micro_batch=0"),
    ],
)
def test_bad_prediction_input_is_a_clear_error(micro_batch, precision, message):
    with pytest.raises(JetxInputError, match=message):
        predict_peak(FULL.model_for("full"), micro_batch, precision)


def test_measured_step_matches_the_prediction_on_the_demo_model():
    # Demo widths with the real window lengths, so the attention terms are large enough to be
    # measured by the CPU allocator (tiny models stay below what it tracks).
    config = PRESETS["demo"].model_for("full")
    measured = measure_step(config, 2, "float32")
    predicted = predict_peak(config, 2, "float32").predicted_peak_bytes
    assert measured["params"] == count_params(config)
    assert measured["device"] in ("CPU:0", "GPU:0")
    assert measured["step_seconds"] > 0 and measured["rss_peak_bytes"] > 0
    assert 0.85 <= predicted / measured["measured_peak_bytes"] <= 1.15


def test_cli_prints_one_json_object_with_the_prediction(capsys):
    code = main(
        [
            "memory",
            "--variant",
            "chunked",
            "--micro-batch",
            "8",
            "--precision",
            "mixed_float16",
            "--no-measure",
            "--json",
        ]
    )
    row = json.loads(capsys.readouterr().out)
    assert code == 0
    assert row["variant"] == "chunked" and row["params"] == count_params(FULL.model_for("chunked"))
    expected = predict_peak(FULL.model_for("chunked"), 8, "mixed_float16").predicted_peak_bytes
    assert row["predicted_peak_bytes"] == expected


def test_cli_rejects_a_bad_micro_batch_in_one_line(capsys):
    code = main(["memory", "--variant", "full", "--micro-batch", "0", "--no-measure"])
    assert code == 2
    assert "`--micro-batch` must be >= 1. Received: 0" in capsys.readouterr().err


def _jetx_memory(*args: str, **env: str) -> dict:
    """`jetx memory ... --json` in a fresh process with `env` added, parsed."""
    command = [sys.executable, "-m", "jetx", "memory", *args, "--json"]
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.portable
@pytest.mark.parametrize("preset, variant", [("tiny", "full"), ("demo", "remat")])
def test_jetx_memory_gives_a_credible_allocator_peak_on_any_cpu(preset, variant):
    # jetx's own processes choose TensorFlow's BFC allocator for the CPU, so the allocator
    # keeps statistics whether or not oneDNN is on (TF_ENABLE_ONEDNN_OPTS=0 in `make
    # test-portable`). The figure is at least the weights and Adam's two slots.
    row = _jetx_memory("--preset", preset, "--variant", variant, "--micro-batch", "4")
    assert row["memory_source"] == "allocator", row["memory_note"]
    assert row["measured_peak_bytes"] > 3 * 4 * row["params"]
    assert row["predicted_over_measured"] == pytest.approx(
        row["predicted_peak_bytes"] / row["measured_peak_bytes"]
    )
    assert row["rss_peak_bytes"] > row["measured_peak_bytes"]


@pytest.mark.portable
def test_without_allocator_statistics_the_figure_is_the_rss_and_says_so():
    # oneDNN off and the default CPU allocator: TensorFlow keeps no statistics on any CPU.
    row = _jetx_memory(
        "--preset",
        "tiny",
        "--variant",
        "full",
        "--micro-batch",
        "4",
        TF_ENABLE_ONEDNN_OPTS="0",
        TF_CPU_ALLOCATOR_USE_BFC="false",
    )
    assert row["memory_source"] == "rss"
    assert "no allocator statistics on CPU:0" in row["memory_note"]
    assert row["measured_peak_bytes"] is None and row["predicted_over_measured"] is None
    assert row["rss_peak_bytes"] > 100 * 2**20  # TensorFlow's runtime is in the RSS


def test_an_allocator_peak_below_the_weights_is_never_reported():
    # With oneDNN forced on and its own CPU allocator, the tiny model's small tensors bypass
    # the allocator's statistics (its peak reads about 0): such a figure is not a measurement.
    row = _jetx_memory(
        "--preset",
        "tiny",
        "--variant",
        "full",
        "--micro-batch",
        "4",
        TF_ENABLE_ONEDNN_OPTS="1",
        TF_CPU_ALLOCATOR_USE_BFC="false",
    )
    if row["memory_source"] == "allocator":
        assert row["measured_peak_bytes"] > 3 * 4 * row["params"]
    else:
        assert row["memory_source"] == "rss" and "bypass the allocator" in row["memory_note"]


def test_read_memory_never_raises_and_names_its_source():
    reading = read_memory("CPU:0", floor_bytes=2**62)  # a floor no allocator peak reaches
    assert reading.source in ("rss", "none")
    assert reading.note and reading.device == "CPU:0"
    logs = reading.to_logs()
    assert set(logs) == {
        "memory_source",
        "memory_device",
        "memory_peak_bytes",
        "rss_peak_bytes",
        "memory_note",
    }
