"""A real local Prefect server, work pool and worker for end-to-end tests, and their teardown.

Every process runs in its own session (process group) so that teardown reaches the children it
spawned (the server's uvicorn, the worker's flow-run processes) and nothing else. A worker stops
promptly only after SIGTERM then SIGINT, so `stop` sends both before it kills.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prefect_env import free_port

PREFECT = str(Path(sys.executable).with_name("prefect"))


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM, then SIGINT, then SIGKILL the process group of `process`, waiting between."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):  # children left after the leader exited
        os.killpg(process.pid, signal.SIGKILL)


class LocalPrefect:
    """A server on a free 127.0.0.1 port with its own PREFECT_HOME, plus CLI and workers.

    `ui` serves Prefect's UI at the server's root; `settings` are extra PREFECT_* variables of
    every process started here (a faster scheduler loop, say).
    """

    def __init__(self, home: Path, cwd: Path, logs: Path, *, ui: bool = False, **settings: str):
        self.port = free_port()
        self.cwd, self.logs = cwd, logs
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "true" if ui else "false",
            "PWD": str(cwd),
            **settings,
        }
        self.processes: list[subprocess.Popen] = []
        logs.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, *args: str) -> subprocess.Popen:
        """Start `prefect ARGS` in the background, output to LOGS/NAME.log."""
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            [PREFECT, *args],
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def api(self, method: str, path: str, body: dict | None = None) -> object:
        """One call of the server's REST API, its JSON answer decoded."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.api_url}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def cli(
        self, *args: str, timeout: float = 600, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run `prefect ARGS` to its end and return it (stdout and stderr as text)."""
        return subprocess.run(
            [PREFECT, *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start_server(self, timeout: float = 90) -> None:
        self.spawn("server", "server", "start", "--host", "127.0.0.1", "--port", str(self.port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"Prefect server on port {self.port} did not start in {timeout} s")

    def close(self) -> None:
        """Stop every process started here, the last started first."""
        for process in reversed(self.processes):
            stop(process)

    def __enter__(self) -> "LocalPrefect":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
