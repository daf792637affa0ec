"""A training child never outlives its task: parent killed, task interrupted, on any system.

The non-Linux path (no PR_SET_PDEATHSIG: only the child's watchdog of its parent pid, and the
parent's own cleanup) is tested with `sys.platform` patched in both processes; the Linux path
is tested by the flow tests, whose SIGKILLed flow takes its stage child with it.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tasks import child_process
from tasks.child_process import run_child

ROOT = Path(__file__).resolve().parents[1]
#: A child that takes the non-Linux path, then says so and sleeps.
SLEEPER = textwrap.dedent(
    """
    import sys, time
    sys.platform = "darwin"
    from tasks.child_process import die_with_parent
    die_with_parent()
    print("ready", flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its new parent) is dead for our purpose.
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "\nState:\tZ" in status.read_text())


def _wait_dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_child_dies_when_its_parent_is_killed_without_pdeathsig(tmp_path):
    parent_code = textwrap.dedent(
        f"""
        import sys
        sys.platform = "darwin"
        from pathlib import Path
        from tasks.child_process import run_child
        run_child([sys.executable, "-c", {SLEEPER!r}], env=dict(__import__("os").environ),
                  on_line=print, pid_file=Path({str(tmp_path / "child.pid")!r}))
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout.readline().strip() == "ready"
        child = int((tmp_path / "child.pid").read_text())
        assert _alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        assert _wait_dead(child), "the child outlived its SIGKILLed parent"
    finally:
        parent.kill()


def test_child_is_stopped_when_its_task_is_interrupted(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    pid_file = tmp_path / "child.pid"
    ready = threading.Event()

    def on_line(line: str) -> None:
        if line == "ready":
            ready.set()

    def on_poll() -> None:  # the task's thread is cancelled: an exception where it waits
        if ready.is_set():
            raise KeyboardInterrupt("task cancelled")

    with pytest.raises(KeyboardInterrupt):
        run_child(
            [sys.executable, "-c", SLEEPER],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            on_line=on_line,
            on_poll=on_poll,
            pid_file=pid_file,
            poll_seconds=0.1,
        )
    assert _wait_dead(int(pid_file.read_text()), timeout=2.0)


def test_a_child_ignoring_sigterm_is_killed_after_the_grace(tmp_path, monkeypatch):
    monkeypatch.setattr(child_process, "TERMINATE_GRACE", 0.5)
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    stubborn += "print('ready', flush=True); time.sleep(600)"
    lines: list[str] = []

    def on_poll() -> None:
        if lines:
            raise TimeoutError("task timed out")

    with pytest.raises(TimeoutError):
        run_child(
            [sys.executable, "-c", stubborn],
            env=dict(os.environ),
            on_line=lines.append,
            on_poll=on_poll,
            pid_file=tmp_path / "pid",
            poll_seconds=0.1,
        )
    assert _wait_dead(int((tmp_path / "pid").read_text()), timeout=5.0)


def test_output_is_streamed_line_by_line_and_its_tail_kept():
    lines: list[str] = []
    script = "import sys\nfor i in range(30): print(f'line {i}')\nsys.exit(3)"
    done = run_child([sys.executable, "-c", script], env=dict(os.environ), on_line=lines.append)
    assert done.returncode == 3
    assert lines == [f"line {i}" for i in range(30)]
    assert done.tail == tuple(lines[-child_process.TAIL_LINES :])


# --- issue 13: a SIGKILL is an out-of-memory kill only when the kernel counted one ----------

#: A child that bumps the (simulated) kernel OOM-kill counter when asked, then SIGKILLs itself.
SELF_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    if sys.argv[1] == "oom":
        with open(os.environ["JETX_OOM_EVENTS"], "w") as events:
            events.write("oom_kill 1\\n")
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize(
    ("how", "events", "kills", "oom"),
    [
        ("oom", "oom_kill 0\n", 1, True),  # the counter rose: the OOM killer
        ("other", "oom_kill 0\n", 0, False),  # it did not: an operator, a test
        ("other", None, None, True),  # no counter to read: a SIGKILL is taken for an OOM
    ],
)
def test_a_sigkill_is_an_oom_kill_when_the_simulated_kernel_counter_rises(
    tmp_path, monkeypatch, how, events, kills, oom
):
    # The kernel's own OOM kill cannot be made here; its counter is simulated (JETX_OOM_EVENTS).
    counter = tmp_path / "memory.events"
    if events is not None:
        counter.write_text(events)
    monkeypatch.setenv("JETX_OOM_EVENTS", str(counter))
    child = run_child([sys.executable, "-c", SELF_KILLER, how], env=dict(os.environ), on_line=print)
    assert child.returncode == -signal.SIGKILL
    assert (child.oom_kills, child.out_of_memory_kill) == (kills, oom)
