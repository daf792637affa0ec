"""The dtype policy of a training run: which one, and why.

On a GPU, `mixed_float16` (with dynamic loss scaling, done by `jetx.training.accumulation`) halves
activation memory and uses the tensor cores. On this CPU float16 is about 3x slower than float32,
while `mixed_bfloat16` is about 20% faster with the same memory saving; so a CPU defaults to
float32 and bfloat16 is the memory-saving choice. The policy must be set before a model is built.
"""

from __future__ import annotations

import logging

import keras

from jetx.config import PRECISIONS
from jetx.errors import JetxInputError
from jetx.runtime import has_gpu

logger = logging.getLogger(__name__)


def default_precision() -> str:
    """`mixed_float16` when a GPU is visible, else `float32`."""
    return "mixed_float16" if has_gpu() else "float32"


def check_precision(precision: str | None) -> str:
    """Validate a requested precision; None means the device's default."""
    if precision is None:
        return default_precision()
    if precision not in PRECISIONS:
        raise JetxInputError(
            f"`precision` must be one of {list(PRECISIONS)}. Received: precision={precision!r}"
        )
    return precision


def set_precision(precision: str | None) -> str:
    """Set Keras's global dtype policy and log the choice.

    Args:
        precision: one of `PRECISIONS`, or None for the device's default.

    Returns:
        The policy name in force.

    Raises:
        JetxInputError: an unknown precision.
    """
    chosen = check_precision(precision)
    keras.mixed_precision.set_global_policy(chosen)
    device = "GPU" if has_gpu() else "CPU"
    how = "requested" if precision else "default"
    logger.info(
        "precision %s (%s on %s; loss scaling %s)", chosen, how, device, needs_loss_scaling(chosen)
    )
    return chosen


def needs_loss_scaling(precision: str) -> bool:
    """float16 gradients underflow without loss scaling; bfloat16 has float32's exponent range."""
    return precision == "mixed_float16"
