"""API keys: who may use this endpoint.

Keys are never stored, only their sha256 (`sha256:<hex>`, what `coe keys new` prints): in coe.yaml
(`server.api_keys`), in a secrets file (`server.api_keys_file`, one hash per line, `#` comments), in
the environment (`COE_API_KEYS`, comma-separated hashes) and, so every ingress replica shares one
list that can change without a restart, in the state store's hash `apikeys` (field: the hash). With
no key configured anywhere, the endpoint is open, which `coe serve` allows on loopback only.

A missing or unknown key on `/v1/*` is OpenAI's 401 `invalid_api_key`. `/health` (experts' liveness)
and `/metrics` (request counts and latencies per expert, swap counters; no prompts, no keys) stay
open for probes and scrapers.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

from coe.errors import CoEError
from coe.state.store import StateStore

PREFIX = "sha256:"
ENV = "COE_API_KEYS"
STORE_KEY = "apikeys"
STORE_REFRESH_S = 5.0


class InvalidApiKey(CoEError):
    status_code = 401
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, param=param, code=code or "invalid_api_key")


def hash_key(key: str) -> str:
    return PREFIX + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh key and the hash to configure."""
    key = "coe-" + secrets.token_urlsafe(32)
    return key, hash_key(key)


def _checked(entry: str, where: str) -> str:
    entry = entry.strip()
    if not entry.startswith(PREFIX) or len(entry) != len(PREFIX) + 64:
        raise ValueError(f"{where}: '{entry[:20]}...' is not a key hash (sha256:<64 hex>, from `coe keys new`); "
                         "keys themselves are never configured")
    return entry


def configured_hashes(listed: list[str], file: Path | None) -> set[str]:
    hashes = {_checked(h, "server.api_keys") for h in listed}
    if file is not None:
        for number, line in enumerate(Path(file).read_text().splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if line:
                hashes.add(_checked(line, f"{file}:{number}"))
    hashes |= {_checked(h, ENV) for h in os.environ.get(ENV, "").split(",") if h.strip()}
    return hashes


class KeyRing:
    def __init__(self, hashes: set[str], store: StateStore | None = None, use_store: bool = False) -> None:
        self.hashes = hashes
        self.store = store if use_store else None
        self._shared: set[str] = set()
        self._fetched = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.hashes) or self.store is not None

    async def _shared_hashes(self) -> set[str]:
        if self.store is not None and time.monotonic() - self._fetched > STORE_REFRESH_S:
            self._shared = set(await self.store.hgetall(STORE_KEY))
            self._fetched = time.monotonic()
        return self._shared

    async def check(self, authorization: str | None) -> None:
        if not authorization or not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
            raise InvalidApiKey("missing API key: send `Authorization: Bearer <key>`")
        digest = hash_key(authorization[7:].strip())
        if digest not in self.hashes and digest not in await self._shared_hashes():
            raise InvalidApiKey("incorrect API key provided")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")
