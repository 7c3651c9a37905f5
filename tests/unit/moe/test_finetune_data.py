"""The specialists' training data: real, well-formed, and disjoint from what they are evaluated on."""

from __future__ import annotations

import ast
import re

import pytest

from coe.finetune.data import (
    CODE_INSTRUCTION,
    HUMANEVAL_HELD_OUT,
    UnknownDomain,
    code_examples,
    domain_examples,
    humaneval_train_examples,
    math_examples,
)
from coe.finetune.evaluate import HELD_OUT_MATH_SEED, eval_items


def test_code_examples_are_stdlib_functions_answered_without_repeating_the_docstring():
    examples = code_examples(limit=50)
    assert len(examples) == 50
    for ex in examples:
        assert ex.prompt.startswith(CODE_INSTRUCTION)
        stub = [n for n in ast.parse(ex.prompt[len(CODE_INSTRUCTION):] + "\n    ...\n").body if isinstance(n, ast.FunctionDef)][-1]
        code = re.search(r"```python\n(.*)```", ex.answer, re.DOTALL).group(1)
        function = ast.parse(code).body[0]
        assert isinstance(function, ast.FunctionDef) and function.name == stub.name
        assert ast.get_docstring(stub) and not ast.get_docstring(function)
        assert ast.dump(function.args) == ast.dump(stub.args)


def test_code_training_data_never_contains_the_held_out_half_of_humaneval():
    held_out = eval_items("code", HUMANEVAL_HELD_OUT)
    examples = code_examples()
    assert not {ex.prompt for ex in examples} & {item.prompt for item in held_out}
    from_benchmark = humaneval_train_examples()
    assert {ex.prompt for ex in from_benchmark} <= {ex.prompt for ex in examples}  # the other half is trained on
    stdlib = {ex.name for ex in examples if ex not in from_benchmark}
    assert len(stdlib) > 300
    # no stdlib function shares a name with any held-out problem (statistics.median would solve HumanEval/47)
    assert not stdlib & {item.reference["entry_point"] for item in held_out}
    with pytest.raises(ValueError, match="held-out"):
        eval_items("code", HUMANEVAL_HELD_OUT + 1)


def test_math_answers_are_right_and_held_out_prompts_are_unseen():
    for ex in math_examples(200, seed=0):
        expr_answer = int(ex.answer.rsplit("The answer is ", 1)[1].rstrip("."))
        last_step = ex.answer.split(". The answer")[0].rsplit("= ", 1)[1]
        assert int(last_step) == expr_answer
    train = {ex.prompt for ex in math_examples(2000, seed=0)}
    held = [item.prompt for item in eval_items("math", 100)]
    assert HELD_OUT_MATH_SEED != 0
    assert sum(p in train for p in held) <= 5  # templates are small: rare exact repeats are possible


def test_unknown_domain_is_a_clear_error():
    with pytest.raises(UnknownDomain, match="code, math"):
        domain_examples("poetry")


def test_router_local_analysis_prompts_are_not_specialist_training_data():
    """`make bench-routing` scores the specialists on these; a trained-on prompt would flatter them."""
    from router_training.local_analysis import coding_problems, math_problems

    trained = {ex.prompt for ex in math_examples(2000, seed=0)} | {ex.prompt for ex in code_examples()}
    local = [item.text for item in math_problems(40, seed=0) + coding_problems(40)]
    assert not trained & set(local)
