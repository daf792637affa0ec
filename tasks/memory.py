"""Tasks: the memory audit (measured vs predicted peak per setting) and its table artifact."""

from pathlib import Path

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact

from jetx.config import get_preset
from jetx.io import exclusive, write_json
from jetx.model.footprint import measure_step, predict_peak
from jetx.training.memory_plan import measure_line
from tasks.caching import cached_task
from tasks.records import AuditRecord, MemoryPlanRecord

AUDIT_DESCRIPTION = "Peak memory of one training step: predicted, and measured with its source"


@cached_task("measure_memory")
def measure_memory(
    preset: str, variant: str, micro_batches: list[int], precision: str, out_dir: Path
) -> AuditRecord:
    """Measure one real training step per micro-batch (each in a fresh process) and predict it.

    Cached on the arguments and this code: a measurement of the same setting is not redone.
    """
    config = get_preset(preset).model_for(variant)
    rows = []
    for micro_batch in sorted(set(micro_batches), reverse=True):
        measured = measure_step(config, micro_batch, precision)
        predicted = predict_peak(config, micro_batch, precision).predicted_peak_bytes
        rows.append(audit_row(variant, predicted, measured))
    name = f"audit-{preset}-{variant}-{precision}.json"
    with exclusive(Path(out_dir), what="MEMORY_DIR", wait=None):  # one writer at a time
        write_json(Path(out_dir) / name, rows)
    for row in rows:
        get_run_logger().info(
            "Memory audit of %s, micro-batch %d: predicted %.1f MiB, measured %s MiB (%s)",
            variant,
            row["micro_batch"],
            row["predicted_mib"],
            row["measured_mib"],
            row["memory_source"],
        )
    return AuditRecord.of(out_dir, [name], rows=rows)


@cached_task("plan_memory")
def plan_memory(
    preset: str, variant: str, precision: str | None, device: str, out_dir: Path
) -> MemoryPlanRecord:
    """Measure the engine's step at the probe pair on `device` and fit the plan's line.

    One probe pair per model, precision and device (all in the key: a plan measured on a CPU
    is not served to a GPU); the analytic model is the fallback where no device step can run.
    """
    from jetx.training.precision import check_precision  # Keras: after configure_tensorflow

    config = get_preset(preset).model_for(variant)
    precision = check_precision(precision)
    line = measure_line(config, get_preset(preset).stages[0], precision)
    name = f"plan-{preset}-{variant}-{precision}.json"
    with exclusive(Path(out_dir), what="MEMORY_DIR", wait=None):
        write_json(Path(out_dir) / name, line.to_dict())
    get_run_logger().info(
        "Memory plan of %s (%s): %s on %s, peak = %.3f GiB + %.2f MiB x micro-batch %s",
        variant,
        precision,
        line.method,
        line.device or "no device",
        line.fixed_bytes / 2**30,
        line.per_sample_bytes / 2**20,
        line.note,
    )
    return MemoryPlanRecord.of(out_dir, [name], line=line.to_dict())


def audit_row(variant: str, predicted: int, measured: dict) -> dict:
    """One printable row: the prediction beside the allocator's figure, and the RSS apart."""
    allocator = measured["measured_peak_bytes"]
    rss = measured["rss_peak_bytes"]
    return {
        "variant": variant,
        "micro_batch": measured["micro_batch"],
        "precision": measured["precision"],
        "params": measured["params"],
        "predicted_mib": round(predicted / 2**20, 2),
        "measured_mib": None if allocator is None else round(allocator / 2**20, 2),
        "predicted/measured": None if allocator is None else round(predicted / allocator, 2),
        "memory_source": measured["memory_source"],
        "rss_peak_mib": None if rss is None else round(rss / 2**20, 1),
        "step_seconds": round(measured["step_seconds"], 4),
        "device": measured["device"],
    }


@task(name="audit_memory")
def audit_memory(
    preset: str, variant: str, micro_batches: list[int], precision: str, out_dir: Path
) -> AuditRecord:
    """The memory audit of a run's variant, and its table among this step's artifacts.

    Not cached itself, so that the table is published in every flow run; the measurement it
    calls (`measure_memory`, one fresh process per micro-batch) is.
    """
    audit = measure_memory(preset, variant, micro_batches, precision, out_dir)
    create_table_artifact(audit.rows, key="memory-audit", description=AUDIT_DESCRIPTION)
    return audit


@task(name="publish_audit")
def publish_audit(audits: list[AuditRecord], key: str = "memory-audit") -> str:
    """Publish the rows of `audits` as one table artifact; return its key."""
    rows = [row for audit in audits for row in audit.rows]
    create_table_artifact(rows, key=key, description=AUDIT_DESCRIPTION)
    return key
