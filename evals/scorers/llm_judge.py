"""Open-ended quality: an LLM judge with MT-Bench's single-answer grading prompt, via LiteLLM.

LiteLLM means any provider's model string works (``openai/gpt-4o``, ``hosted_vllm/...``, a local CoE
expert). The prompts are FastChat's ``single-v1`` and, when a reference is given, ``single-math-v1``,
verbatim, so scores are comparable with published MT-Bench numbers. A judgment without a clean
``[[rating]]`` is invalid (None) and counted: FastChat's -1 sentinel averaged into a mean would read as a
terrible answer.
"""

from __future__ import annotations

import os
import re
from typing import Any

from evals.scorers.base import Scorer

SYSTEM_PROMPT = "You are a helpful assistant."

SINGLE_V1 = (
    "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an "
    "AI assistant to the user question displayed below. Your evaluation should consider factors such as the "
    "helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. Begin your "
    "evaluation by providing a short explanation. Be as objective as possible. After providing your "
    "explanation, you must rate the response on a scale of 1 to 10 by strictly following this format: "
    '"[[rating]]", for example: "Rating: [[5]]".\n\n[Question]\n{question}\n\n'
    "[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
)

SINGLE_MATH_V1 = (
    "[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an "
    "AI assistant to the user question displayed below. Your evaluation should consider correctness and "
    "helpfulness. You will be given a reference answer and the assistant's answer. Begin your evaluation by "
    "comparing the assistant's answer with the reference answer. Identify and correct any mistakes. Be as "
    "objective as possible. After providing your explanation, you must rate the response on a scale of 1 to "
    '10 by strictly following this format: "[[rating]]", for example: "Rating: [[5]]".\n\n'
    "[Question]\n{question}\n\n[The Start of Reference Answer]\n{ref_answer_1}\n[The End of Reference Answer]"
    "\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]"
)

_RATING_RE = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*(?:/\s*10\s*)?\]\]")


def parse_rating(judgment: str | None, low: float = 1.0, high: float = 10.0) -> float | None:
    """The judge's ``[[rating]]``, or None when there is none, it is out of range, or the judgment
    gives different ratings (which one the judge meant is a guess; a guess is not a score)."""
    if not judgment:
        return None
    values = {float(m) for m in _RATING_RE.findall(judgment)}
    if len(values) != 1:
        return None
    value = values.pop()
    return value if low <= value <= high else None


def build_messages(question: str, answer: str, reference: str | None = None) -> list[dict[str, str]]:
    if reference is None:
        content = SINGLE_V1.format(question=question, answer=answer)
    else:
        content = SINGLE_MATH_V1.format(question=question, answer=answer, ref_answer_1=reference)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]


class LLMJudgeScorer(Scorer):
    """Calls the judge once per response (temperature 0, as MT-Bench does). Transport errors propagate:
    a judge that could not be reached is a retry for the caller, not an invalid judgment."""

    name = "llm-judge"

    def __init__(
        self,
        model: str,
        *,
        temperature: float = 0.0,
        max_tokens: int = 2048,
        timeout_s: float = 120.0,
        **litellm_kwargs: Any,
    ) -> None:
        super().__init__()
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.litellm_kwargs = litellm_kwargs
        self.last_judgment: str | None = None

    def judge(self, prompt: str, response: str, reference: str | None = None) -> str:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
        import litellm

        result = litellm.completion(
            model=self.model,
            messages=build_messages(prompt, response, reference),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            timeout=self.timeout_s,
            **self.litellm_kwargs,
        )
        return result.choices[0].message.content or ""

    def _score(self, prompt: str, response: str, reference: str | None) -> float | None:
        self.last_judgment = self.judge(prompt, response, reference)
        return parse_rating(self.last_judgment)
