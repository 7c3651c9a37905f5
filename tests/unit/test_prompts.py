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


def _smollm2_tokenizer():
    from transformers import AutoTokenizer

    from coe.models.prepare import prepare

    return AutoTokenizer.from_pretrained(str(prepare("smollm2-135m-instruct").path))


def test_a_continued_answer_renders_as_the_original_prompt_plus_the_text_so_far() -> None:
    """Mid-stream continuation on a vLLM expert: the prefill prompt is exactly the prompt the first
    expert saw followed by what it had sent, so the model picks up where the answer stopped (real
    SmolLM2 chat template)."""
    from coe.experts.prompts import render_prompt

    tokenizer = _smollm2_tokenizer()
    asked = [{"role": "user", "content": "Name three colours."}]
    partial = "Red, green and"
    original = render_prompt(tokenizer, asked, PromptFormat.chat)
    continued = render_prompt(tokenizer, [*asked, {"role": "assistant", "content": partial}], PromptFormat.chat, True)
    assert continued == original + partial


def test_a_continued_completion_transcript_keeps_the_partial_answer_open() -> None:
    asked = [{"role": "user", "content": "Capital of France?"}]
    continued = render_completion([*asked, {"role": "assistant", "content": "It is"}], continue_final=True)
    assert continued == render_completion(asked) + " It is"
