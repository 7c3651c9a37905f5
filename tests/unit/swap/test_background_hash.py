"""The cold-image hash on a second thread: the same digest as hashing in order, on a thread that may
leave the reader's pinned core, and errors that reach the reader (coe/swap/background_hash.py)."""

from __future__ import annotations

import os
import time

import pytest
import xxhash

from coe.checksums import new_hasher
from coe.swap.background_hash import BackgroundHasher


@pytest.mark.parametrize("algorithm", ["xxh3_128", "sha256"])
def test_the_digest_is_that_of_the_pieces_in_order(algorithm: str) -> None:
    pieces = [os.urandom(n) for n in (17, 1 << 20, 3, 5 << 20, 0, 4096)]
    serial = new_hasher(algorithm)
    for piece in pieces:
        serial.update(piece)
    with BackgroundHasher(algorithm) as digest:
        for piece in pieces:
            digest.update(memoryview(piece))
        assert digest.hexdigest() == serial.hexdigest()


def test_the_hash_thread_widens_its_affinity_and_the_reader_keeps_its_pin() -> None:
    if not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two cores this process may use")
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(before)})  # the reader pinned, as vLLM-CPU pins its worker's threads
    try:
        with BackgroundHasher("xxh3_128") as digest:
            thread_id = digest._thread.native_id
            deadline = time.monotonic() + 5
            while len(os.sched_getaffinity(thread_id)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(os.sched_getaffinity(thread_id)) >= 2
            assert os.sched_getaffinity(0) == {min(before)}
            digest.update(b"abc")
            assert digest.hexdigest() == xxhash.xxh3_128(b"abc").hexdigest()
    finally:
        os.sched_setaffinity(0, before)


def test_a_failed_update_is_raised_to_the_reader() -> None:
    with BackgroundHasher("xxh3_128") as digest:
        digest.update(12345)  # not bytes
        with pytest.raises(TypeError):
            digest.hexdigest()


def test_leaving_the_block_on_an_error_ends_the_thread() -> None:
    with pytest.raises(EOFError):
        with BackgroundHasher("xxh3_128") as digest:
            digest.update(b"partial")
            raise EOFError("file ends early")
    assert not digest._thread.is_alive()
