"""Direct ingress settings for `coe serve` (coe/serve/direct_ingress.py); the serving path itself is
exercised by every integration test, which talks to the ingress replica's own port."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from coe.config import parse_config
from coe.serve.direct_ingress import PortInUse, check_port_free, direct_ingress_env, uses_direct_ingress

REMOTE_ONLY = {"experts": [{"id": "r", "remote": {"model": "openai/x", "api_base": "http://127.0.0.1:9/v1"}}]}


def test_the_range_is_exactly_the_configured_port() -> None:
    env = direct_ingress_env(8123)
    low, high = int(env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"]), int(env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"])
    assert list(range(low, high)) == [8123]  # Ray's allocator: range(min, max)
    assert env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "1" and env["RAY_SERVE_PORT_QUARANTINE_S"] == "0"
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] == "0"  # Ctrl-C does not hold on 30 s


def test_on_by_default_for_one_ingress_replica_only() -> None:
    assert uses_direct_ingress(parse_config(REMOTE_ONLY, "t"))
    assert not uses_direct_ingress(parse_config({**REMOTE_ONLY, "cluster": {"ingress_replicas": 2}}, "t"))
    assert not uses_direct_ingress(parse_config({**REMOTE_ONLY, "server": {"direct_ingress": False}}, "t"))


@pytest.fixture
def taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_a_taken_port_is_refused_before_booting(taken_port: int) -> None:
    with pytest.raises(PortInUse, match=f"127.0.0.1:{taken_port}"):
        check_port_free("127.0.0.1", taken_port)
    proc = subprocess.run([sys.executable, "-m", "coe.cli.main", "serve", "--port", str(taken_port)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and f"cannot serve on 127.0.0.1:{taken_port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_free_port_passes() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    check_port_free("127.0.0.1", port)
