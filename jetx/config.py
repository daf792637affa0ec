"""The one source of truth for model shapes, variants, the stage schedule and presets.

Everything else (model, memory planner, training, flows, reports) reads these frozen
dataclasses; nothing re-declares a width, a batch size or a learning rate. Each config
round-trips through `to_dict` / `from_dict` (like Keras `get_config`) so that it can be stored
in a checkpoint, a manifest or a Prefect parameter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Self

from jetx.errors import JetxInputError

#: Names of the sequence inputs, in order. The names are the roles of the full-size model
#: (`seq1000` is the longest window); `ModelConfig.seq_lengths` gives their actual lengths, which
#: are shorter in the tiny preset.
SEQUENCE_INPUTS: tuple[str, ...] = ("seq50", "seq200", "seq500", "seq1000")
#: Names of the model's outputs (and of the dataset's targets), in order.
OUTPUTS: tuple[str, ...] = ("regression", "classification", "threshold")
#: Multiplier at which a bet cashes out; `threshold` target is value >= this.
CASHOUT = 1.5
#: Upper edges of the three classes of the classification target: < 1.5, 1.5 to < 10, >= 10.
CLASS_EDGES: tuple[float, ...] = (CASHOUT, 10.0)
#: Number of classes of the `classification` target and head (one more than the edges).
NUM_CLASSES = len(CLASS_EDGES) + 1
#: The classes by name, for tables and plots.
CLASS_NAMES: tuple[str, ...] = (
    f"< {CLASS_EDGES[0]:g}",
    *(f"{lo:g} to < {hi:g}" for lo, hi in zip(CLASS_EDGES, CLASS_EDGES[1:], strict=False)),
    f">= {CLASS_EDGES[-1]:g}",
)
#: Win rate at which a bet cashed out at CASHOUT neither wins nor loses: win x 0.5 = loss x 1.
BREAK_EVEN_WIN_RATE = 1.0 / CASHOUT
#: x P(X >= x) of a crash game with a 3% house edge (docs/design.md's facts): P(X >= 1.5) = 0.6467.
HOUSE_RETURN = 0.97

GIB = 1024**3
MIB = 1024**2

#: Samples per batch of a forward-only pass (validation, evaluation). Attention's scores make it
#: the biggest memory item of those passes: 64 x 8 heads x 1000^2 floats is 2 GiB per layer for the
#: full model, well inside a 15 GiB T4, while 256 would not be.
EVAL_BATCH = 64

#: The planners' one safety margin: a micro-batch is chosen when its peak (measured-plan line,
#: `jetx.training.memory_plan`, or analytic fallback, `jetx.model.footprint.plan`) x (1 + margin)
#: fits the budget. Issue 26 sets it at its target of 10% (it was 20% for the analytic model's
#: issue-17 under-estimates); bench/memory_holdout.py reports the under-estimates beyond it.
PLAN_MARGIN = 0.10

#: tf.distribute strategies of `jetx.training.distribute` (none, all local GPUs, TF_CONFIG workers).
STRATEGIES: tuple[str, ...] = ("none", "mirrored", "multi-worker")

#: Normalisations of the MLP branches and the fusion (`ModelConfig.normalization`), and what
#: gradient accumulation guarantees under each: the one text the stage result and the report use.
NORMALIZATIONS: dict[str, str] = {
    "batch": (
        "batch norm over each micro-batch: the accumulated update equals one effective "
        "batch's only up to the batch statistics, which are the micro-batch's (in training "
        "and in the moving averages)"
    ),
    "layer": (
        "layer norm, per sample: the accumulated update equals one effective batch's exactly "
        "(dropout aside, whose masks depend on the micro-batch's shape)"
    ),
}

Precision = Literal["float32", "mixed_float16", "mixed_bfloat16"]
PRECISIONS: tuple[str, ...] = ("float32", "mixed_float16", "mixed_bfloat16")


class _Config:
    """Dict round-trip shared by every config dataclass."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise JetxInputError(f"{cls.__name__} got unknown keys {unknown}.")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


