"""Who answers and who judges: an OpenAI-compatible endpoint (CoE by default) or any LiteLLM model.

Two kinds of failure are kept apart, because resuming depends on it:
- the request itself is refused (HTTP 4xx: the prompt does not fit the context window, ...): that is a
  result. It is cached with its error and counted in the report, so a rerun does not ask again.
- the service is unreachable or fails (connection refused, timeouts, 5xx): that is not a result. It
  raises ``EvalTransportError``; nothing is cached, and the next run retries it.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx


class EvalTransportError(RuntimeError):
    """The endpoint or the judge could not be reached or failed on its side; rerun to resume."""


@dataclass
class Completion:
    text: str
    expert: str | None = None  # x-coe-expert: which expert really answered (CoE endpoints only)
    route_category: str | None = None  # x-coe-category when the router chose
    latency_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error: str | None = None  # a refused request (4xx); the text is then empty

    def to_record(self) -> dict[str, Any]:
        return asdict(self)


class EndpointClient:
    """Chat completions over HTTP; keeps CoE's routing headers, which the routing statistics need."""

    def __init__(self, base_url: str, model: str, *, api_key: str = "unused", timeout_s: float = 600.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._http = httpx.Client(timeout=timeout_s, headers={"authorization": f"Bearer {api_key}"})

    def models(self) -> list[dict[str, Any]]:
        """``GET /models`` (the arrangement behind the endpoint); [] when the server has no such route."""
        try:
            resp = self._http.get(f"{self.base_url}/models")
        except httpx.HTTPError as err:
            raise EvalTransportError(f"cannot reach {self.base_url}: {err}") from None
        return resp.json().get("data", []) if resp.status_code == 200 else []

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float, seed: int) -> Completion:
        body = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                "temperature": temperature, "seed": seed}
        start = time.perf_counter()
        try:
            resp = self._http.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.HTTPError as err:
            raise EvalTransportError(f"cannot reach {self.base_url}: {err}") from None
        latency = time.perf_counter() - start
        if resp.status_code >= 500 or resp.status_code in (401, 403, 404, 429):
            # 404 (unknown model) and auth errors would repeat for every question: stop, do not cache.
            raise EvalTransportError(f"{self.base_url} answered {resp.status_code}: {resp.text[:300]}")
        if resp.status_code >= 400:
            return Completion("", latency_s=latency, error=_error_message(resp))
        data = resp.json()
        usage = data.get("usage") or {}
        return Completion(
            text=data["choices"][0]["message"].get("content") or "",
            expert=resp.headers.get("x-coe-expert") or data.get("model"),
            route_category=resp.headers.get("x-coe-category"),
            latency_s=latency,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )


def _error_message(resp: httpx.Response) -> str:
    try:
        return f"{resp.status_code}: {resp.json()['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{resp.status_code}: {resp.text[:300]}"


class LiteLLMClient:
    """Any LiteLLM model string (a hosted API, or ``openai/<name>`` with ``api_base``)."""

    def __init__(self, model: str, *, api_base: str | None = None, timeout_s: float = 600.0) -> None:
        self.model = model
        self.api_base = api_base
        self.timeout_s = timeout_s

    def models(self) -> list[dict[str, Any]]:
        return []

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int, temperature: float, seed: int) -> Completion:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no network fetch at import
        import litellm

        litellm.suppress_debug_info = True  # no "Give Feedback" banner on every refused request
        extra = {"api_base": self.api_base, "api_key": "unused"} if self.api_base else {}
        start = time.perf_counter()
        try:
            result = litellm.completion(model=self.model, messages=messages, max_tokens=max_tokens,
                                        temperature=temperature, seed=seed, timeout=self.timeout_s, **extra)
        except litellm.BadRequestError as err:  # includes ContextWindowExceededError: a result
            return Completion("", latency_s=time.perf_counter() - start, error=f"400: {err}"[:500])
        except (litellm.APIConnectionError, litellm.Timeout, litellm.InternalServerError,
                litellm.ServiceUnavailableError, litellm.NotFoundError, litellm.AuthenticationError,
                litellm.RateLimitError, litellm.APIError) as err:
            raise EvalTransportError(f"{self.model}: {type(err).__name__}: {str(err)[:300]}") from None
        usage = getattr(result, "usage", None)
        return Completion(
            text=result.choices[0].message.content or "",
            expert=self.model,
            latency_s=time.perf_counter() - start,
            prompt_tokens=getattr(usage, "prompt_tokens", None),
            completion_tokens=getattr(usage, "completion_tokens", None),
        )


class Judge:
    """A judge is any LiteLLM model, called at temperature 0 as MT-Bench and Arena-Hard do."""

    def __init__(self, model: str, *, api_base: str | None = None, max_tokens: int = 2048) -> None:
        self.model = model
        self.api_base = api_base
        self.max_tokens = max_tokens
        self._client = LiteLLMClient(model, api_base=api_base)

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, "api_base": self.api_base, "max_tokens": self.max_tokens, "temperature": 0.0}

    def __call__(self, system: str, user: str) -> Completion:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return self._client.complete(messages, max_tokens=self.max_tokens, temperature=0.0, seed=0)
