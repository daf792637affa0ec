"""The `jetx-audit` flow (deployment `jetx-audit/memory`): peak memory of every variant.

Each variant's training step is measured in a fresh process and predicted analytically at the
same micro-batch and precision; the rows are published as the `memory-audit` table artifact.
"""

from pathlib import Path
from typing import Literal

from prefect import flow

import tasks.logs  # noqa: F401  (the jetx.* loggers reach the run's logs)
from jetx.config import PRECISIONS, PRESETS, VARIANTS, get_preset
from tasks.caching import RECORDS
from tasks.memory import measure_memory, publish_audit
from tasks.records import AuditRecord

VariantName = Literal[*VARIANTS]
PresetName = Literal[*PRESETS]
PrecisionName = Literal[*PRECISIONS]


@flow(name="jetx-audit", flow_run_name="jetx-audit-{preset}", result_serializer=RECORDS)
def audit(
    preset: PresetName = "tiny",
    variants: tuple[VariantName, ...] = tuple(VARIANTS),
    micro_batch: int | None = None,
    precision: PrecisionName = "float32",
    out: Path = Path("runs/audit"),
) -> list[AuditRecord]:
    """Measure and predict one training step of each of `variants`.

    Args:
        preset: model sizes (`full` is docs/design.md's model; measure it where it will train).
        variants: variants to audit.
        micro_batch: samples per step; None uses stage 1's micro-batch of the preset.
        precision: dtype policy of the step.
        out: where each variant's audit JSON goes.
    """
    micro_batch = micro_batch or get_preset(preset).stages[0].micro_batch
    audits = [measure_memory(preset, v, [micro_batch], precision, out) for v in variants]
    publish_audit(audits)
    return audits
