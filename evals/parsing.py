"""Reading a judge's verdict out of its free text. Anything ambiguous is invalid, never guessed.

MT-Bench single-answer grading: ``[[rating]]`` on a 1-10 scale (the same parser the router's LLM-judge
scorer uses, so the two never disagree about what counts). FastChat falls back to single brackets
``[5]`` and scores a missing rating as -1; both are not done here: ``[5]`` also matches list markers
and citations, and a -1 averaged into a mean reads as a terrible answer instead of a broken judge.

Arena-Hard pairwise: ``[[A>>B]]`` ... ``[[B>>A]]``; the judge must give exactly one distinct verdict
(Arena-Hard's own rule: several different verdicts in one judgment -> no verdict).
"""

from __future__ import annotations

import re

from evals.scorers.llm_judge import parse_rating

__all__ = ["parse_rating", "parse_verdict", "verdict_score", "VERDICTS"]

# Canonical verdict -> how good A is against B (1 = A wins, 0.5 = tie, 0 = B wins) and whether it is
# a strong verdict (Arena-Hard counts a strong one ``weight`` times).
VERDICTS: dict[str, tuple[float, bool]] = {
    "A>>B": (1.0, True), "A>B": (1.0, False), "A=B": (0.5, False), "B>A": (0.0, False), "B>>A": (0.0, True),
}
_ALIASES = {"A<<B": "B>>A", "A<B": "B>A", "B=A": "A=B", "B<A": "A>B", "B<<A": "A>>B"}
_VERDICT_RE = re.compile(r"\[\[\s*([AB<>=]+)\s*\]\]")


def parse_verdict(judgment: str | None) -> str | None:
    """The one pairwise verdict in a judgment, canonicalised (``A<B`` -> ``B>A``), or None."""
    if not judgment:
        return None
    found = {_ALIASES.get(m, m) for m in _VERDICT_RE.findall(judgment)}
    if len(found) != 1:
        return None
    verdict = found.pop()
    return verdict if verdict in VERDICTS else None


def verdict_score(verdict: str, model_is_a: bool) -> tuple[float, bool]:
    """(outcome for the evaluated model, strong?) from a canonical verdict and the model's position."""
    a_score, strong = VERDICTS[verdict]
    return (a_score if model_is_a else 1.0 - a_score), strong
