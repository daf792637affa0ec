"""The multi-branch model of docs/design.md "Model": four MLP branches, a TCN, a Transformer.

Every width comes from a `ModelConfig` (jetx/config.py); a variant is only a different config.
The model consumes ready batches (named inputs) and never slices a series.
"""

from __future__ import annotations

import keras

from jetx.config import NUM_CLASSES, SEQUENCE_INPUTS, ModelConfig
from jetx.model.layers import EncoderBlock, ReplicaDropout, SinusoidalPositions


def build_model(config: ModelConfig) -> keras.Model:
    """Build the (uncompiled) model under the current global dtype policy.

    Args:
        config: widths and variant switches; `config.sequence_inputs` lists the sequence inputs.

    Returns:
        A functional `keras.Model` with inputs "features" [B, n_features] and one [B, L, 1] input
        per sequence, and a dict of float32 outputs: "regression" [B, 1] (linear),
        "classification" [B, 3] (softmax) and "threshold" [B, 1] (sigmoid). The heads stay float32
        under mixed precision so that the losses are computed in float32.
    """
    features = keras.Input((config.n_features,), name="features")
    sequences = {
        name: keras.Input((length, 1), name=name) for name, length in config.sequence_inputs.items()
    }
    branches = [features]
    for name, sequence in sequences.items():
        index = SEQUENCE_INPUTS.index(name)
        branches.append(
            _mlp_branch(sequence, config.mlp_units[index], config.mlp_blocks[index], config, name)
        )
    branches.append(_tcn_branch(sequences["seq500"], config))
    if config.use_seq1000:
        branches.append(_transformer_branch(sequences["seq1000"], config))
    x = keras.layers.Concatenate(name="fusion_concat")(branches)
    for i, units in enumerate(config.fusion_units, start=1):
        x = dense_block(x, units, config, f"fusion_{i}", l2=0.0)
    outputs = {
        "regression": keras.layers.Dense(1, name="regression", dtype="float32")(x),
        "classification": keras.layers.Dense(
            NUM_CLASSES, activation="softmax", name="classification", dtype="float32"
        )(x),
        "threshold": keras.layers.Dense(1, activation="sigmoid", name="threshold", dtype="float32")(
            x
        ),
    }
    return keras.Model(
        inputs={"features": features, **sequences}, outputs=outputs, name=_model_name(config)
    )


def _model_name(config: ModelConfig) -> str:
    parts = ["jetx"]
    if not config.use_seq1000:
        parts.append("no1000")
    if config.remat:
        parts.append("remat")
    if config.attention_chunk:
        parts.append(f"chunk{config.attention_chunk}")
    if config.key_chunk:
        parts.append(f"keys{config.key_chunk}")
    if config.ffn_chunk:
        parts.append(f"ffn{config.ffn_chunk}")
    if config.normalization != "batch":
        parts.append(f"{config.normalization}norm")
    return "_".join(parts)


def dense_block(x, units: int, config: ModelConfig, name: str, l2: float):
    """Dense(relu) -> BatchNorm or LayerNorm -> Dropout, the block of the MLP branches and of the
    fusion (`config.normalization`)."""
    regularizer = keras.regularizers.L2(l2) if l2 else None
    x = keras.layers.Dense(
        units, activation="relu", kernel_regularizer=regularizer, name=f"{name}_dense"
    )(x)
    if config.normalization == "batch":
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    else:
        x = keras.layers.LayerNormalization(name=f"{name}_ln")(x)
    return ReplicaDropout(config.dropout, name=f"{name}_dropout")(x)


def _mlp_branch(sequence, units: int, blocks: int, config: ModelConfig, name: str):
    """The original's "N-BEATS" branch: Flatten, then `blocks` Dense blocks of `units`."""
    x = keras.layers.Flatten(name=f"{name}_flatten")(sequence)
    for i in range(1, blocks + 1):
        x = dense_block(x, units, config, f"{name}_mlp_{i}", l2=config.l2)
    return x


def _tcn_branch(sequence, config: ModelConfig):
    """Residual causal dilated Conv1D blocks, global average pooling, Dense."""
    x = sequence
    for i, (filters, dilation) in enumerate(
        zip(config.tcn_filters, config.tcn_dilations, strict=True), start=1
    ):
        y = keras.layers.Conv1D(
            filters,
            config.tcn_kernel,
            padding="causal",
            dilation_rate=dilation,
            activation="relu",
            name=f"tcn_{i}_conv",
        )(x)
        y = ReplicaDropout(config.dropout, name=f"tcn_{i}_dropout")(y)
        if x.shape[-1] != filters:
            x = keras.layers.Conv1D(filters, 1, name=f"tcn_{i}_residual")(x)
        x = keras.layers.Add(name=f"tcn_{i}_add")([x, y])
    x = keras.layers.GlobalAveragePooling1D(name="tcn_pool")(x)
    return keras.layers.Dense(config.tcn_dense, activation="relu", name="tcn_dense")(x)


def _transformer_branch(sequence, config: ModelConfig):
    """Dense projection, sinusoidal positions, post-LN encoder blocks, pooling, Dense."""
    x = keras.layers.Dense(config.d_model, name="transformer_projection")(sequence)
    x = SinusoidalPositions(name="transformer_positions")(x)
    x = ReplicaDropout(config.dropout, name="transformer_dropout")(x)
    for i in range(1, config.num_layers + 1):
        x = EncoderBlock(
            config.d_model,
            config.num_heads,
            config.dff,
            config.dropout,
            remat=config.remat,
            attention_chunk=config.attention_chunk,
            key_chunk=config.key_chunk,
            ffn_chunk=config.ffn_chunk,
            name=f"encoder_{i}",
        )(x)
    x = keras.layers.GlobalAveragePooling1D(name="transformer_pool")(x)
    return keras.layers.Dense(
        config.transformer_dense, activation="relu", name="transformer_dense"
    )(x)
