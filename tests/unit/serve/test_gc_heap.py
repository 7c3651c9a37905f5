"""The startup-heap freeze: a full collection stops scanning what existed at the freeze, and long
collections are logged (coe/serve/gc_heap.py)."""

from __future__ import annotations

import gc
import logging

import pytest

from coe.serve import gc_heap


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()
    if gc_heap._watch in gc.callbacks:
        gc.callbacks.remove(gc_heap._watch)


def scanned(obj: object) -> bool:
    """Whether the collector's scans reach `obj` (gc.get_objects lists the generations it walks)."""
    return any(o is obj for o in gc.get_objects())


def test_a_full_collection_skips_the_frozen_heap(unfrozen, caplog: pytest.LogCaptureFixture) -> None:
    heap = [[i] for i in range(1000)]  # tracked containers, alive through the freeze
    assert scanned(heap[0])
    with caplog.at_level(logging.INFO, logger=gc_heap.__name__):
        gc_heap.freeze_gc_heap("test")
    assert gc.get_freeze_count() >= len(heap) and not scanned(heap[0]) and not scanned(heap)
    assert "test: froze" in caplog.text and "paused" not in caplog.text  # the freeze's own collection is quiet
    fresh = [0]
    assert scanned(fresh)  # what comes after the freeze is collected as before


def test_off_switch_leaves_the_collector_alone(unfrozen, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(gc_heap.GC_FREEZE_ENV, "0")
    heap = [[i] for i in range(10)]
    frozen = gc.get_freeze_count()
    gc_heap.freeze_gc_heap("test")
    assert gc.get_freeze_count() == frozen and scanned(heap[0])


def test_a_long_collection_is_logged(unfrozen, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(gc_heap.GC_FREEZE_ENV, "0")
    monkeypatch.setattr(gc_heap, "LONG_PAUSE_MS", 0.0)  # any collection counts as long
    gc_heap.freeze_gc_heap("test")
    with caplog.at_level(logging.WARNING, logger=gc_heap.__name__):
        gc.collect(2)
    assert "garbage collection of generation 2 paused this process for" in caplog.text


def test_pauses_expected_are_not_logged(unfrozen, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv(gc_heap.GC_FREEZE_ENV, "0")
    monkeypatch.setattr(gc_heap, "LONG_PAUSE_MS", 0.0)
    gc_heap.freeze_gc_heap("test")
    with caplog.at_level(logging.WARNING, logger=gc_heap.__name__):
        with gc_heap.long_pauses_expected():
            gc.collect(2)
        assert "paused" not in caplog.text
        gc.collect(2)
    assert "paused this process" in caplog.text  # quiet only inside
