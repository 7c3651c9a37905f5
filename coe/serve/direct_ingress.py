"""Ray Serve's direct ingress for `coe serve`: the ingress replica serves the user's port itself.

Why: through Serve's HTTP proxy a request crosses two processes before CoE's code runs (client ->
proxy -> ingress replica, and back), measured at 8-10 ms of the 15-17 ms CoE added to vLLM's own
server at one token (README, "Where one request's time goes"). With direct ingress the ingress
replica runs its own uvicorn on the port, so the client talks to CoE's FastAPI app with no proxy
hop. Ray Serve still places, health-checks and restarts the replica; only the HTTP hop goes.

How: Ray Serve hands an ingress replica a port from a range (RAY_SERVE_DIRECT_INGRESS_*_HTTP_PORT).
A range of exactly the configured port gives the single ingress replica that port. Serve's head proxy
still starts (it routes to the same app); it gets a free port of its own, so it is a second door, not
the first, with the same app and the same API keys behind it. Ports released by a stopped replica
are not quarantined, so a restarted replica takes the port back at once.

Only for one ingress replica on one machine: with more, each would take its own port. A cluster
deployment (`deploy/`) keeps Serve's proxies.
"""

from __future__ import annotations

import errno
import socket

from coe.config import CoEConfig
from coe.errors import UserInputError


class PortInUse(UserInputError):
    """The port `coe serve` was asked to serve is taken by another process."""


def uses_direct_ingress(config: CoEConfig) -> bool:
    return config.server.direct_ingress and config.cluster.ingress_replicas == 1


def direct_ingress_env(port: int) -> dict[str, str]:
    """Environment for Ray's processes (set before `ray.init`, which they inherit)."""
    return {
        "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
        "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(port),
        "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(port + 1),  # exclusive: exactly `port`
        "RAY_SERVE_PORT_QUARANTINE_S": "0",  # a restarted replica takes its port back at once
        # Serve holds a stopping direct-ingress replica open 30 s so a load balancer can deregister it;
        # no balancer stands in front of `coe serve`, so stopping waits only for requests in flight.
        "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "0",
    }


def check_port_free(host: str, port: int) -> None:
    """Fail before booting engines when the port is taken: Serve would otherwise retry the replica's
    bind and end with a deploy error minutes later. (A port taken after this check still fails the
    start, with Serve's message.)"""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUse(f"cannot serve on {host}:{port}: {err.strerror}; pick another with --port") from None
            raise


def free_local_port(host: str) -> int:
    """A port free on `host` a moment ago: where Serve's head proxy goes when the replica has the real one."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]
