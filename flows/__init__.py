"""Prefect flows: the `jetx` pipeline (deployment `progressive`) and the `jetx-audit` flow.

Prefect reads its settings when it is first imported, so the one default that a first run
needs is set here, before any flow module imports Prefect: on a new PREFECT_HOME the ephemeral
server creates and migrates its database before it answers, which takes more than Prefect's
default 20 s on a busy 2-core machine. A user's own setting wins.
"""

import os

#: Seconds the flow process waits for its ephemeral Prefect server (first start included).
EPHEMERAL_STARTUP_SECONDS = "300"

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", EPHEMERAL_STARTUP_SECONDS)
# The ephemeral server's telemetry cannot reach its host from a closed network and says so in
# red on every first screen; nothing of jetx needs it.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
