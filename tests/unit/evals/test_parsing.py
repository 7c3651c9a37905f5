"""Judge-output parsing on real judge outputs, malformed ones included.

fixtures/judge_outputs.jsonl holds real outputs of the local judges (SmolLM2-135M-Instruct and
Gemma-3-270M served by CoE, temperature 0) to the real MT-Bench and Arena-Hard judge prompts, with the
verdict a careful reader finds in each (``expected``; null = no valid verdict). Almost all are malformed:
"[Rating: 1]", an echoed "[The End of Assistant's Answer]", answers to the question instead of a
judgment. The well-formed cases below them are constructed, because no strong judge runs offline here.
"""

import json
from pathlib import Path

import pytest

from evals.parsing import parse_rating, parse_verdict, verdict_score

REAL = [json.loads(line) for line in (Path(__file__).parent / "fixtures" / "judge_outputs.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("case", REAL, ids=[f"{i}-{c['kind']}" for i, c in enumerate(REAL)])
def test_real_judge_outputs(case):
    if case["kind"] == "single":
        assert parse_rating(case["judgment"]) == case["expected"]
    else:
        assert parse_verdict(case["judgment"]) == case["expected"]


def test_real_outputs_include_both_valid_and_malformed():
    assert any(c["expected"] is not None for c in REAL)
    assert sum(c["expected"] is None for c in REAL) > 10
    assert any("[Rating: 1]" in c["judgment"] for c in REAL)  # rating-like, but not the [[n]] format


@pytest.mark.parametrize("text,expected", [
    ('The answer is accurate and concise. Rating: [[8]]', 8.0),
    ("Rating: [[7.5]]", 7.5),
    ("Rating: [[ 6 ]]", 6.0),
    ("Rating: [[9/10]]", 9.0),
    ("I first thought [[4]] but on reflection [[4]]", 4.0),  # one distinct value
    ("Rating: [[3]] ... no wait, Rating: [[8]]", None),  # conflicting: not guessed
    ("Rating: [[11]]", None),  # out of range
    ("Rating: [[0]]", None),
    ("Rating: [5]", None),  # single brackets are not the format
    ("Rating: 5/10", None),
    ("", None),
    (None, None),
])
def test_rating_rules(text, expected):
    assert parse_rating(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("My final verdict is: [[A>>B]]", "A>>B"),
    ("My final verdict is tie: [[A=B]]", "A=B"),
    ("[[B>A]]", "B>A"),
    ("[[ B>>A ]]", "B>>A"),
    ("[[A<B]]", "B>A"),  # written from the other side: the same verdict
    ("[[B=A]]", "A=B"),
    ("first [[A>B]] then again [[A>B]]", "A>B"),
    ("[[A>B]] ... actually [[B>A]]", None),  # two different verdicts: invalid (Arena-Hard's rule)
    ("[[A>>>B]]", None),
    ("[[C]]", None),  # MT-Bench pairwise tie token, not an Arena-Hard verdict
    ("Assistant A is better.", None),
    (None, None),
])
def test_verdict_rules(text, expected):
    assert parse_verdict(text) == expected


def test_verdict_scores_follow_the_models_position():
    # game 1: baseline is A, model is B; game 2: model is A
    assert verdict_score("A>>B", model_is_a=False) == (0.0, True)
    assert verdict_score("A>>B", model_is_a=True) == (1.0, True)
    assert verdict_score("B>A", model_is_a=False) == (1.0, False)
    assert verdict_score("A=B", model_is_a=True) == (0.5, False)
