"""Parameters of `build_model(config)`, counted from the config without building the model.

The memory model (`jetx.model.footprint`) needs them before any memory is spent; the tests check
them against the built models of every variant.
"""

from __future__ import annotations

from jetx.config import SEQUENCE_INPUTS, ModelConfig


def count_params(config: ModelConfig) -> int:
    """Parameters of `build_model(config)`, counted from the config (BatchNorm's 4 per unit)."""
    total = 0
    widths = [config.n_features]
    for name, length in config.sequence_inputs.items():
        i = SEQUENCE_INPUTS.index(name)
        units, blocks = config.mlp_units[i], config.mlp_blocks[i]
        total += _dense_blocks_params(length, [units] * blocks, config.normalization)
        widths.append(units)
    channels = 1
    for filters in config.tcn_filters:
        total += config.tcn_kernel * channels * filters + filters
        if channels != filters:
            total += channels * filters + filters
        channels = filters
    total += channels * config.tcn_dense + config.tcn_dense
    widths.append(config.tcn_dense)
    if config.use_seq1000:
        d, dff = config.d_model, config.dff
        total += 2 * d  # projection from one channel
        total += config.num_layers * (4 * (d * d + d) + 2 * d * dff + dff + d + 4 * d)
        total += d * config.transformer_dense + config.transformer_dense
        widths.append(config.transformer_dense)
    total += _dense_blocks_params(sum(widths), list(config.fusion_units), config.normalization)
    last = config.fusion_units[-1]
    return total + (last + 1) * (1 + 3 + 1)


def trainable_params(config: ModelConfig) -> int:
    """`count_params` less BatchNorm's moving statistics (2 per unit), which are not trained."""
    if config.normalization != "batch":
        return count_params(config)
    units = [
        config.mlp_units[SEQUENCE_INPUTS.index(name)]
        * config.mlp_blocks[SEQUENCE_INPUTS.index(name)]
        for name in config.sequence_inputs
    ]
    return count_params(config) - 2 * (sum(units) + sum(config.fusion_units))


def _dense_blocks_params(width: int, units: list[int], normalization: str) -> int:
    norm = 4 if normalization == "batch" else 2  # BatchNorm: 2 trainable + 2 moving statistics
    total = 0
    for u in units:
        total += width * u + u + norm * u
        width = u
    return total
