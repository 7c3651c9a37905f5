"""The answer/judgment cache survives a kill mid-write: the torn last line is dropped, not half-kept."""

import json

from evals.store import JsonlStore


def key(record):
    return (record["q"], record["turn"])


def test_records_persist_and_first_record_wins(tmp_path):
    path = tmp_path / "answers.jsonl"
    store = JsonlStore(path, key)
    store.add({"q": 1, "turn": 1, "text": "first"})
    assert store.add({"q": 1, "turn": 1, "text": "second"})["text"] == "first"
    again = JsonlStore(path, key)
    assert len(again) == 1 and again.get((1, 1))["text"] == "first"


def test_torn_last_line_is_dropped_and_appends_stay_valid(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps({"q": 1, "turn": 1, "text": "ok"}) + "\n" + '{"q": 2, "turn": 1, "te')
    store = JsonlStore(path, key)
    assert store.dropped_partial_line and len(store) == 1 and (2, 1) not in store
    store.add({"q": 2, "turn": 1, "text": "redone"})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["text"] for line in lines] == ["ok", "redone"]
