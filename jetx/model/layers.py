"""Custom layers of the Transformer branch: sinusoidal positions and a memory-aware encoder block.

The encoder block is written out (instead of `keras.layers.MultiHeadAttention`) for two memory
savings that Keras does not offer on TensorFlow:

- `remat`: the block's attention and feed-forward run inside `tf.recompute_grad`, so that only the
  block's input is kept for the backward pass and the B x heads x L x L attention tensors of at
  most one block exist at a time. Its dropout masks are drawn outside the recomputed function and
  passed in as positional tensors: a mask drawn inside would be drawn again in the backward pass
  and give wrong gradients.
- `attention_chunk`: attention is computed over query chunks, each inside its own
  `tf.recompute_grad`, so that the whole score tensor never exists, in the forward pass or the
  backward pass.

Dropout in the block is on the two residual branches (after attention and after the feed-forward
layer), not on the attention probabilities, so no L x L mask is ever made.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def sinusoid_table(length: int, width: int) -> np.ndarray:
    """The fixed sine/cosine position table of "Attention is all you need".

    Returns:
        float64 array [length, width]: sines in the even columns, cosines in the odd ones.
    """
    positions = np.arange(length)[:, None]
    rates = np.exp(-math.log(10000.0) * (np.arange(0, width, 2) / width))
    table = np.zeros((length, width))
    table[:, 0::2] = np.sin(positions * rates)
    table[:, 1::2] = np.cos(positions * rates[: width // 2])
    return table


@keras.saving.register_keras_serializable(package="jetx")
class SinusoidalPositions(keras.layers.Layer):
    """Adds the sinusoid position table to a [B, L, d] input, in the layer's compute dtype."""

    def call(self, inputs):
        table = sinusoid_table(inputs.shape[-2], inputs.shape[-1])
        return inputs + ops.convert_to_tensor(table, dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="jetx")
class EncoderBlock(keras.layers.Layer):
    """Post-LN Transformer encoder block: x = LN(x + drop(MHA(x))); x = LN(x + drop(FFN(x))).

    Args:
        d_model: width of the block's input and output.
        num_heads: attention heads; must divide `d_model`.
        dff: width of the feed-forward layer.
        dropout: rate of the two residual dropouts.
        remat: recompute the block's activations in the backward pass.
        attention_chunk: query positions per attention chunk; None attends all at once.
        seed: seed of the dropout masks (None: drawn from Keras's global seed).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dff: int,
        dropout: float,
        remat: bool = False,
        attention_chunk: int | None = None,
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.dff = d_model, num_heads, dff
        self.dropout, self.remat, self.attention_chunk = dropout, remat, attention_chunk
        self.seed = seed
        self.query = keras.layers.Dense(d_model, name="query")
        self.key = keras.layers.Dense(d_model, name="key")
        self.value = keras.layers.Dense(d_model, name="value")
        self.attention_output = keras.layers.Dense(d_model, name="attention_output")
        self.ffn_in = keras.layers.Dense(dff, activation="relu", name="ffn_in")
        self.ffn_out = keras.layers.Dense(d_model, name="ffn_out")
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="attention_norm")
        self.ffn_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="ffn_norm")
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape) -> None:
        for layer in (self.query, self.key, self.value, self.ffn_in, self.attention_norm):
            layer.build(input_shape)
        self.attention_output.build((*input_shape[:-1], self.d_model))
        self.ffn_out.build((*input_shape[:-1], self.dff))
        self.ffn_norm.build(input_shape)

    def call(self, inputs, training=False):
        if not training or self.dropout == 0:
            return self._block(inputs, None, None)
        masks = [self._dropout_mask(inputs) for _ in range(2)]
        if self.remat:
            return tf.recompute_grad(self._block)(inputs, *masks)
        return self._block(inputs, *masks)

    def _dropout_mask(self, inputs):
        keep = keras.random.uniform(ops.shape(inputs), seed=self.seed_generator) >= self.dropout
        return ops.cast(keep, self.compute_dtype) / ops.cast(1.0 - self.dropout, self.compute_dtype)

    def _block(self, inputs, attention_mask, ffn_mask):
        attended = self._attention(inputs)
        if attention_mask is not None:
            attended = attended * attention_mask
        hidden = self.attention_norm(inputs + attended)
        fed = self.ffn_out(self.ffn_in(hidden))
        if ffn_mask is not None:
            fed = fed * ffn_mask
        return self.ffn_norm(hidden + fed)

    def _attention(self, inputs):
        query, key, value = (
            self._heads(dense(inputs)) for dense in (self.query, self.key, self.value)
        )
        length = inputs.shape[-2]
        chunk = self.attention_chunk
        if chunk is None or chunk >= length:
            attended = _attend(query, key, value)
        else:
            attend = tf.recompute_grad(_attend)
            parts = [
                attend(query[:, :, s : s + chunk], key, value) for s in range(0, length, chunk)
            ]
            attended = ops.concatenate(parts, axis=2)
        merged = ops.transpose(attended, (0, 2, 1, 3))
        merged = ops.reshape(merged, (-1, length, self.d_model))
        return self.attention_output(merged)

    def _heads(self, x):
        """[B, L, d] -> [B, heads, L, d / heads]."""
        x = ops.reshape(x, (-1, x.shape[-2], self.num_heads, self.d_model // self.num_heads))
        return ops.transpose(x, (0, 2, 1, 3))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "d_model": self.d_model,
            "num_heads": self.num_heads,
            "dff": self.dff,
            "dropout": self.dropout,
            "remat": self.remat,
            "attention_chunk": self.attention_chunk,
            "seed": self.seed,
        }


def _attend(query, key, value):
    """softmax(Q K^T / sqrt(d)) V: [B, heads, Lq, d] queries over [B, heads, L, d] keys."""
    scale = ops.cast(1.0 / math.sqrt(query.shape[-1]), query.dtype)
    scores = ops.matmul(query * scale, ops.transpose(key, (0, 1, 3, 2)))
    return ops.matmul(ops.softmax(scores, axis=-1), value)
