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

- `key_chunk` (with `attention_chunk`): `blockwise_attention`, a running maximum and sum over key
  chunks (Rabe and Staats 2021, "Self-attention does not need O(n^2) memory"; the backward pass of
  FlashAttention-2), so that no score block is bigger than one query chunk x one key chunk, in the
  forward or the backward pass.
- `ffn_chunk`: the block's position-wise part (output projection, residuals, LayerNorms and the
  feed-forward layer) runs over position chunks, each recomputed in the backward pass.

Dropout in the block is on the two residual branches (after attention and after the feed-forward
layer), not on the attention probabilities, so no L x L mask is ever made. Every dropout mask of
the model is drawn by `dropout_mask`, which makes the masks of the replicas of a tf.distribute
strategy those of one device at the same global batch.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from keras import ops


def dropout_mask(inputs, rate: float, seed_generator, dtype):
    """A dropout keep-mask (kept / (1 - rate), zeros elsewhere) for this replica's rows.

    Keras's Dropout draws the same mask on every replica of a strategy, as its seed state is
    mirrored, so the replicas' slices of a global batch would share their noise. Here every
    replica draws the mask of the whole global batch from that shared seed and keeps the rows
    of its own slice (replica r: rows [r * b, (r + 1) * b), as `jetx.training.distribute` deals
    them): the replicas' masks are independent, and the masks are exactly those one device
    draws for the same global batch. The price is a uniform draw over the global batch on each
    replica, a transient tensor.

    Args:
        inputs: [b, ...], this replica's part of the global batch.
        rate: the fraction dropped, in [0, 1).
        seed_generator: the layer's `keras.random.SeedGenerator`.
        dtype: dtype of the mask (the layer's compute dtype).

    Returns:
        A mask of the shape of `inputs`.
    """
    context = tf.distribute.get_replica_context()
    replicas = context.num_replicas_in_sync if context is not None else 1
    shape = tf.shape(inputs)
    rows = shape[0]
    draw = keras.random.uniform(
        tf.concat([[rows * replicas], shape[1:]], axis=0), seed=seed_generator, dtype="float32"
    )
    if replicas > 1:
        first = tf.cast(context.replica_id_in_sync_group, tf.int32) * rows
        draw = draw[first : first + rows]
    keep = ops.cast(draw >= rate, dtype)
    return keep / ops.cast(1.0 - rate, dtype)


