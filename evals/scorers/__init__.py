"""Pluggable scorers that turn (prompt, expert response) into the per-prompt quality the K-shot map needs.

A small registry, name -> (module, class), imported only when asked for: ``llm-judge`` pulls LiteLLM and
``unit-tests`` runs subprocesses, and neither should load when a caller only reads precomputed scores.
"""

from __future__ import annotations

import importlib
from typing import Any

from coe.errors import UserInputError
from evals.scorers.base import Scorer

__all__ = ["Scorer", "UnknownScorerError", "get_scorer", "list_registered", "register"]

_REGISTRY: dict[str, tuple[str, str]] = {
    "precomputed": ("evals.scorers.precomputed", "PrecomputedScorer"),
    "exact-match": ("evals.scorers.exact_match", "ExactMatchScorer"),
    "unit-tests": ("evals.scorers.unit_tests", "UnitTestScorer"),
    "llm-judge": ("evals.scorers.llm_judge", "LLMJudgeScorer"),
}


class UnknownScorerError(UserInputError, ValueError):
    """A scorer name that is not registered; the message lists the names that are."""


def list_registered() -> list[str]:
    return sorted(_REGISTRY)


def register(name: str, module: str, class_name: str) -> None:
    """Add a scorer without editing this file (plugins, tests); the module is imported on first use."""
    _REGISTRY[name] = (module, class_name)


def get_scorer_class(name: str) -> type[Scorer]:
    try:
        module_name, class_name = _REGISTRY[name]
    except KeyError:
        raise UnknownScorerError(
            f"unknown scorer {name!r}; registered scorers: {', '.join(list_registered())}"
        ) from None
    return getattr(importlib.import_module(module_name), class_name)


def get_scorer(name: str, **kwargs: Any) -> Scorer:
    """Build a registered scorer by name; ``kwargs`` go to its constructor."""
    return get_scorer_class(name)(**kwargs)
