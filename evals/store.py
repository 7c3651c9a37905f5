"""Append-only JSONL caches for answers and judgments: what makes a run resumable.

Every finished answer or judgment is one line, written and fsynced before the next is counted, so a run
killed at any instant loses at most the requests in flight. A kill in the middle of a write leaves a
partial last line; opening the store cuts it off (it is re-generated) instead of failing or keeping
half a record.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Callable, Hashable

KeyFn = Callable[[dict[str, Any]], Hashable]


class JsonlStore:
    """Records keyed by ``key``; the first record of a key wins (a rerun never overwrites a result)."""

    def __init__(self, path: Path, key: KeyFn) -> None:
        self.path = Path(path)
        self.key = key
        self._lock = threading.Lock()
        self.records: dict[Hashable, dict[str, Any]] = {}
        self.dropped_partial_line = False
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return
        data = self.path.read_bytes()
        good_end = data.rfind(b"\n") + 1
        if good_end < len(data):  # killed mid-write: drop the torn tail
            with self.path.open("r+b") as handle:
                handle.truncate(good_end)
            self.dropped_partial_line = True
        for raw in data[:good_end].splitlines():
            if raw.strip():
                record = json.loads(raw)
                self.records.setdefault(self.key(record), record)

    def __contains__(self, key: Hashable) -> bool:
        return key in self.records

    def get(self, key: Hashable) -> dict[str, Any] | None:
        return self.records.get(key)

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record: dict[str, Any]) -> dict[str, Any]:
        """Persist one record (thread-safe); returns the stored record (an earlier one if the key exists)."""
        key = self.key(record)
        with self._lock:
            if key in self.records:
                return self.records[key]
            line = json.dumps(record, ensure_ascii=False) + "\n"
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self.records[key] = record
            return record
