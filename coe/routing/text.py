"""The text a router embeds for a conversation.

Routing looks at the whole conversation, not only the last message, but embedders truncate long
inputs from the end: the newest user turn goes first so that truncation drops the oldest context,
never the question being asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def conversation_text(messages: Sequence[Mapping[str, str]]) -> str:
    user_turns = [m["content"].strip() for m in messages if m["role"] == "user"]
    return "\n".join(reversed(user_turns))