@keras.saving.register_keras_serializable(package="jetx")
class ReplicaDropout(keras.layers.Layer):
    """Dropout whose masks do not repeat across replicas (`dropout_mask`), else Keras's Dropout.

    Args:
        rate: the fraction of inputs dropped in training.
        seed: seed of the masks (None: drawn from Keras's global seed).
    """

    def __init__(self, rate: float, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.rate, self.seed = rate, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        return inputs * dropout_mask(inputs, self.rate, self.seed_generator, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


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
        key_chunk: key positions per chunk of `blockwise_attention` (needs `attention_chunk`);
            None attends each query chunk to all keys at once.
        ffn_chunk: positions per chunk of the block's position-wise part; None: all at once.
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
        key_chunk: int | None = None,
        ffn_chunk: int | None = None,
        seed: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.d_model, self.num_heads, self.dff = d_model, num_heads, dff
        self.dropout, self.remat, self.attention_chunk = dropout, remat, attention_chunk
        self.key_chunk, self.ffn_chunk = key_chunk, ffn_chunk
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
        masks = [self._dropout_mask(inputs) for _ in range(2)] if training and self.dropout else []
        block = tf.recompute_grad(self._block) if training and self.remat else self._block
        return block(inputs, *masks)

    def _dropout_mask(self, inputs):
        return dropout_mask(inputs, self.dropout, self.seed_generator, self.compute_dtype)

    def _block(self, inputs, *masks):
        """The block on [B, L, d]; `masks` are the two residual dropouts' (none: no dropout)."""
        merged = self._attention(inputs)
        length, chunk = inputs.shape[-2], self.ffn_chunk
        if chunk is None or chunk >= length:
            return self._position_wise(inputs, merged, *masks)
        # tf.split, not slicing: the gradient of a split is one concatenation, while each
        # slice's gradient would be a zero-padded tensor of the whole length.
        sizes = [chunk] * (length // chunk) + ([length % chunk] if length % chunk else [])
        pieces = [tf.split(t, sizes, axis=1) for t in (inputs, merged, *masks)]
        position_wise = tf.recompute_grad(self._position_wise)
        parts = zip(*pieces, strict=True)
        return ops.concatenate([position_wise(*part) for part in parts], axis=1)

    def _position_wise(self, inputs, merged, *masks):
        """Output projection, residual, LayerNorm, feed-forward, residual, LayerNorm."""
        attended = self.attention_output(merged)
        if masks:
            attended = attended * masks[0]
        hidden = self.attention_norm(inputs + attended)
        fed = self.ffn_out(self.ffn_in(hidden))
        if masks:
            fed = fed * masks[1]
        return self.ffn_norm(hidden + fed)

    def _attention(self, inputs):
        """Multi-head attention of [B, L, d], heads merged back: [B, L, d] (before the output
        projection)."""
        if self.key_chunk is not None:
            return blockwise_attention(
                self.query(inputs),
                self.key(inputs),
                self.value(inputs),
                num_heads=self.num_heads,
                query_chunk=self.attention_chunk,
                key_chunk=self.key_chunk,
            )
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
        return ops.reshape(merged, (-1, length, self.d_model))

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
            "key_chunk": self.key_chunk,
            "ffn_chunk": self.ffn_chunk,
            "seed": self.seed,
        }


def _attend(query, key, value):
    """softmax(Q K^T / sqrt(d)) V: [B, heads, Lq, d] queries over [B, heads, L, d] keys."""
    # A Python scale takes the query's dtype exactly (ops.cast would go through float32).
    scale = 1.0 / math.sqrt(query.shape[-1])
    scores = ops.matmul(query * scale, ops.transpose(key, (0, 1, 3, 2)))
    return ops.matmul(ops.softmax(scores, axis=-1), value)


def blockwise_attention(query, key, value, *, num_heads: int, query_chunk: int, key_chunk: int):
    """softmax(Q K^T / sqrt(d_head)) V, one query chunk x key chunk score block at a time.

    Written with `tf.custom_gradient` and `tf.while_loop` (one iteration at a time) because
    TensorFlow has neither flash attention nor a memory-efficient attention op: the forward pass
    keeps a running maximum, sum and weighted value sum per query across the key chunks and
    saves only the output and each query's log-sum-exp; the backward pass recomputes each score
    block from them (FlashAttention-2's backward). A Python loop would not do: the graph
    executor may run independent chunks at once, and autodiff through a while loop keeps every
    iteration's intermediates. Scores, probabilities and sums are float32 under mixed precision.

    Args:
        query, key, value: [B, L, d] projections, heads merged (d = num_heads x d_head).
        num_heads: heads.
        query_chunk, key_chunk: positions per chunk; each must divide L.

    Returns:
        [B, L, d], heads merged, in the dtype of `query`.
    """
    shape = _ChunkShape(query, num_heads, query_chunk, key_chunk)

    @tf.custom_gradient
    def attend(q, k, v):
        out, lse = _blockwise_forward(q, k, v, shape)

        def grad(d_out):
            return _blockwise_backward(q, k, v, out, lse, d_out, shape)

        return out, grad

    return attend(query, key, value)


class _ChunkShape:
    """Sizes of a blockwise attention (length, width, heads, the two chunk sizes), its dtype."""

    def __init__(self, x, heads: int, query_chunk: int, key_chunk: int):
        length, width = x.shape[-2], x.shape[-1]
        if length % query_chunk or length % key_chunk:
            raise ValueError(
                f"query_chunk {query_chunk} and key_chunk {key_chunk} must divide the length "
                f"{length}."
            )
        self.length, self.width, self.heads = length, width, heads
        self.query_chunk, self.key_chunk = query_chunk, key_chunk
        self.scale = 1.0 / math.sqrt(width // heads)
        #: float32 under mixed precision, else the inputs' own dtype (float64 stays float64).
        self.dtype = tf.float32 if x.dtype in (tf.float16, tf.bfloat16) else x.dtype

    def heads_of(self, x, index, size: int):
        """Chunk `index` of `size` positions of [B, L, d]: [B, heads, size, d_head] in `dtype`."""
        part = tf.slice(x, [0, index * size, 0], [-1, size, -1])
        part = tf.reshape(part, [-1, size, self.heads, self.width // self.heads])
        return tf.transpose(tf.cast(part, self.dtype), [0, 2, 1, 3])

    def merged(self, chunks, dtype):
        """Stacked [n, B, heads, size, d_head] chunks -> [B, n x size, d] in `dtype`."""
        x = tf.transpose(chunks, [1, 0, 3, 2, 4])  # [B, n, size, heads, d_head]
        return tf.cast(tf.reshape(x, [-1, self.length, self.width]), dtype)


def _loop(count: int, body, state):
    """`tf.while_loop` over range(count), one iteration at a time (memory: no overlap)."""
    return tf.while_loop(
        lambda i, *_: i < count, body, (tf.constant(0), *state), parallel_iterations=1
    )[1:]


def _blockwise_forward(q, k, v, shape: _ChunkShape):
    qc, kc = shape.query_chunk, shape.key_chunk

    def over_queries(i, outs, lses):
        query = shape.heads_of(q, i, qc) * shape.scale

        def over_keys(j, top, total, acc):
            scores = tf.matmul(query, shape.heads_of(k, j, kc), transpose_b=True)
            new_top = tf.maximum(top, tf.reduce_max(scores, axis=-1))
            probs = tf.exp(scores - new_top[..., None])
            fade = tf.exp(top - new_top)
            acc = acc * fade[..., None] + tf.matmul(probs, shape.heads_of(v, j, kc))
            return j + 1, new_top, total * fade + tf.reduce_sum(probs, axis=-1), acc

        rows = tf.shape(query)[:3]
        start = (tf.fill(rows, tf.constant(-math.inf, shape.dtype)), tf.zeros(rows, shape.dtype))
        start = (*start, tf.zeros_like(query))
        top, total, acc = _loop(shape.length // kc, over_keys, start)
        return i + 1, outs.write(i, acc / total[..., None]), lses.write(i, top + tf.math.log(total))

    n = shape.length // qc
    outs = tf.TensorArray(shape.dtype, size=n)
    lses = tf.TensorArray(shape.dtype, size=n)
    outs, lses = _loop(n, over_queries, (outs, lses))
    return shape.merged(outs.stack(), q.dtype), lses.stack()


def _blockwise_backward(q, k, v, out, lse, d_out, shape: _ChunkShape):
    qc, kc, nk = shape.query_chunk, shape.key_chunk, shape.length // shape.key_chunk

    def over_queries(i, d_queries, d_keys, d_values):
        query, d_o = shape.heads_of(q, i, qc), shape.heads_of(d_out, i, qc)
        delta = tf.reduce_sum(d_o * shape.heads_of(out, i, qc), axis=-1)[..., None]
        row_lse = lse[i][..., None]

        def over_keys(j, d_query, d_keys, d_values):
            key, value = shape.heads_of(k, j, kc), shape.heads_of(v, j, kc)
            probs = tf.exp(tf.matmul(query * shape.scale, key, transpose_b=True) - row_lse)
            d_scores = probs * (tf.matmul(d_o, value, transpose_b=True) - delta) * shape.scale
            d_value = tf.matmul(probs, d_o, transpose_a=True)
            d_key = tf.matmul(d_scores, query, transpose_a=True)
            d_keys = tf.tensor_scatter_nd_add(d_keys, [[j]], d_key[None])
            d_values = tf.tensor_scatter_nd_add(d_values, [[j]], d_value[None])
            return j + 1, d_query + tf.matmul(d_scores, key), d_keys, d_values

        d_query, d_keys, d_values = _loop(nk, over_keys, (tf.zeros_like(query), d_keys, d_values))
        return i + 1, d_queries.write(i, d_query), d_keys, d_values

    batch = tf.shape(q)[0]
    zeros = tf.zeros([nk, batch, shape.heads, kc, shape.width // shape.heads], shape.dtype)
    d_queries = tf.TensorArray(shape.dtype, size=shape.length // qc)
    d_queries, d_keys, d_values = _loop(
        shape.length // qc, over_queries, (d_queries, zeros, tf.zeros_like(zeros))
    )
    return (
        shape.merged(d_queries.stack(), q.dtype),
        shape.merged(d_keys, k.dtype),
        shape.merged(d_values, v.dtype),
    )
