"""The front door's own admission limit: past `server.ingress_max_ongoing_requests` requests in
flight in one ingress replica (streams count until their last byte), a request is refused at once
with 503 `overloaded` and Retry-After, instead of waiting without bound in a queue nobody can see.

Ray Serve gives the replica twice that many ongoing requests (coe.serve.serve_config), so the excess
reaches this gate and gets a clear answer rather than queueing in Serve's proxy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from coe.errors import Overloaded

RETRY_AFTER_S = 1.0


class AdmissionGate:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.refused = 0

    def enter(self) -> None:
        """Take a place or raise Overloaded; single-threaded (the event loop), so no lock is needed."""
        if self.in_flight >= self.limit:
            self.refused += 1
            err = Overloaded(f"this ingress has {self.in_flight} requests in flight (its limit); retry shortly")
            err.retry_after_s = RETRY_AFTER_S
            raise err
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1

    async def hold_while(self, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """A streaming body that gives the place back when it ends, fails or the client leaves."""
        try:
            async for part in body:
                yield part
        finally:
            self.leave()
