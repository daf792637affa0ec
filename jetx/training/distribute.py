"""Training across devices with tf.distribute: which strategy, and what a micro-batch means.

Strategies (`STRATEGIES`):

- "none" (default): `tf.distribute.get_strategy()`, one device, the engine as it always was.
- "mirrored": `MirroredStrategy` over every visible GPU; on a machine without GPUs, over the
  logical CPU devices (one, unless the CPU was split, see `CPU_DEVICES_ENV`).
- "multi-worker": `MultiWorkerMirroredStrategy` configured by the `TF_CONFIG` environment
  variable (cluster and task); every worker runs the same `jetx train` command.

The micro-batch is GLOBAL: a stage's `micro_batch` is the number of samples of one micro-step
over all replicas together, and each replica gets `micro_batch / replicas` of them (so the
replica count must divide it). One micro-step thus sees the same samples whatever the strategy,
the effective batch of docs/design.md's schedule stays `micro_batch x accumulation`, and the
checkpoint and resume bookkeeping (samples consumed in the epoch) is unchanged; a run can even
resume under another strategy. Each replica's loss is its mean over its slice divided by the
replica count (slices are equal: full batches only), so the sum over replicas is the mean over
the global micro-batch.

Batch normalisation is synchronised across replicas (`synchronize_batch_norm`): with the small
micro-batches of the schedule (2 in stage 3) per-replica statistics would be noisy or, at one
sample per replica, degenerate; synchronised, they are the global micro-batch's, as on one
device.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from jetx.config import STRATEGIES
from jetx.errors import JetxInputError
from jetx.runtime import has_gpu

logger = logging.getLogger(__name__)

#: Split the CPU into this many logical devices before TensorFlow starts (tests, benchmarks and
#: `mirrored` on a machine without GPUs); ignored when a GPU is visible.
CPU_DEVICES_ENV = "JETX_CPU_DEVICES"

_created: dict[str, tf.distribute.Strategy] = {}


@dataclass(frozen=True)
class Distribution:
    """A strategy by name, and how a global micro-batch is spread over its replicas.

    Args:
        name: one of `STRATEGIES`.
        strategy: the tf.distribute strategy.
    """

    name: str
    strategy: tf.distribute.Strategy

    @property
    def replicas(self) -> int:
        """Replicas in sync (devices over all workers)."""
        return self.strategy.num_replicas_in_sync

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the run's checkpoints and records (worker 0)."""
        resolver = getattr(self.strategy, "cluster_resolver", None)
        task = getattr(resolver, "task_type", None)
        return task in (None, "chief") or (task == "worker" and resolver.task_id == 0)

    def worker_dir(self, run_dir: Path) -> Path:
        """Where this process writes: the run dir for the chief, `run_dir/workerN` for others."""
        if self.is_chief:
            return run_dir
        return run_dir / f"worker{self.strategy.cluster_resolver.task_id}"

    def check_micro_batch(self, micro_batch: int) -> int:
        """The per-replica batch of a global micro-batch.

        Raises:
            JetxInputError: the replica count does not divide the micro-batch.
        """
        if micro_batch % self.replicas:
            raise JetxInputError(
                f"`micro_batch` is global and must be divisible by the {self.replicas} replicas "
                f"of strategy {self.name!r}. Received: micro_batch={micro_batch}"
            )
        return micro_batch // self.replicas

    def distribute(self, make_batches: Callable[[], tf.data.Dataset], micro_batch: int):
        """Spread a dataset of global micro-batches over the replicas, in order.

        Every input pipeline (one per worker) builds the same global batches and keeps its
        workers' slices; replica r of the run gets rows [r * b, (r + 1) * b) of each global
        micro-batch, b = micro_batch / replicas.

        Args:
            make_batches: builds the dataset of (inputs, targets), each [micro_batch, ...],
                full batches only.
            micro_batch: the global micro-batch.

        Returns:
            The dataset itself under "none", else a distributed dataset of per-replica values.
        """
        if self.name == "none":
            return make_batches()
        per_replica = self.check_micro_batch(micro_batch)

        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            local = self.replicas // context.num_input_pipelines
            first = context.input_pipeline_id * local * per_replica

            def split(*batch):
                def part(t):
                    rows = t[first : first + local * per_replica]
                    return tf.reshape(rows, [local, per_replica, *t.shape[1:]])

                return tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(part, batch))

            return make_batches().flat_map(split).prefetch(tf.data.AUTOTUNE)

        return self.strategy.distribute_datasets_from_function(dataset_fn)


