"""Benchmark data comes from the installed packages, with the prompts the harness sends built from them."""

from evals.arena_hard import judge_messages as arena_messages
from evals.data import (
    arena_hard_baseline_answers,
    arena_hard_judge_settings,
    load_arena_hard,
    load_mt_bench,
    mt_bench_judge_prompts,
    round_robin_subset,
)
from evals.mt_bench import judge_messages, judge_prompt_name


def test_mt_bench_has_80_questions_with_references_where_fastchat_uses_them():
    questions = load_mt_bench()
    assert len(questions) == 80 and all(len(q.turns) == 2 for q in questions)
    with_ref = {q.category for q in questions if q.reference}
    assert with_ref == {"math", "reasoning", "coding"}
    assert sum(q.reference is not None for q in questions) == 30


def test_limit_takes_one_question_per_category_and_extends():
    questions = load_mt_bench()
    eight = round_robin_subset(questions, lambda q: q.category, 8)
    assert len({q.category for q in eight}) == 8
    sixteen = round_robin_subset(questions, lambda q: q.category, 16)
    assert set(q.question_id for q in eight) <= set(q.question_id for q in sixteen)


def test_mt_bench_judge_prompts_are_fastchats():
    prompts = mt_bench_judge_prompts()
    math_q = next(q for q in load_mt_bench() if q.category == "math")
    writing_q = next(q for q in load_mt_bench() if q.category == "writing")
    assert judge_prompt_name(math_q, 2) == "single-math-v1-multi-turn"
    assert judge_prompt_name(writing_q, 1) == "single-v1"
    system, user = judge_messages(math_q, ["ANSWER-ONE", "ANSWER-TWO"], 2, prompts)
    assert "[[rating]]" in system
    assert math_q.reference[1] in user and "ANSWER-TWO" in user and math_q.turns[1] in user
    _, user1 = judge_messages(writing_q, ["ANSWER-ONE", "ANSWER-TWO"], 1, prompts)
    assert "ANSWER-ONE" in user1 and "ANSWER-TWO" not in user1 and writing_q.turns[1] not in user1


def test_arena_hard_questions_baselines_and_judge_prompts_from_the_package():
    questions = load_arena_hard()
    assert len(questions) == 750
    assert {q.subcategory for q in questions} == {"coding", "math", "creative_writing"}
    template, settings = arena_hard_judge_settings()
    assert "{ANSWER_A}" in template and "[[A>>B]]" in settings["hard_prompt"]["system_prompt"]
    assert settings["hard_prompt"]["baseline"] == "o3-mini-2025-01-31"
    baseline = arena_hard_baseline_answers("o3-mini-2025-01-31")
    q = questions[0]
    _, game1 = arena_messages(q, "MODEL", baseline[q.uid], 1, template, settings)
    _, game2 = arena_messages(q, "MODEL", baseline[q.uid], 2, template, settings)
    assert game1.index(baseline[q.uid][:50]) < game1.index("MODEL")  # game 1: baseline is A
    assert game2.index("MODEL") < game2.index(baseline[q.uid][:50])  # game 2: model is A
