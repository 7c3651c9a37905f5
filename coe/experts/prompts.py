"""Turning a conversation into the text a model sees.

Instruct models use their tokenizer's chat template. Base models never learnt one, and a chat
template makes them produce junk (measured with Gemma-3-270M), so they get a plain Q/A transcript that
they continue like any text, with a stop string that ends the answer before the model invents the
next question.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from coe.config import PromptFormat

COMPLETION_STOPS: tuple[str, ...] = ("\nQ:",)


def render_completion(messages: Sequence[dict[str, str]], continue_final: bool = False) -> str:
    lines: list[str] = []
    if continue_final and messages and messages[-1]["role"] == "assistant":
        # The partial answer is continued as it stands: not stripped, no new "A:" after it.
        return render_completion(messages[:-1]) + " " + messages[-1]["content"].lstrip()
    for message in messages:
        role, content = message["role"], message["content"].strip()
        if role in ("system", "developer"):
            lines.append(content)
        elif role == "user":
            lines.append(f"Q: {content}")
        else:
            lines.append(f"A: {content}")
    lines.append("A:")
    return "\n".join(lines)


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]], fmt: PromptFormat,
                  continue_final: bool = False) -> str:
    """`continue_final`: the last message is a partial assistant answer the model continues (the
    template leaves that turn open instead of closing it and starting a new one)."""
    if fmt is PromptFormat.completion:
        return render_completion(messages, continue_final)
    if continue_final and messages and messages[-1]["role"] == "assistant":
        return tokenizer.apply_chat_template(
            [dict(m) for m in messages], tokenize=False, add_generation_prompt=False, continue_final_message=True
        )
    return tokenizer.apply_chat_template(
        [dict(m) for m in messages], tokenize=False, add_generation_prompt=True
    )


def stop_strings(fmt: PromptFormat, requested: Sequence[str]) -> list[str]:
    extra = COMPLETION_STOPS if fmt is PromptFormat.completion else ()
    return list(dict.fromkeys([*requested, *extra]))
