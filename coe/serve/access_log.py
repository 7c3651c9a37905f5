"""Ray Serve's per-request access lines: kept in the ingress replica's log file, off the console.

Serve's logger writes one access line per request ("POST /v1/chat/completions 200 12.3ms") to the
replica's log file and to its stderr. Ray's log monitor tails that stderr and publishes every line
through the GCS to the driver, which prints it in `coe serve`'s console: four processes handle each
request's line. On a 2-core machine that is CPU the engine needs: measured with
`bench/vllm_side_by_side.py` (README, Performance). vLLM's own server, the baseline, prints its
access line once, in its own process.

So by default (`server.console_access_log: false`) the ingress replica filters access lines out of
its stderr handler only: the replica's Serve log file (Ray's session folder, logs/serve/
replica_coe_ingress_*.log) keeps every line, and warnings, errors and CoE's own messages still reach
the console. `server.console_access_log: true` leaves Serve's logging as it is.
"""

from __future__ import annotations

import logging

SERVE_LOGGER = "ray.serve"  # ray.serve._private.constants.SERVE_LOGGER_NAME


def is_access_line(record: logging.LogRecord) -> bool:
    """Serve marks its access lines with `extra={"serve_access_log": True}`."""
    return bool(getattr(record, "serve_access_log", False))


def keep_access_lines_off_console() -> int:
    """Filter access lines out of the console handlers of Serve's logger (its file handler keeps them).
    Returns how many handlers got the filter: 0 when Serve logs nothing to stderr
    (RAY_SERVE_LOG_TO_STDERR=0), where there is nothing to filter."""
    filtered = 0
    for handler in logging.getLogger(SERVE_LOGGER).handlers:
        if type(handler) is logging.StreamHandler:  # exactly the stderr handler, not the file's subclasses
            handler.addFilter(lambda record: not is_access_line(record))
            filtered += 1
    return filtered
