"""Where a stage's samples come from: the features dir, the model config and the shuffle seed.

Everything here is a path or a config, so a stage can be rebuilt in a child process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from jetx.config import EVAL_BATCH, ModelConfig


@dataclass(frozen=True)
class StageData:
    """Where a stage's samples come from, and the model they feed.

    Args:
        features_dir: a features dir written by `jetx.features.build.build_features`.
        model: the model config (a preset's model with the variant applied).
        variant: the variant's name, for messages and records.
        seed: shuffle and initialisation seed.
        max_train_samples, max_eval_samples: caps on the train and val splits (newest kept).
        eval_batch: batch size of the validation pass.
    """

    features_dir: Path
    model: ModelConfig
    variant: str = "full"
    seed: int = 0
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    eval_batch: int = EVAL_BATCH

    def train_batches(self, micro_batch: int, epoch: int, skip_batches: int) -> tf.data.Dataset:
        """The epoch's shuffled micro-batches from batch `skip_batches` on (full batches only)."""
        from jetx.training.windows import make_dataset

        return make_dataset(
            self.features_dir,
            "train",
            self.model,
            micro_batch,
            shuffle=True,
            seed=self.seed,
            epoch=epoch,
            skip_batches=skip_batches,
            max_samples=self.max_train_samples,
            drop_remainder=True,
        )

    def val_batches(self) -> tf.data.Dataset:
        """The validation split in order."""
        from jetx.training.windows import make_dataset

        return make_dataset(
            self.features_dir, "val", self.model, self.eval_batch, max_samples=self.max_eval_samples
        )

    def num_train(self) -> int:
        """Train samples per epoch (after the cap)."""
        from jetx.training.windows import num_samples

        return num_samples(self.features_dir, "train", self.max_train_samples)

    def build_model(self) -> keras.Model:
        """A freshly initialised model (seeded by `seed`)."""
        from jetx.model.network import build_model

        return build_model(self.model)
