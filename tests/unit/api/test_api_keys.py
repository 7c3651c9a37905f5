"""API keys at the door: hashes only, OpenAI's 401, keys shared through the state store, and no
keyless serving beyond loopback unless asked for."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fastapi.testclient import TestClient

from coe.api.app import build_app
from coe.api.auth import STORE_KEY, KeyRing, configured_hashes, hash_key, new_key
from coe.api.shared_state import SharedState
from coe.api.state import ApiState
from coe.config import ServerConfig
from coe.experts.base import ExpertInfo
from coe.state.store import InMemoryStore
from tests.unit.api.test_chat_api import FakeEchoBackend


def _client(keys: KeyRing) -> TestClient:
    state = ApiState(server=ServerConfig(), experts={"echo": FakeEchoBackend()}, infos={"echo": ExpertInfo("echo", "local")})
    app = build_app(state)
    SharedState(keys.store or InMemoryStore(), keys=keys).install(app, ["echo"])
    return TestClient(app)


def _chat(client: TestClient, key: str | None):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return client.post("/v1/chat/completions", headers=headers,
                       json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})


def test_only_configured_keys_get_in_and_the_rest_get_openais_401() -> None:
    key, digest = new_key()
    client = _client(KeyRing({digest}))
    assert _chat(client, key).status_code == 200
    for wrong in (None, "sk-guess", key + "x"):
        resp = _chat(client, wrong)
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "invalid_api_key"
    assert client.get("/v1/models").status_code == 401
    assert client.get("/health").status_code == 200 and client.get("/metrics").status_code == 200


async def test_keys_added_to_the_store_reach_every_replica() -> None:
    store = InMemoryStore()
    key, digest = new_key()
    replica = KeyRing(set(), store, use_store=True)
    await store.hset(STORE_KEY, {digest: "added by ops"})
    await replica.check(f"Bearer {key}")  # no exception: accepted


def test_configured_entries_must_be_hashes_naming_file_and_line(tmp_path) -> None:
    secrets = tmp_path / "keys.txt"
    secrets.write_text(f"# team A\n{hash_key('a')}\nsk-plain-key\n")
    with pytest.raises(ValueError, match=r"keys.txt:3"):
        configured_hashes([], secrets)
    assert configured_hashes([hash_key("b")], None) == {hash_key("b")}


def test_serve_refuses_a_public_address_without_keys() -> None:
    proc = subprocess.run([sys.executable, "-m", "coe.cli.main", "serve", "--host", "0.0.0.0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--allow-unauthenticated" in proc.stderr and "Traceback" not in proc.stderr
