"""Math correctness: the response's final answer against the reference's, after normalisation.

Models write answers as "1,000", "$1000.00", "\\boxed{1000}" or "10^3"-free prose; an exact string
compare would score formatting, not maths. So the final answer is extracted by the conventions graders
use (GSM8K's ``####``, LaTeX ``\\boxed{}``, "the answer is"), numbers are compared as numbers, and
anything else as a normalised string.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from evals.scorers.base import Scorer

_NUMBER = r"[-+−]?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?%?|[-+−]?\$?\.\d+%?"
_NUMBER_RE = re.compile(_NUMBER)
_FRACTION_RE = re.compile(r"^([-+]?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)$")
_LATEX_FRAC_RE = re.compile(r"^([-+]?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
_ANSWER_IS_RE = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:|=)\s*[:\s]*(.+?)(?:\n|$)", re.IGNORECASE
)


def _boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, braces balanced (a regex cannot match nested braces)."""
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer a grader would read, or None when the text commits to nothing."""
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip()
        return tail.splitlines()[0].strip() if tail else None
    boxed = _boxed(text)
    if boxed is not None:
        return boxed.strip()
    matches = _ANSWER_IS_RE.findall(text)
    if matches:
        tail = matches[-1].strip()
        nums = _NUMBER_RE.findall(tail)
        # "The answer is 42 apples." -> 42; "The answer is B" -> B.
        return nums[0].strip() if nums else tail.rstrip(".").strip()
    nums = _NUMBER_RE.findall(text)
    if nums:
        return nums[-1].strip()
    stripped = text.strip()
    return stripped or None


def parse_number(text: str) -> Fraction | None:
    """Exact value of a numeric answer (Fraction, so 0.1+0.2 style float error cannot flip a match)."""
    s = text.strip().strip(".").strip()
    s = s.replace("−", "-").replace("\\$", "").replace("$", "").replace(",", "").replace("\\!", "")
    s = re.sub(r"\\(?:text|mathrm)\{[^{}]*\}", "", s)
    s = s.replace("\\%", "%").replace(" ", "")
    if s.endswith("%"):
        s = s[:-1]
    m = _LATEX_FRAC_RE.match(s)
    if m:
        try:
            value = Fraction(m.group(2)) / Fraction(m.group(3))
        except (ValueError, ZeroDivisionError):
            return None
        return -value if m.group(1) == "-" else value
    m = _FRACTION_RE.match(s)
    if m:
        try:
            return Fraction(m.group(1)) / Fraction(m.group(2))
        except (ValueError, ZeroDivisionError):
            return None
    try:
        value = float(s)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    try:
        return Fraction(s)
    except ValueError:
        return Fraction(value)


def normalize_text(text: str) -> str:
    s = re.sub(r"\\(?:text|mathrm|textbf)\{([^{}]*)\}", r"\1", text)
    s = s.replace("$", "").lower()
    s = re.sub(r"[\s.]+$", "", s)
    s = re.sub(r"^\(?([a-e])\)?$", r"\1", s.strip())  # "(B)" == "b"
    return re.sub(r"\s+", " ", s).strip()


def answers_match(predicted: str, reference: str, rel_tol: float = 1e-6) -> bool:
    a, b = parse_number(predicted), parse_number(reference)
    if a is not None and b is not None:
        if a == b:
            return True
        return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=1e-9)
    return normalize_text(predicted) == normalize_text(reference)


class ExactMatchScorer(Scorer):
    """1.0 when the final answers agree, else 0.0. A response with no answer is wrong, not invalid:
    the expert failed, the scorer did not."""

    name = "exact-match"
    needs_reference = True

    def __init__(self, rel_tol: float = 1e-6) -> None:
        super().__init__()
        self.rel_tol = rel_tol

    def _score(self, prompt: str, response: str, reference: str | None) -> float | None:
        assert reference is not None
        # A reference may be a full worked solution (GSM8K "... #### 72"): compare final answers.
        ref = extract_answer(reference) or reference
        pred = extract_answer(response)
        if pred is None:
            return 0.0
        return 1.0 if answers_match(pred, ref, self.rel_tol) else 0.0
