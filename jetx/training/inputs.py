"""Where a stage's samples come from: the features dir, the preset, the variant and the seed.

Everything here is a path or a config, so a stage can be rebuilt in a child process, and the
run directory records it (run.json) so that `jetx evaluate RUN_DIR` needs nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from jetx.config import EVAL_BATCH, ModelConfig, Preset
from jetx.errors import JetxInputError
from jetx.layout import RunDir
from jetx.training.result import RunRecord, read_run_record, write_run_record


@dataclass(frozen=True)
class StageData:
    """Where a stage's samples come from, and the model they feed.

    Args:
        features_dir: a features dir written by `jetx.features.build.build_features`.
        preset: model size, stage schedule and sample caps (the newest samples are kept).
        variant: the model variant; None uses the preset's.
        seed: shuffle and initialisation seed.
        eval_batch: batch size of the validation pass.
    """

    features_dir: Path
    preset: Preset
    variant: str | None = None
    seed: int = 0
    eval_batch: int = EVAL_BATCH

    def __post_init__(self) -> None:
        object.__setattr__(self, "features_dir", Path(self.features_dir))
        object.__setattr__(self, "variant", self.variant or self.preset.variant)

    @property
    def model(self) -> ModelConfig:
        """The preset's model with the variant applied."""
        return self.preset.model_for(self.variant)

    @property
    def max_train_samples(self) -> int | None:
        return self.preset.max_train_samples

    @property
    def max_eval_samples(self) -> int | None:
        return self.preset.max_eval_samples

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

    def run_info(self, strategy: str = "none") -> RunRecord:
        """What run.json records: enough to evaluate or resume the run from its directory."""
        return {
            "preset": self.preset.to_dict(),
            "variant": self.variant,
            "seed": self.seed,
            "strategy": strategy,
            "features_dir": str(self.features_dir.resolve()),
        }

    @classmethod
    def from_run(cls, run_dir: Path, features_dir: Path | None = None) -> StageData:
        """The inputs a run was trained on, from its run.json (`features_dir` overrides)."""
        info = read_run_record(run_dir)
        return cls(
            Path(features_dir or info["features_dir"]),
            Preset.from_dict(info["preset"]),
            info["variant"],
            int(info["seed"]),
        )

    def record(self, run_dir: Path, strategy: str = "none") -> None:
        """Write run.json, or check that the run there was trained on the same settings.

        Raises:
            JetxInputError: `run_dir` holds a run of another preset, variant or seed.
        """
        run = RunDir(run_dir)
        info = json.loads(json.dumps(self.run_info(strategy)))  # as JSON reads it back
        if run.is_complete():
            recorded = read_run_record(run_dir)
            for key in ("preset", "variant", "seed"):
                if recorded.get(key) != info[key]:
                    raise JetxInputError(
                        f"{run_dir} holds a run with another {key} "
                        f"({_shown(recorded.get(key))}); resuming it needs the same. Received: "
                        f"{key}={_shown(info[key])}; give another run directory for a new run."
                    )
            if recorded == info:
                return
        write_run_record(run_dir, info)


def _shown(value: Any) -> str:
    if isinstance(value, dict):  # a preset: its name, and that its values are what differs
        return f"{value.get('name')!r} with other values"
    return repr(value)
