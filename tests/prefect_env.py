"""Isolate Prefect for the test session; import this module before anything imports prefect.

`prefect_test_harness` gives each session a temporary database but not a temporary result
storage, so cache records of one session would be served to the next. Every Prefect path is
pointed at one temporary PREFECT_HOME here, and `free_port` finds a port for servers that tests
start (other Prefect servers may run on this machine).
"""

import os
import socket
import tempfile
from pathlib import Path

HOME = Path(tempfile.mkdtemp(prefix="jetx-prefect-"))
os.environ["PREFECT_HOME"] = str(HOME)
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(HOME / "storage")
os.environ["PREFECT_API_URL"] = ""
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# Ephemeral servers start in subprocesses of flow runs; on 2 busy cores 20 s is not enough.
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "120"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