def check_strategy(name: str) -> str:
    """Validate a strategy name.

    Raises:
        JetxInputError: a name not in `STRATEGIES`.
    """
    if name not in STRATEGIES:
        raise JetxInputError(f"`strategy` must be one of {list(STRATEGIES)}. Received: {name!r}")
    return name


def get_distribution(name: str = "none") -> Distribution:
    """The named strategy, created once per process (collective ops can be set up only once).

    Args:
        name: one of `STRATEGIES`.

    Returns:
        A `Distribution`.

    Raises:
        JetxInputError: an unknown name, or "multi-worker" without a valid `TF_CONFIG`.
    """
    check_strategy(name)
    if name == "none":
        return Distribution(name, tf.distribute.get_strategy())
    if name not in _created:
        split_cpu(int(os.environ.get(CPU_DEVICES_ENV) or 1))
        if name == "mirrored":
            _created[name] = tf.distribute.MirroredStrategy(_local_devices())
        else:
            check_tf_config(os.environ.get("TF_CONFIG"))
            _created[name] = tf.distribute.MultiWorkerMirroredStrategy()
    distribution = Distribution(name, _created[name])
    logger.info("strategy %s: %d replicas", name, distribution.replicas)
    return distribution


def check_tf_config(text: str | None) -> dict:
    """Parse and check a `TF_CONFIG` for "multi-worker".

    Returns:
        The parsed config: {"cluster": {"worker": [host:port, ...], ...}, "task": {"type",
        "index"}}.

    Raises:
        JetxInputError: missing, not JSON, no workers, or a task outside the cluster.
    """
    if not text:
        raise JetxInputError(
            "strategy 'multi-worker' needs the TF_CONFIG environment variable (cluster and task)."
        )
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        members = cluster[task["type"]]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise JetxInputError(
            'TF_CONFIG must be JSON like {"cluster": {"worker": ["host:port", ...]}, "task": '
            f'{{"type": "worker", "index": 0}}}} ({type(error).__name__}: {error}). '
            f"Received: {text!r}"
        ) from None
    if not isinstance(members, list) or not 0 <= index < len(members):
        raise JetxInputError(
            f"TF_CONFIG's task {task['type']}:{index} is not in its cluster. Received: {text!r}"
        )
    return config


def split_cpu(devices: int) -> None:
    """Split the CPU into `devices` logical devices (must run before any TensorFlow op).

    Does nothing for one device or when a GPU is visible.

    Raises:
        JetxInputError: fewer than one device, or TensorFlow already started.
    """
    if devices < 1:
        raise JetxInputError(f"`{CPU_DEVICES_ENV}` must be >= 1. Received: {devices}")
    if devices == 1 or has_gpu():
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    if len(tf.config.get_logical_device_configuration(cpu) or ()) == devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(devices)]
        )
    except RuntimeError:
        raise JetxInputError(
            f"the CPU can be split into {devices} devices only before TensorFlow starts; set "
            f"{CPU_DEVICES_ENV} in the environment of a fresh process."
        ) from None


def synchronize_batch_norm(model: keras.Model) -> int:
    """Make the functional model's BatchNormalization layers use the global batch's statistics.

    Returns:
        The number of layers changed.
    """
    layers = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.synchronized = True
    return len(layers)


def _local_devices() -> list[str]:
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
