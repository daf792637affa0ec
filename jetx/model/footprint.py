"""Peak training memory: an analytic prediction, a budget planner, and a measured step.

The prediction is computed from a `ModelConfig` alone, without building the model, so that a stage
can pick its micro-batch before any memory is spent. It adds:

- parameters (float32), their gradients (float32), the training engine's float32 gradient
  accumulators (one per trainable weight) and Adam's two slots (float32);
- under mixed precision, the compute-dtype copies of the weights that the backward pass keeps;
- the input batch;
- the activations kept for the backward pass, branch by branch (the counts below are the tensors
  TensorFlow on CPU keeps per layer, calibrated against `measure_step` with bench/memory_audit.py);
- the attention terms: B x heads x L x L tensors. A plain encoder keeps one per layer (the softmax
  output) and needs two more while the last layer's backward pass runs;
- a recomputed encoder (`remat`, and `chunked`: remat with attention over query chunks, each
  recomputed too), by its structure: every block keeps a checkpoint (B x L x d_model tensors,
  their count measured by cutting the encoder to 1, 2 and 4 blocks), and the peak holds, once
  whatever the depth, one block's re-created activations with their gradients and that block's
  score tensors (whole ones, or one query chunk's slices); `FITTED_SCALES` says how many;
- the blockwise variant (`key_chunk`, `ffn_chunk`): no B x L x L term and no whole block's
  activations, only B x L x d_model tensors (counted, no constant fitted) and one chunk's.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from dataclasses import dataclass, field

from jetx.config import GIB, PLAN_MARGIN, PRECISIONS, SEQUENCE_INPUTS, ModelConfig, StageConfig
from jetx.errors import EXIT_OUT_OF_MEMORY, JetxInputError
from jetx.model import probe
from jetx.model.parameters import count_params, trainable_params

logger = logging.getLogger(__name__)

_F32 = 4
#: Adam keeps two float32 slots (first and second moment) per parameter.
_ADAM_SLOTS = 2
#: Tensors of B x heads x L x L alive at once while one encoder block's backward pass runs
#: (the kept softmax output, the gradient of the probabilities and the gradient of the scores).
_ATTENTION_BACKWARD = 3
#: Score tensors of one query chunk (`attention_chunk`) alive at once in its block's backward pass:
#: its three, plus its scores and probabilities re-created by the chunk's own recomputation.
_CHUNK_BACKWARD = 5
#: Kept elements per position of an encoder block, in units of d_model (Q, K, V, scaled Q,
#: transposed K, merged heads, attention output, residual sums, masks, LayerNorm intermediates
#: and outputs) plus the feed-forward layer's hidden activation (dff).
_ENCODER_PER_D = 16
#: Kept elements of a Dense -> BatchNorm -> Dropout block, in units of its width: ReLU output,
#: BatchNorm output, dropout mask, dropout output.
_DENSE_BLOCK_PER_UNIT = 4
#: Kept elements per position of a TCN block: the padded input (in channels) plus, in units of its
#: filters, the ReLU output, dropout mask and residual sum (calibrated: 2.5, as the ReLU output and
#: the dropout input are one tensor in some of the fused oneDNN kernels).
_TCN_PER_FILTER = 2.5
#: A blockwise block's position-wise chunk while its backward pass runs, in units of the chunk's
#: kept activations: the re-created forward tensors plus the gradients of as many intermediates.
_RECOMPUTED_BLOCK = 3
#: B x L x d_model float32 tensors, whatever the precision, added at the peak of a blockwise
#: block's backward pass: `blockwise_attention`'s backward keeps its key and value gradient
#: sums, the query gradients' TensorArray and one merged gradient in float32 (counted in
#: jetx/model/layers.py). Nothing else is added for the blockwise block: its input, Q, K, V and
#: their gradients in the compute dtype are covered by the other terms (a constant for them,
#: fitted on bench/memory_holdout.py's calibration row, came out at zero and was dropped).
_BLOCKWISE_FLOAT32_WIDE = 4
#: Tensors of one query chunk x key chunk score block alive at once in `blockwise_attention`'s
#: backward pass (the recomputed probabilities, dO V^T, the score gradients; float32).
_BLOCK_SCORES = 3


@dataclass(frozen=True)
class MemoryEstimate:
    """Predicted peak memory of one training step, in bytes.

    Args:
        params: trainable and non-trainable parameters.
        parameter_bytes, gradient_bytes, optimizer_bytes: float32 weights, gradients, Adam slots.
        accumulator_bytes: the training engine's float32 gradient accumulators.
        weight_copy_bytes: compute-dtype weight copies kept under mixed precision.
        input_bytes: the float32 input batch.
        activation_bytes: kept activations per branch ("attention" holds the L x L terms).
        predicted_peak_bytes: the sum of all of the above.
    """

    params: int
    parameter_bytes: int
    gradient_bytes: int
    accumulator_bytes: int
    optimizer_bytes: int
    weight_copy_bytes: int
    input_bytes: int
    activation_bytes: dict[str, int] = field(default_factory=dict)
    predicted_peak_bytes: int = 0


@dataclass(frozen=True)
class MemoryPlan:
    """The micro-batch chosen for a budget, and the accumulation that keeps the effective batch."""

    micro_batch: int
    accumulation: int
    predicted_peak_bytes: int
    budget_bytes: int


def _activation_bytes(config: ModelConfig, micro_batch: int, act: int) -> dict[str, int]:
    """Kept activations per branch for a micro-batch, `act` bytes per element."""
    b = micro_batch
    out: dict[str, int] = {}
    for name, length in config.sequence_inputs.items():
        i = SEQUENCE_INPUTS.index(name)
        units = config.mlp_units[i] * config.mlp_blocks[i]
        out[f"mlp_{name}"] = b * (length + _DENSE_BLOCK_PER_UNIT * units) * act
    length, channels, elements = config.seq_lengths[2], 1, 0
    for filters, dilation in zip(config.tcn_filters, config.tcn_dilations, strict=True):
        padded = length + (config.tcn_kernel - 1) * dilation
        elements += padded * channels + int(length * _TCN_PER_FILTER * filters)
        channels = filters
    out["tcn"] = b * elements * act
    fusion = sum(config.fusion_units) * _DENSE_BLOCK_PER_UNIT
    out["fusion"] = b * fusion * act
    if config.use_seq1000:
        out.update(_transformer_bytes(config, b, act))
    return out


def _transformer_bytes(config: ModelConfig, b: int, act: int) -> dict[str, int]:
    """The encoder's per-position activations and its B x heads x L x L attention terms.

    A plain encoder keeps every block's activations and one score tensor per block. A recomputed
    one (`remat`) is counted by its structure, each part a branch whose count is fitted
    (`FITTED_SCALES`): the checkpoints (one B x L x d_model tensor per block per unit), one
    block's activations and score tensors (whole, or one query chunk's with `attention_chunk`)
    re-created with their gradients, and under mixed precision one float32 B x L x d_model.
    """
    length, d = config.seq_lengths[3], config.d_model
    block = b * length * (_ENCODER_PER_D * d + config.dff) * act
    if config.key_chunk:
        return _blockwise_bytes(config, b, act, block)
    wide = b * length * d * act
    query_rows = min(config.attention_chunk or length, length)
    scores = b * config.num_heads * query_rows * length * act
    chunked = bool(config.attention_chunk) and config.attention_chunk < length
    if not config.remat:
        kept = {"transformer": 2 * wide + config.num_layers * block}
        if chunked:  # each query chunk recomputed: no block keeps its scores
            return kept | {"attention": _CHUNK_BACKWARD * scores}
        return kept | {"attention": (config.num_layers - 1 + _ATTENTION_BACKWARD) * scores}
    # One block's score tensors while its backward pass runs: the kept softmax output and the
    # gradients of the probabilities and the scores, of the whole length or of one query chunk
    # (which also holds its recomputed scores and probabilities).
    held = (_CHUNK_BACKWARD if chunked else _ATTENTION_BACKWARD) * scores
    out = {
        "projection": 2 * wide,  # the input projection and positions, kept before the blocks
        "checkpoints": config.num_layers * wide,
        "recomputed_block": block + held,
    }
    if act != _F32:  # LayerNorm and softmax statistics stay float32 under mixed precision
        out["float32_block"] = b * length * d * _F32
    return out


def _blockwise_bytes(config: ModelConfig, b: int, act: int, block: int) -> dict[str, int]:
    """`_transformer_bytes` of a blockwise encoder (`key_chunk`; remat and `ffn_chunk` implied
    by the variant, a whole-length position-wise part otherwise)."""
    length, d = config.seq_lengths[3], config.d_model
    wide = b * length * d
    kept = config.num_layers * wide * 3 * act  # each block's input and its two dropout masks
    backward = wide * _BLOCKWISE_FLOAT32_WIDE * _F32
    chunk = min(config.ffn_chunk or length, length)
    position_wise = _RECOMPUTED_BLOCK * block * chunk // length
    scores = b * config.num_heads * config.attention_chunk * config.key_chunk * _F32
    transformer = wide * 2 * act + kept + backward + position_wise
    return {"transformer": transformer, "attention": _BLOCK_SCORES * scores}


#: The activation groups' factors, fitted by bench/memory_refit.py (issue 26) on the engine-step
#: rows audited so far on the machine of issue 26's held-out sets (bench/memory_audit_rows.json:
#: sets 1-3, their probe pairs and the per-block rows; the earlier machine's rows are listed
#: there, not fitted on): measured = model state + sum of factor x one unit of each group, least
#: absolute deviations of pred / meas - 1 with every factor >= 0 (the judged figure is a median
#: of |error|; squares let the least smooth series, `remat` float32, pull every factor). For the
#: branches and the plain and blockwise encoders a factor is a scale: how much of the counted
#: tensors the allocator holds at once. The recomputed encoder is counted by its structure and
#: its factors are counts (`_transformer_bytes`), fitted on rows that cut the encoder to 1, 2
#: and 4 blocks (bench/memory_blocks.py) as well as the whole model's:
#:
#: - `*_checkpoint`: B x L x d_model tensors each block keeps until its backward pass, about 16
#:   (remat) and 18 (chunked), where the block's input and its two masks are 3. The rest comes
#:   from Grappler's dependency optimizer: with it off, a second remat block adds 0.028-0.034
#:   GiB at micro-batch 16 float32 (its weights' state is 0.015) instead of 0.20-0.23 GiB
#:   (bench/memory_grappler.py; docs/results.md, issue 26's third set);
#: - `*_block`: one block's activations and score tensors, re-created with their gradients
#:   while its backward pass runs, alive at once (0.73 of the counted set, and 0.42 of a query
#:   chunk's);
#: - `float32_block`: B x L x d_model float32 tensors added under mixed precision.
FITTED_SCALES: dict[str, float] = {
    "branches": 1.196,
    "encoder": 0.914,
    "blockwise": 0.858,
    "remat_checkpoint": 16.167,
    "remat_block": 0.729,
    "chunked_checkpoint": 18.368,
    "chunked_block": 0.42,
    "float32_block": 5.232,
}


def activation_group(config: ModelConfig, branch: str) -> str | None:
    """The `FITTED_SCALES` group of one branch of `MemoryEstimate.activation_bytes` (None:
    counted exactly, not fitted)."""
    if branch.startswith("mlp_") or branch in ("fusion", "tcn"):
        return "branches"  # one group: the MLPs and the TCN scale together in every model
    if config.key_chunk:
        return "blockwise"
    if branch == "projection":
        return None
    if branch == "float32_block":
        return branch
    if branch not in ("checkpoints", "recomputed_block"):
        return "encoder"
    length = config.seq_lengths[3]
    kind = "chunked" if config.attention_chunk and config.attention_chunk < length else "remat"
    return f"{kind}_{'checkpoint' if branch == 'checkpoints' else 'block'}"


def predict_peak(
    config: ModelConfig,
    micro_batch: int,
    precision: str,
    scales: dict[str, float] = FITTED_SCALES,
) -> MemoryEstimate:
    """Predict the peak memory of one training step without building or running the model.

    Args:
        config: the model (variant applied).
        micro_batch: samples per forward/backward pass.
        precision: "float32", "mixed_float16" or "mixed_bfloat16".
        scales: the activation groups' factors (1.0 each: one unit of every group, for a refit).

    Returns:
        A `MemoryEstimate` whose `predicted_peak_bytes` is comparable with `measure_step`'s
        `measured_peak_bytes`.

    Raises:
        JetxInputError: for an unknown precision or a micro-batch below 1.
    """
    _check(micro_batch, precision)
    act = _F32 if precision == "float32" else 2
    params = count_params(config)
    inputs = micro_batch * (config.n_features + sum(config.sequence_inputs.values()) + 5) * _F32
    activations = {
        branch: int(size * scales.get(activation_group(config, branch), 1.0))
        for branch, size in _activation_bytes(config, micro_batch, act).items()
    }
    weight_copies = 0 if precision == "float32" else params * act
    parts = dict(
        params=params,
        parameter_bytes=params * _F32,
        gradient_bytes=params * _F32,
        accumulator_bytes=trainable_params(config) * _F32,
        optimizer_bytes=params * _F32 * _ADAM_SLOTS,
        weight_copy_bytes=weight_copies,
        input_bytes=inputs,
    )
    total = sum(v for k, v in parts.items() if k != "params") + sum(activations.values())
    return MemoryEstimate(**parts, activation_bytes=activations, predicted_peak_bytes=total)


def _check(micro_batch: int, precision: str) -> None:
    if precision not in PRECISIONS:
        raise JetxInputError(
            f"`precision` must be one of {list(PRECISIONS)}. Received: precision={precision!r}"
        )
    if micro_batch < 1:
        raise JetxInputError(f"`micro_batch` must be >= 1. Received: micro_batch={micro_batch}")


def plan(
    model: ModelConfig,
    stage: StageConfig,
    budget_bytes: int,
    precision: str = "float32",
    margin: float = PLAN_MARGIN,
) -> MemoryPlan:
    """Choose the largest micro-batch whose predicted peak, plus `margin`, fits `budget_bytes`.

    Args:
        model: the model (variant applied).
        stage: the stage; candidates are its `micro_batches()`.
        budget_bytes: memory available to one training step.
        precision: the dtype policy the stage trains under.
        margin: safety fraction added to each prediction (default `PLAN_MARGIN`, derived from
            the held-out audit's worst under-estimate).

    Returns:
        A `MemoryPlan`; accumulation = effective batch / micro-batch.

    Raises:
        JetxInputError: when even micro-batch 1 does not fit the budget.
    """
    for micro_batch in stage.micro_batches():
        peak = predict_peak(model, micro_batch, precision).predicted_peak_bytes
        if fits_budget(peak, budget_bytes, margin):
            return MemoryPlan(micro_batch, stage.effective_batch // micro_batch, peak, budget_bytes)
    raise JetxInputError(
        f"Model {describe(model)} does not fit the budget {budget_bytes / GIB:.2f} GiB "
        f"({budget_bytes} bytes) even at micro_batch=1 under {precision}: predicted "
        f"{peak / GIB:.2f} GiB plus a {margin:.0%} margin."
    )


def fits_budget(peak_bytes: float, budget_bytes: int, margin: float = PLAN_MARGIN) -> bool:
    """A peak plus the planner's margin within the budget: the one rule of every plan, analytic
    or measured."""
    return peak_bytes * (1 + margin) <= budget_bytes


def describe(config: ModelConfig) -> str:
    """A short name of a model config for messages: widths that decide memory."""
    seq = "with seq1000" if config.use_seq1000 else "without seq1000"
    tags = [seq, f"d_model={config.d_model}", f"heads={config.num_heads}"]
    tags += [f"layers={config.num_layers}", f"remat={config.remat}"]
    tags.append(f"attention_chunk={config.attention_chunk}")
    return f"({', '.join(tags)})"


def run_probe(command: list[str], where: str) -> dict:
    """A memory probe's JSON result (its last stdout line), from a fresh process.

    Raises:
        MemoryError: out of memory in the probe, or the probe killed by SIGKILL (what the
            kernel's OOM killer sends): one line, the out-of-memory exit code at the command line.
        RuntimeError: the probe failed otherwise (the last lines of its stderr).
    """
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode == -signal.SIGKILL:
        raise MemoryError(f"{where} was killed by SIGKILL (exit -9): out of memory")
    tail = " | ".join(done.stderr.strip().splitlines()[-3:])
    if done.returncode == EXIT_OUT_OF_MEMORY:
        raise MemoryError(f"{where}: {tail}")
    if done.returncode != 0:
        raise RuntimeError(f"{where} failed with exit code {done.returncode}: {tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_step(config: ModelConfig, micro_batch: int, precision: str) -> dict:
    """Measure one real training step in a fresh subprocess (`jetx.model.probe`).

    Args:
        config: the model (variant applied).
        micro_batch: samples in the measured step.
        precision: the dtype policy.

    Returns:
        {"measured_peak_bytes" (the allocator's peak; None when `memory_source` is not
        "allocator"), "memory_source", "memory_note", "rss_peak_bytes", "params",
        "step_seconds", "device", "micro_batch", "precision"}.

    Raises:
        JetxInputError: for a bad precision or micro-batch.
        MemoryError: the step ran out of memory or the process was killed by SIGKILL (the
            OOM killer's signal): one line, the out-of-memory exit code at the command line.
        RuntimeError: when the subprocess fails otherwise (its stderr tail is in the message).
    """
    _check(micro_batch, precision)
    request = json.dumps(
        {"config": config.to_dict(), "micro_batch": micro_batch, "precision": precision}
    )
    where = f"memory probe at micro-batch {micro_batch} ({precision})"
    result = run_probe([sys.executable, "-m", probe.__name__, request], where)
    peak = result["measured_peak_bytes"]
    logger.info(
        "measured one step of micro-batch %d (%s) on %s: peak %s (%s), %.3f s",
        micro_batch,
        precision,
        result["device"],
        "n/a" if peak is None else f"{gib(peak):.3f} GiB",
        result["memory_source"],
        result["step_seconds"],
    )
    return result


def gib(n_bytes: float) -> float:
    """Bytes in GiB, for tables."""
    return n_bytes / GIB
