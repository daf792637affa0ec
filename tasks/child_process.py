"""A training child process that reports every line it writes and never outlives its task.

Parent side (`run_child`): the child's stdout and stderr are read line by line as they come and
handed to a callback (the task's run logger, so that epoch lines and warnings reach the Prefect
UI), the last lines are kept for the failure message, and a child still running when the task
ends for any reason (an error, a timeout, a cancellation) is terminated, then killed. No
`preexec_fn`: Python documents it as unsafe in a threaded parent, and Prefect runs tasks in
threads.

Child side (`die_with_parent`): the parent may die without a chance to clean up (a SIGKILL of the
flow process, a cancelled flow run whose process the worker kills). On Linux the kernel sends
the child SIGKILL when its parent dies (`PR_SET_PDEATHSIG`, set by the child itself); on every
system a watchdog thread also polls the parent pid and kills the child once it has changed.

This module never imports Prefect: the child imports it too.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jetx.runtime import oom_kill_count

logger = logging.getLogger(__name__)

#: The parent's pid as the child should see it; the child dies once its parent is another.
PARENT_ENV = "JETX_PARENT_PID"
#: Lines of the child's output kept for a failure message.
TAIL_LINES = 20
#: Seconds a terminated child gets to exit before it is killed.
TERMINATE_GRACE = 10.0
_PR_SET_PDEATHSIG = 1
_WATCH_SECONDS = 0.5


@dataclass(frozen=True)
class ChildExit:
    """How a child ended: its exit code (-N for signal N) and its last lines of output.

    `oom_kills` is how many processes the kernel OOM-killed in this cgroup while the child ran
    (`jetx.runtime.oom_kill_count`), None where the kernel does not say.
    """

    returncode: int
    tail: tuple[str, ...]
    oom_kills: int | None = None

    @property
    def out_of_memory_kill(self) -> bool:
        """Killed by SIGKILL, and for memory (or, where the kernel does not say, presumably)."""
        return self.returncode == -signal.SIGKILL and self.oom_kills != 0


def run_child(
    command: list[str],
    *,
    env: dict[str, str],
    on_line: Callable[[str], None],
    on_poll: Callable[[], None] = lambda: None,
    pid_file: Path | None = None,
    poll_seconds: float = 0.5,
) -> ChildExit:
    """Run `command` to its end, streaming its output; terminate it if this call is interrupted.

    Args:
        command: the child's argv.
        env: its environment (`PARENT_ENV` is added).
        on_line: called with each line the child writes (stdout and stderr, merged).
        on_poll: called about every `poll_seconds` while the child runs, and once at its end.
        pid_file: where to write the child's pid (for tests and operators).
        poll_seconds: the polling period.

    Returns:
        The child's `ChildExit`.
    """
    env = {**env, PARENT_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    kills_before = oom_kill_count()
    child = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    reader = threading.Thread(target=_pump, args=(child, on_line, tail), daemon=True)
    reader.start()
    try:
        if pid_file is not None:
            pid_file.write_text(f"{child.pid}\n")
        while child.poll() is None:
            on_poll()
            time.sleep(poll_seconds)
        reader.join(timeout=5.0)
        on_poll()
        kills_after = oom_kill_count()
        known = kills_before is not None and kills_after is not None
        return ChildExit(
            child.returncode, tuple(tail), kills_after - kills_before if known else None
        )
    finally:
        stop_child(child)


def stop_child(child: subprocess.Popen, grace: float = TERMINATE_GRACE) -> None:
    """Terminate a child that is still running, then kill it after `grace` seconds."""
    if child.poll() is not None:
        return
    logger.warning("stopping child pid %d", child.pid)
    child.terminate()
    try:
        child.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def _pump(child: subprocess.Popen, on_line: Callable[[str], None], tail: deque) -> None:
    for raw in child.stdout:
        line = raw.rstrip("\n")
        tail.append(line)
        try:
            on_line(line)
        except Exception:  # a logging failure must not stop the child's output being drained
            logger.exception("could not forward a line of the child's output")
    child.stdout.close()


def die_with_parent() -> None:
    """In a child of `run_child`: die as soon as the parent process is gone (see the module doc)."""
    expected = int(os.environ.get(PARENT_ENV) or 0)
    if not expected:
        return
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != expected:  # the parent died before the line above
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(expected,), daemon=True).start()


def _watch_parent(expected: int) -> None:
    while os.getppid() == expected:
        time.sleep(_WATCH_SECONDS)
    os._exit(1)  # ends every thread at once, on every system
