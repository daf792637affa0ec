"""The process's TensorFlow runtime: its environment before import, its device, its memory figures.

TensorFlow keeps allocator statistics (`tf.config.experimental.get_memory_info`) on a GPU always,
but on a CPU only when its oneDNN path is on, which TF does by default only on CPUs with AVX-512
VNNI/BF16, AVX-VNNI or AMX, or when the CPU allocator is its BFC allocator
(`TF_CPU_ALLOCATOR_USE_BFC=true`). Both are read once, when TensorFlow is imported, so the
processes jetx owns (the command line, a stage's child process, the memory probe) call
`configure_tensorflow` first and get a BFC allocator on the CPU: its peak counts every tensor
TensorFlow allocates, with oneDNN on or off. Where no allocator figure can be had (a library
user's process that imported TensorFlow first, say) or the figure is not credible (below the
bytes of the model's own variables: allocations that bypass the allocator), `read_memory` falls
back to the process's peak RSS and says so in the record. A memory figure never raises.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

logger = logging.getLogger(__name__)

#: Environment defaults of a jetx process, set before TensorFlow is imported; a user's own
#: setting wins. The BFC allocator makes the CPU's allocator statistics exist on every x86 CPU.
TF_ENVIRONMENT = {"TF_CPU_ALLOCATOR_USE_BFC": "true"}
#: TensorFlow's C++ log level: 2 hides its info and warning lines, 3 its errors too (the
#: `failed call to cuInit` of a machine without a GPU). `-v` keeps the errors.
QUIET_LOG_LEVEL, VERBOSE_LOG_LEVEL = "3", "2"
#: Lines TensorFlow writes to stderr while it loads, before its log level applies: absl's
#: pre-initialisation warning and CUDA's probing on a machine without a GPU.
_LOAD_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub\.cc.*Could not find cuda drivers|"
    r"cuda_platform\.cc.*failed call to cuInit|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation placer already registered|cpu_feature_guard\.cc|To enable the following "
    r"instructions|oneDNN custom operations are on"
)

#: Cap GPU:0 at this many MiB (a logical device with a memory limit) in every process jetx owns,
#: so that a bigger card behaves like a smaller one: bench/gpu_check.py sets 15 GiB, a T4's.
GPU_MEMORY_LIMIT_ENV = "JETX_GPU_MEMORY_LIMIT_MIB"

MemorySource = Literal["allocator", "rss", "none"]
_quiet = True


def configure_tensorflow(*, verbose: bool = False) -> bool:
    """Set `TF_ENVIRONMENT` and TensorFlow's log level, each unless the user set it already.

    Call it first thing in a process that jetx owns (the command line, a stage's child, the
    memory probe), before anything imports TensorFlow.

    Args:
        verbose: keep TensorFlow's C++ errors and its load-time lines (`-v`).

    Returns:
        False when TensorFlow was imported already, so that the settings came too late (the
        memory figures then fall back as the module docstring says).
    """
    global _quiet
    _quiet = not verbose
    for name, value in TF_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", VERBOSE_LOG_LEVEL if verbose else QUIET_LOG_LEVEL)
    if "tensorflow" in sys.modules:
        logger.debug("TensorFlow was imported before configure_tensorflow: settings too late")
        return False
    return True


def import_tensorflow() -> ModuleType:
    """Import TensorFlow, keeping the lines it writes while it loads off a quiet first screen.

    Those lines (absl's pre-initialisation warning, "Could not find cuda drivers") ignore
    TF_CPP_MIN_LOG_LEVEL, so stderr is captured during the import and replayed without them:
    anything else TensorFlow or Python writes meanwhile still reaches the user.
    """
    if "tensorflow" in sys.modules or not _quiet:
        import tensorflow

        limit_gpu_memory()
        return tensorflow
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines():
                if not _LOAD_NOISE.search(line):
                    print(line, file=sys.stderr)
    limit_gpu_memory()
    return tensorflow


def limit_gpu_memory(mib: int | None = None) -> bool:
    """Make GPU:0 a logical device of `mib` MiB (default: `GPU_MEMORY_LIMIT_ENV`, if set).

    Must run before TensorFlow initialises the GPU (`import_tensorflow` calls it).

    Returns:
        True when the limit is in force; False without a limit, without a GPU, or when the GPU
        was initialised already (logged).
    """
    import tensorflow as tf

    mib = mib if mib is not None else int(os.environ.get(GPU_MEMORY_LIMIT_ENV) or 0)
    if not mib:
        return False
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return False
    try:
        tf.config.set_logical_device_configuration(
            gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=mib)]
        )
    except RuntimeError as error:
        logger.warning("GPU memory limit of %d MiB not set: %s", mib, error)
        return False
    logger.info("GPU:0 limited to %d MiB", mib)
    return True


def has_gpu() -> bool:
    """Whether TensorFlow sees a GPU (the one place that asks)."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def memory_device() -> str:
    """The device whose allocator is measured: GPU:0 when present, else CPU:0."""
    return "GPU:0" if has_gpu() else "CPU:0"


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process's own address space, in bytes; None if unknown.

    Linux's `ru_maxrss` survives `execve`, so a child started by a big parent (a flow process
    after an evaluation, say) would report the parent's peak; `VmHWM` belongs to the process's
    current address space and starts afresh at exec. Elsewhere `ru_maxrss` is the figure (KiB
    on Linux, bytes on macOS); on a system without `resource` there is none.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


