"""Serve's access lines leave the console and stay in the log file; everything else still reaches both.

Real logging handlers, set up the way Ray Serve sets up a replica's logger (ray/serve/_private/
logging_utils.py: a StreamHandler to stderr and a MemoryHandler flushing to a RotatingFileHandler).
"""

from __future__ import annotations

import io
import logging
import logging.handlers
from pathlib import Path

import pytest

from coe.serve.access_log import SERVE_LOGGER, keep_access_lines_off_console


@pytest.fixture
def serve_logger(tmp_path: Path):
    logger = logging.getLogger(SERVE_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    console = io.StringIO()
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(console))
    file_handler = logging.handlers.RotatingFileHandler(tmp_path / "replica_coe_ingress.log")
    logger.addHandler(logging.handlers.MemoryHandler(capacity=1, target=file_handler))
    yield logger, console, tmp_path / "replica_coe_ingress.log"
    for handler in logger.handlers:
        handler.close()
    logger.handlers[:], logger.level, logger.propagate = saved


def log_both(logger: logging.Logger) -> None:
    logger.info("POST /v1/chat/completions 200 12.3ms", extra={"serve_access_log": True})
    logger.warning("replica is slow to answer health checks")


def test_access_lines_stay_in_the_file_only(serve_logger) -> None:
    logger, console, file = serve_logger
    assert keep_access_lines_off_console() == 1  # the stream handler only, not the file's handlers
    log_both(logger)
    assert "POST /v1/chat/completions" not in console.getvalue()
    assert "slow to answer health checks" in console.getvalue()
    assert "POST /v1/chat/completions 200 12.3ms" in file.read_text()
    assert "slow to answer health checks" in file.read_text()


def test_without_the_filter_both_reach_the_console(serve_logger) -> None:
    logger, console, _ = serve_logger
    log_both(logger)  # what `server.console_access_log: true` keeps
    assert "POST /v1/chat/completions" in console.getvalue()
    assert "slow to answer health checks" in console.getvalue()