@dataclass(frozen=True)
class ModelConfig(_Config):
    """Shape of the multi-branch model. Defaults are docs/design.md's full model.

    Args:
        n_features: width of the `features` input (the feature registry's length).
        seq_lengths: length of each of `SEQUENCE_INPUTS`, in order.
        use_seq1000: whether the longest sequence, its MLP branch and the Transformer exist.
        mlp_units, mlp_blocks: width and depth of the MLP branch of each sequence input.
        tcn_filters, tcn_dilations, tcn_kernel, tcn_dense: the TCN on `seq500`.
        d_model, num_layers, num_heads, dff, transformer_dense: the Transformer on `seq1000`.
        dropout: dropout rate of every branch and of the fusion.
        l2: L2 weight decay of the MLP branches' Dense layers.
        fusion_units: widths of the fusion Dense layers after the concat.
        remat: recompute each encoder block's activations in the backward pass
            (`tf.recompute_grad`), trading compute for memory.
        attention_chunk: compute attention over query chunks of this many positions, so that the
            B x heads x L x L score tensor never exists whole; None computes it at once.
        key_chunk: also split the keys into chunks of this many positions, with a running
            maximum and sum across them (`jetx.model.layers.blockwise_attention`, recomputed in
            the backward pass), so that no score block exceeds `attention_chunk` x `key_chunk`;
            needs `attention_chunk`, and both must divide seq1000's length.
        ffn_chunk: compute each encoder block's output projection, residuals, LayerNorms and
            feed-forward layer over position chunks of this many positions, each recomputed in
            the backward pass; None computes them over all positions at once.
        normalization: "batch" (the original's BatchNorm in the MLP branches and the fusion) or
            "layer" (LayerNorm there: per sample, so that accumulation is exact; see
            `NORMALIZATIONS`). The encoder blocks always use LayerNorm.
    """

    n_features: int = 121
    seq_lengths: tuple[int, ...] = (50, 200, 500, 1000)
    use_seq1000: bool = True
    mlp_units: tuple[int, ...] = (128, 192, 256, 384)
    mlp_blocks: tuple[int, ...] = (5, 6, 7, 9)
    tcn_filters: tuple[int, ...] = (128, 128, 256, 256, 512, 512, 512)
    tcn_dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    tcn_kernel: int = 3
    tcn_dense: int = 512
    d_model: int = 256
    num_layers: int = 4
    num_heads: int = 8
    dff: int = 1024
    transformer_dense: int = 256
    dropout: float = 0.2
    l2: float = 1e-4
    fusion_units: tuple[int, ...] = (512, 256, 128)
    remat: bool = False
    attention_chunk: int | None = None
    key_chunk: int | None = None
    ffn_chunk: int | None = None
    normalization: Literal["batch", "layer"] = "batch"

    def __post_init__(self) -> None:
        if len(self.seq_lengths) != len(SEQUENCE_INPUTS):
            raise JetxInputError(
                f"`seq_lengths` must have {len(SEQUENCE_INPUTS)} entries, one per "
                f"{SEQUENCE_INPUTS}. Received: seq_lengths={self.seq_lengths}"
            )
        if len(self.tcn_filters) != len(self.tcn_dilations):
            raise JetxInputError(
                "`tcn_filters` and `tcn_dilations` must have the same length. Received: "
                f"tcn_filters={self.tcn_filters}, tcn_dilations={self.tcn_dilations}"
            )
        if self.d_model % self.num_heads:
            raise JetxInputError(
                f"`num_heads` must divide `d_model` {self.d_model}. "
                f"Received: num_heads={self.num_heads}"
            )
        for name in ("attention_chunk", "key_chunk", "ffn_chunk"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise JetxInputError(
                    f"`{name}` must be a positive int or None. Received: {name}={value}"
                )
        if self.key_chunk is not None:
            length = self.seq_lengths[-1]
            chunks = (self.attention_chunk, self.key_chunk)
            if chunks[0] is None or any(length % c for c in chunks):
                raise JetxInputError(
                    f"`key_chunk` needs `attention_chunk`, and both must divide seq1000's length "
                    f"{length}. Received: attention_chunk={self.attention_chunk}, "
                    f"key_chunk={self.key_chunk}"
                )
        if self.normalization not in NORMALIZATIONS:
            raise JetxInputError(
                f"`normalization` must be one of {list(NORMALIZATIONS)}. "
                f"Received: normalization={self.normalization!r}"
            )

    @property
    def sequence_inputs(self) -> dict[str, int]:
        """The sequence inputs this model takes, name -> length (no seq1000 for `no1000`)."""
        names = SEQUENCE_INPUTS if self.use_seq1000 else SEQUENCE_INPUTS[:-1]
        return {name: self.seq_lengths[SEQUENCE_INPUTS.index(name)] for name in names}

    @property
    def longest_window(self) -> int:
        """Longest sequence this model reads: the dataset's first usable sample offset."""
        return max(self.sequence_inputs.values())


# --- Variants: how each named variant changes a preset's base model. -------------------------


def _eighth(length: int) -> int:
    """The divisor of `length` nearest to length / 8 (125 for seq1000's 1000): a chunk size."""
    divisors = [d for d in range(1, length + 1) if length % d == 0]
    return min(divisors, key=lambda d: (abs(d - length / 8), d))


# The original and its plan's two options keep the original's batch norm; ours, which train the
# whole model under accumulation, use layer norm so that accumulation is exact.
VARIANTS: dict[str, Callable[[ModelConfig], ModelConfig]] = {
    # docs/design.md's model as it is.
    "full": lambda m: m,
    # Plan option 1: no seq1000, no 384x9 branch, no Transformer.
    "no1000": lambda m: dataclasses.replace(m, use_seq1000=False),
    # Plan option 2: half the Transformer (full: 128 wide, 2 layers, 4 heads, dff 512).
    "light": lambda m: dataclasses.replace(
        m,
        d_model=max(m.d_model // 2, m.num_heads // 2 or 1),
        num_layers=max(m.num_layers // 2, 1),
        num_heads=max(m.num_heads // 2, 1),
        dff=max(m.dff // 2, 1),
    ),
    # Ours: the whole model; each encoder block recomputes its activations in the backward pass.
    "remat": lambda m: dataclasses.replace(m, remat=True, normalization="layer"),
    # Ours: remat, and attention over query chunks of 1/8 of seq1000, each recomputed on its
    # own, so that the B x heads x L x L score tensor never exists whole.
    "chunked": lambda m: dataclasses.replace(
        m, remat=True, attention_chunk=max(1, m.seq_lengths[-1] // 8), normalization="layer"
    ),
    # Ours: chunked's next step. Keys in chunks too (a running max and sum, Rabe and Staats
    # 2021), and the block's position-wise part (output projection, residuals, LayerNorms,
    # feed-forward) over position chunks, each recomputed: no tensor of a block's backward pass
    # is wider than one chunk except the block's inputs, Q, K, V and their gradients.
    "blockwise": lambda m: dataclasses.replace(
        m,
        remat=True,
        attention_chunk=_eighth(m.seq_lengths[-1]),
        key_chunk=_eighth(m.seq_lengths[-1]),
        ffn_chunk=_eighth(m.seq_lengths[-1]),
        normalization="layer",
    ),
}


def apply_variant(model: ModelConfig, variant: str) -> ModelConfig:
    """Return `model` changed as the named variant says."""
    if variant not in VARIANTS:
        raise JetxInputError(
            f"`variant` must be one of {sorted(VARIANTS)}. Received: variant={variant!r}"
        )
    return VARIANTS[variant](model)


# --- Stages -------------------------------------------------------------------------------------


#: The directions a monitor can want.
MONITOR_MODES = ("min", "max")


@dataclass(frozen=True)
class MonitorConfig(_Config):
    """What a monitor watches and how long it waits.

    Args:
        monitor: the epoch log's key, e.g. "val_loss".
        mode: "min" (lower is better) or "max".
        min_delta: the least change that counts as an improvement, >= 0.
        patience: epochs without improvement before the monitor acts, >= 1.
    """

    monitor: str = "val_loss"
    mode: Literal["min", "max"] = "min"
    min_delta: float = 0.0
    patience: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MONITOR_MODES:
            raise JetxInputError(
                f"`mode` must be one of {MONITOR_MODES}. Received: mode={self.mode!r}"
            )
        if self.min_delta < 0:
            raise JetxInputError(f"`min_delta` must be >= 0. Received: min_delta={self.min_delta}")
        if self.patience < 1:
            raise JetxInputError(f"`patience` must be >= 1. Received: patience={self.patience}")

    def improves(self, value: float, best: float | None) -> bool:
        """Whether `value` improves on `best` (None: nothing yet) by more than min_delta."""
        if best is None:
            return True
        if self.mode == "min":
            return value < best - self.min_delta
        return value > best + self.min_delta


@dataclass(frozen=True)
class StageConfig(_Config):
    """One training stage: what it optimises, with which batch and for how long.

    The effective batch (micro-batch x accumulation) is what the stage means; when memory
    forces a smaller micro-batch, accumulation grows and the effective batch stays.

    Args:
        stage: 1, 2 or 3.
        epochs: maximum epochs (early stopping may end sooner).
        effective_batch: samples per optimizer update.
        micro_batch: samples per forward/backward pass; must divide `effective_batch`.
        learning_rate: Adam's learning rate at the start of the stage.
        loss_weights: weights of the regression, classification and threshold losses.
        threshold_loss: "weighted_bce" (class 0 weighted by `class0_weight`) or "focal".
        class0_weight: weight of class 0 (value < 1.5) in the weighted BCE.
        focal_gamma, focal_alpha: the focal loss's parameters.
        early_stopping: the monitor that ends the stage when it stops improving.
        plateau: the monitor that multiplies the learning rate by `plateau_factor` (down to
            `min_learning_rate`) each time it runs out of patience.
        checkpoint_every: also checkpoint every this many optimizer updates (0: epochs only).
    """

    stage: int
    epochs: int
    effective_batch: int
    micro_batch: int
    learning_rate: float
    loss_weights: tuple[float, float, float]
    threshold_loss: Literal["weighted_bce", "focal"] = "weighted_bce"
    class0_weight: float = 1.0
    focal_gamma: float = 2.0
    focal_alpha: float = 0.7
    early_stopping: MonitorConfig = MonitorConfig(patience=15)
    plateau: MonitorConfig = MonitorConfig(patience=5)
    plateau_factor: float = 0.5
    min_learning_rate: float = 1e-7
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        if self.micro_batch < 1 or self.effective_batch % self.micro_batch:
            raise JetxInputError(
                f"`micro_batch` must divide the effective batch {self.effective_batch}. "
                f"Received: micro_batch={self.micro_batch}"
            )
        if self.threshold_loss not in ("weighted_bce", "focal"):
            raise JetxInputError(
                "`threshold_loss` must be 'weighted_bce' or 'focal'. "
                f"Received: threshold_loss={self.threshold_loss!r}"
            )

    @property
    def accumulation(self) -> int:
        """Micro-batches per optimizer update."""
        return self.effective_batch // self.micro_batch

    def micro_batches(self, *, replicas: int = 1, at_most: int | None = None) -> tuple[int, ...]:
        """Every micro-batch this stage can train with, largest first: the one rule for them.

        A micro-batch divides the effective batch (so accumulation is a whole number) and, being
        global under a tf.distribute strategy, is a multiple of the replica count.

        Args:
            replicas: replicas in sync that share each micro-batch.
            at_most: the largest micro-batch wanted (a memory plan's, an OOM retry's).
        """
        top = self.effective_batch if at_most is None else min(at_most, self.effective_batch)
        return tuple(
            m for m in range(top, 0, -1) if self.effective_batch % m == 0 and m % replicas == 0
        )

    def smaller_micro_batch(self, micro_batch: int, *, replicas: int = 1) -> int | None:
        """The micro-batch after an out-of-memory at `micro_batch`: the largest valid one at most
        half of it (accumulation doubles at least), or None when there is none."""
        smaller = self.micro_batches(replicas=replicas, at_most=micro_batch // 2)
        return smaller[0] if smaller else None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Also reads a stage saved before the two monitors (`patience`, `plateau_patience` on
        `val_loss`, no min_delta)."""
        data = dict(data)
        legacy = {"patience": "early_stopping", "plateau_patience": "plateau"}
        for old, new in legacy.items():
            if old in data:
                data.setdefault(new, {"patience": data.pop(old)})
        for key in legacy.values():
            if isinstance(data.get(key), dict):
                data[key] = MonitorConfig.from_dict(data[key])
        return super().from_dict(data)

    def with_micro_batch(self, micro_batch: int) -> StageConfig:
        """This stage with another micro-batch: accumulation follows, the effective batch stays."""
        return dataclasses.replace(self, micro_batch=micro_batch)


#: docs/design.md's schedule: the original batches 64/32/16 as micro-batches 8/4/2 x accumulation 8.
STAGES: tuple[StageConfig, ...] = (
    StageConfig(1, 100, 64, 8, 1e-4, (0.55, 0.10, 0.35), "weighted_bce", class0_weight=1.2),
    StageConfig(2, 80, 32, 4, 1e-4, (0.45, 0.10, 0.45), "weighted_bce", class0_weight=1.5),
    StageConfig(3, 80, 16, 2, 5e-5, (0.40, 0.15, 0.45), "focal", focal_gamma=2.0, focal_alpha=0.7),
)


# --- Presets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preset(_Config):
    """A named bundle of model size, schedule and data caps: `full`, `demo` or `tiny`.

    Args:
        name: the preset's name.
        model: the base model before a variant is applied.
        stages: the stage schedule.
        variant: the variant used when none is given.
        max_train_samples, max_eval_samples: caps on samples per split (the newest are kept,
            so that a cap never reaches across a split boundary); None uses every sample.
    """

    name: str
    model: ModelConfig = field(default_factory=ModelConfig)
    stages: tuple[StageConfig, ...] = STAGES
    variant: str = "full"
    max_train_samples: int | None = None
    max_eval_samples: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preset:
        data = dict(data)
        if "model" in data:
            data["model"] = ModelConfig.from_dict(data["model"])
        if "stages" in data:
            data["stages"] = tuple(StageConfig.from_dict(s) for s in data["stages"])
        return super().from_dict(data)

    def model_for(self, variant: str | None = None) -> ModelConfig:
        """This preset's model with `variant` (default: the preset's own) applied."""
        return apply_variant(self.model, variant or self.variant)


def _short_stages(epochs: int, checkpoint_every: int) -> tuple[StageConfig, ...]:
    return tuple(
        dataclasses.replace(
            s,
            epochs=epochs,
            early_stopping=MonitorConfig(patience=max(2, epochs)),
            plateau=MonitorConfig(patience=1),
            checkpoint_every=checkpoint_every,
        )
        for s in STAGES
    )


#: Same topology as the full model at a size that trains in seconds on a CPU.
TINY_MODEL = ModelConfig(
    seq_lengths=(8, 16, 24, 32),
    mlp_units=(8, 8, 8, 8),
    mlp_blocks=(1, 1, 2, 2),
    tcn_filters=(8, 8, 16),
    tcn_dilations=(1, 2, 4),
    tcn_dense=16,
    d_model=16,
    num_layers=2,
    num_heads=2,
    dff=32,
    transformer_dense=16,
    fusion_units=(32, 16, 8),
)

#: Real window lengths, narrow widths: the demo trains the same code path in about a minute on
#: 2 CPU cores. Its cost is the Transformer's 1000 x 1000 softmax per head and layer (the
#: no1000 variant of this model is 50x cheaper per sample), so it keeps one encoder block of
#: two heads: 17 ms per sample and micro-step here, against 64 ms for two blocks of four heads.
DEMO_MODEL = ModelConfig(
    mlp_units=(32, 32, 48, 64),
    mlp_blocks=(2, 2, 2, 3),
    tcn_filters=(16, 16, 32, 32, 32),
    tcn_dilations=(1, 2, 4, 8, 16),
    tcn_dense=32,
    d_model=16,
    num_layers=1,
    num_heads=2,
    dff=32,
    transformer_dense=16,
    fusion_units=(64, 32, 16),
)

PRESETS: dict[str, Preset] = {
    "full": Preset(name="full"),
    "demo": Preset(
        name="demo",
        model=DEMO_MODEL,
        stages=_short_stages(epochs=2, checkpoint_every=20),
        variant="remat",
        max_train_samples=384,
        max_eval_samples=256,
    ),
    "tiny": Preset(
        name="tiny",
        model=TINY_MODEL,
        stages=_short_stages(epochs=2, checkpoint_every=4),
        variant="full",
        max_train_samples=256,
        max_eval_samples=128,
    ),
}


def get_preset(name: str) -> Preset:
    """Look up a preset by name, with a clear error for an unknown one."""
    if name not in PRESETS:
        raise JetxInputError(
            f"`preset` must be one of {sorted(PRESETS)}. Received: preset={name!r}"
        )
    return PRESETS[name]