#: Test hook: a file to read the OOM-kill counter from instead of the cgroup's (a stand-in for
#: the kernel's counter where no real OOM kill can be made).
OOM_EVENTS_ENV = "JETX_OOM_EVENTS"
_CGROUP = Path("/sys/fs/cgroup")


def oom_kill_count() -> int | None:
    """How many processes of this process's memory cgroup the kernel OOM-killed so far.

    A child killed by SIGKILL was killed for memory exactly when this count rose meanwhile;
    without a cgroup to read (not Linux, no memory controller) it is None, and a SIGKILL must
    be taken for an OOM kill, the common cause. Reads `oom_kill` of cgroup v2's memory.events
    or of cgroup v1's memory.oom_control, for the cgroup in /proc/self/cgroup or the mount's own.
    """
    for path in _oom_files():
        try:
            text = path.read_text(encoding="ascii")
        except OSError:
            continue
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill" and value.strip().isdigit():
                return int(value)
    return None


def _oom_files() -> list[Path]:
    if os.environ.get(OOM_EVENTS_ENV):
        return [Path(os.environ[OOM_EVENTS_ENV])]
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="ascii").splitlines()
    except OSError:
        return []
    files = []
    for line in lines:
        _, controllers, group = line.split(":", 2)
        if controllers == "":
            files.append(_CGROUP / group.lstrip("/") / "memory.events")
            files.append(_CGROUP / "memory.events")
        elif "memory" in controllers.split(","):
            files.append(_CGROUP / "memory" / group.lstrip("/") / "memory.oom_control")
            files.append(_CGROUP / "memory" / "memory.oom_control")
    return files


@dataclass(frozen=True)
class MemoryReading:
    """One peak-memory figure and where it comes from.

    Args:
        source: "allocator" (TensorFlow's allocator peak on `device`, what the memory model
            predicts), "rss" (the process's peak RSS: TensorFlow's runtime included, not
            comparable with a prediction) or "none" (no figure on this system).
        device: the device measured ("CPU:0", "GPU:0"; the RSS is the host's).
        peak_bytes: the peak by `source`; None only for "none".
        rss_peak_bytes: the process's peak RSS, whatever the source.
        note: why the allocator's figure was not used, when it was not.
    """

    source: MemorySource
    device: str
    peak_bytes: int | None
    rss_peak_bytes: int | None
    note: str = ""

    def to_logs(self) -> dict[str, Any]:
        """The reading as the `memory_*` keys of an epoch's logs (and of metrics.jsonl)."""
        return {f"memory_{k}" if k != "rss_peak_bytes" else k: v for k, v in asdict(self).items()}


def variable_bytes(variables) -> int:
    """Bytes of a list of Keras or tf variables (what `read_memory`'s floor is made of)."""
    import numpy as np

    return sum(
        int(np.prod(v.shape)) * np.dtype(getattr(v.dtype, "name", str(v.dtype))).itemsize
        for v in variables
    )  # a Keras variable's dtype is a string, a tf.Variable's a tf.DType


def reset_memory(device: str) -> bool:
    """Reset the allocator's peak on `device`; False when the allocator keeps no statistics."""
    import tensorflow as tf

    try:
        tf.config.experimental.reset_memory_stats(device)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        logger.debug("no allocator statistics on %s: %s", device, error)
        return False
    return True


def read_memory(device: str, *, floor_bytes: int = 0) -> MemoryReading:
    """The allocator's peak on `device` since the last reset, else the process's peak RSS.

    Args:
        device: "CPU:0" or "GPU:0".
        floor_bytes: bytes that certainly live in the allocator while it is measured (the
            model's variables); a peak below it means allocations bypass the allocator (as
            with oneDNN's own allocator and small tensors), so the figure is not used.

    Returns:
        A `MemoryReading`; it never raises.
    """
    import tensorflow as tf

    rss = peak_rss_bytes()
    try:
        peak = int(tf.config.experimental.get_memory_info(device)["peak"])
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        note = f"no allocator statistics on {device} ({str(error).splitlines()[0]})"
    else:
        if peak > max(floor_bytes, 0):
            return MemoryReading("allocator", device, peak, rss)
        note = (
            f"allocator peak {peak} bytes on {device} is not above the {floor_bytes} bytes of "
            "the model's own variables: allocations bypass the allocator"
        )
    if rss is None:
        return MemoryReading("none", device, None, None, note + "; no peak RSS on this system")
    return MemoryReading("rss", device, rss, rss, note)


def stage_peak(records: list[dict]) -> tuple[int | None, str]:
    """A stage's peak memory over its epoch records, and its source.

    The allocator's peak only when every epoch had one; otherwise the process's peak RSS,
    since a maximum over figures of two kinds would mean nothing.

    Returns:
        (peak bytes or None, "allocator" | "rss" | "none").
    """
    sources = {r.get("memory_source") or "none" for r in records}
    if len(sources) == 1:
        source, key = sources.pop(), "memory_peak_bytes"
    else:
        source, key = "rss", "rss_peak_bytes"
    peaks = [r[key] for r in records if r.get(key) is not None]
    return (max(peaks) if peaks else None), source
