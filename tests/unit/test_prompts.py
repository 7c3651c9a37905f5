from __future__ import annotations

from coe.config import PromptFormat
from coe.experts.prompts import render_completion, stop_strings


def test_completion_transcript_ends_with_answer_cue() -> None:
    text = render_completion(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": " And of Italy? "},
        ]
    )
    assert text == "Be brief.\nQ: Capital of France?\nA: Paris.\nQ: And of Italy?\nA:"


def test_completion_format_stops_before_the_next_question() -> None:
    assert stop_strings(PromptFormat.completion, ["END"]) == ["END", "\nQ:"]
    assert stop_strings(PromptFormat.chat, []) == []
    assert stop_strings(PromptFormat.completion, ["\nQ:"]) == ["\nQ:"]
