"""Arena-Hard scoring from judgments: positions are undone, strong verdicts weigh 3, invalid ones count."""

import pytest

from evals.arena_hard import build_report
from evals.data import ArenaQuestion
from evals.store import JsonlStore

QUESTIONS = [ArenaQuestion(f"u{i}", "hard_prompt", sub, "prompt") for i, sub in enumerate(["coding", "math", "coding", "math"])]


def stores(tmp_path, verdicts):
    answers = JsonlStore(tmp_path / "a.jsonl", key=lambda r: r["uid"])
    judgments = JsonlStore(tmp_path / "j.jsonl", key=lambda r: (r["uid"], r["game"]))
    for q in QUESTIONS:
        answers.add({"uid": q.uid, "category": q.subcategory, "text": "x", "expert": "e", "route_category": None,
                     "latency_s": 1.0, "prompt_tokens": 5, "completion_tokens": 5, "error": None})
    for (uid, game), text in verdicts.items():
        judgments.add({"uid": uid, "game": game, "judgment": text, "error": None})
    return answers, judgments


def report(tmp_path, verdicts):
    answers, judgments = stores(tmp_path, verdicts)
    return build_report(QUESTIONS, answers, judgments, {"run": "r"}, {u.uid: "base" for u in QUESTIONS}, {}, 50, 0)


def test_positions_are_undone(tmp_path):
    # game 1: baseline is A. "[[B>A]]" in game 1 and "[[A>B]]" in game 2 are both wins for the model.
    verdicts = {(q.uid, 1): "[[B>A]]" for q in QUESTIONS} | {(q.uid, 2): "[[A>B]]" for q in QUESTIONS}
    r = report(tmp_path, verdicts)
    assert r["score"] > 0.95 and r["judgments"]["valid"] == 8


def test_a_judge_that_always_says_a_cancels_out(tmp_path):
    verdicts = {(q.uid, g): "[[A>B]]" for q in QUESTIONS for g in (1, 2)}
    assert report(tmp_path, verdicts)["score"] == pytest.approx(0.5, abs=1e-3)


def test_strong_verdicts_weigh_three_and_invalid_ones_are_counted(tmp_path):
    verdicts = {("u0", 1): "[[B>>A]]", ("u0", 2): "no verdict", ("u1", 1): "[[A>B]]", ("u1", 2): "[[A>B]] [[B>A]]"}
    r = report(tmp_path, verdicts)
    # battles: model wins with weight 3 (u0 game 1), model loses with weight 1 (u1 game 1) -> 3/4
    assert r["score"] == pytest.approx(0.75, abs=2e-3)
    assert r["judgments"] == {"total": 8, "valid": 2, "invalid": 6,
                              "invalid_reasons": {"answer_error": 4, "no_verdict": 2},
                              "hit_judge_token_limit": None}  # these judgments did not record their length
    assert r["per_category"]["coding"]["valid"] == 1 and r["per_category"]["math"]["valid"] == 1
    assert r["ci95"][0] <= r["score"] <= r["ci95"][1]


def test_judgments_that_used_the_whole_token_budget_are_counted(tmp_path):
    answers, judgments = stores(tmp_path, {})
    for game, tokens in ((1, 64), (2, 12)):
        judgments.add({"uid": "u0", "game": game, "judgment": "The answer", "error": None, "judge_tokens": tokens})
    manifest = {"run": "r", "settings": {"judge_max_tokens": 64}}
    r = build_report(QUESTIONS, answers, judgments, manifest, {u.uid: "base" for u in QUESTIONS}, {}, 20, 0)
    assert r["judgments"]["hit_judge_token_limit"] == 1
