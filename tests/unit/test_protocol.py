from __future__ import annotations

import pytest
from pydantic import ValidationError

from coe.protocol import ChatCompletionRequest, GenerationRequest


def _req(**extra):
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra})


def test_unknown_fields_are_accepted() -> None:
    assert _req(logit_bias={"1": 2}, tools=None).model == "m"


def test_text_parts_are_joined_and_budget_prefers_max_completion_tokens() -> None:
    req = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
            "max_tokens": 5,
            "max_completion_tokens": 7,
            "stop": "x",
        }
    )
    gen = GenerationRequest.from_wire(req, "id")
    assert gen.messages == ({"role": "user", "content": "ab"},)
    assert gen.sampling.max_tokens == 7 and gen.sampling.stop == ("x",)


@pytest.mark.parametrize(
    "extra",
    [{"temperature": -1}, {"top_p": 0}, {"n": 3}, {"stop": ["a", "b", "c", "d", "e"]}, {"stop": [""]}],
)
def test_out_of_range_sampling_is_rejected(extra: dict) -> None:
    with pytest.raises(ValidationError):
        _req(**extra)
