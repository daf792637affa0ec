"""A monitor's saved state: what early stopping and the learning-rate plateau each keep.

Keras's `EarlyStopping` and `ReduceLROnPlateau` keep their `best` and `wait` on the callback
object, which a SIGKILL takes with it, and they read `model.optimizer`, which the stage loop's
gradient accumulator owns. So the rule is theirs (a value improves on the best by more than
`min_delta` in the monitor's direction, else the wait grows until `patience`), its configuration
is `jetx.config.MonitorConfig`, and its state is this small record, saved in every checkpoint
(`jetx.training.state.TrainState`), one per monitor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jetx.config import MonitorConfig
from jetx.errors import JetxInputError


@dataclass
class MonitorState:
    """A monitor's saved state: its best value and the epochs waited since."""

    best: float | None = None
    wait: int = 0

    def update(self, config: MonitorConfig, logs: dict[str, Any]) -> bool:
        """Read this epoch's value of `config.monitor`; returns whether patience ran out (the
        wait then starts again, so that a plateau can act once per `patience` epochs).

        Raises:
            JetxInputError: the epoch's logs have no such key.
        """
        if config.monitor not in logs:
            raise JetxInputError(
                f"The monitored `{config.monitor}` is not in the epoch's logs "
                f"(found: {', '.join(sorted(logs))})"
            )
        value = float(logs[config.monitor])
        if config.improves(value, self.best):
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        if self.wait >= config.patience:
            self.wait = 0
            return True
        return False
