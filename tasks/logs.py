"""The library's loggers (`jetx.*`) in the run's logs, as Prefect's own loggers are.

Prefect sends a logger's records to the API (and so to the UI's run logs) only when the logger
has its handlers: `PREFECT_LOGGING_EXTRA_LOGGERS=jetx` does that when set before Prefect starts,
which a worker's flow-run process or a notebook may not do. Importing this module gives the
`jetx` logger the handlers of Prefect's `prefect.extra` logger once, in any process where Prefect
is configured, so precision, device, memory source and evaluation lines reach the run's logs.
The stage children's lines reach them through the task that streams them (`tasks.stage`).
"""

import logging

from prefect.logging.configuration import setup_logging

LIBRARY_LOGGER = "jetx"


def route_library_logs() -> None:
    """Attach Prefect's extra-logger handlers to the `jetx` logger (idempotent)."""
    extra = logging.getLogger("prefect.extra")
    if not extra.handlers:
        setup_logging()
    library = logging.getLogger(LIBRARY_LOGGER)
    for handler in extra.handlers:
        if handler not in library.handlers:
            library.addHandler(handler)
    if library.level == logging.NOTSET:
        library.setLevel(logging.INFO)
    library.propagate = False  # Prefect's handlers print it; the root would print it twice


route_library_logs()
