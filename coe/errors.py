"""One error hierarchy, one path to an OpenAI-style error body.

Every failure a client can cause or see is a `CoEError` with its HTTP status, so the HTTP layer never
guesses and never leaks a stack trace. The errors are plain picklable exceptions because they cross
process boundaries (an Expert replica raises, the ingress answers).
"""

from __future__ import annotations

from typing import Any


class CoEError(Exception):
    """Base of every error the API reports to a client."""

    status_code: int = 500
    error_type: str = "internal_error"
    retry_after_s: float | None = None
    """When set, the response carries `Retry-After` (seconds, rounded up) so clients back off."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep keyword-only fields when Ray pickles the exception between processes.
        return (_rebuild, (type(self), self.message, self.param, self.code, self.retry_after_s))

    def to_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": self.param,
                "code": self.code,
            }
        }


def _rebuild(cls: type[CoEError], message: str, param: str | None, code: str | None,
             retry_after_s: float | None = None) -> CoEError:
    err = cls(message, param=param, code=code)
    err.retry_after_s = retry_after_s
    return err


class InvalidRequest(CoEError):
    status_code = 400
    error_type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    """The prompt plus `max_tokens` does not fit the expert's context window."""

    def __init__(self, message: str, *, param: str | None = "messages", code: str | None = None) -> None:
        super().__init__(message, param=param, code=code or "context_length_exceeded")


class ModelNotFound(CoEError):
    status_code = 404
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = "model", code: str | None = None) -> None:
        super().__init__(message, param=param, code=code or "model_not_found")


class RequestTooLarge(CoEError):
    status_code = 413
    error_type = "invalid_request_error"


class ExpertUnavailable(CoEError):
    """The expert exists but cannot answer now (engine down, remote unreachable)."""

    status_code = 503
    error_type = "service_unavailable"


class Overloaded(ExpertUnavailable):
    """A bounded queue is full: refused at once with Retry-After instead of waiting without bound."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, param=param, code=code or "overloaded")


class UpstreamRateLimited(CoEError):
    """A remote expert refused for rate or quota (its 429): the client gets 429 and the upstream's
    Retry-After, not a 502 that an SDK would not back off from."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message, param=param, code=code or "rate_limit_exceeded")


class ContentFiltered(InvalidRequest):
    """The expert's provider refused the prompt or answer under its content policy."""

    def __init__(self, message: str, *, param: str | None = "messages", code: str | None = None) -> None:
        super().__init__(message, param=param, code=code or "content_filter")


class UpstreamError(CoEError):
    """A remote expert answered with an error of its own."""

    status_code = 502
    error_type = "upstream_error"


class UserInputError(Exception):
    """An error the user fixes (a bad file, an unknown option), not a fault of CoE.

    Not a `CoEError`: it has no HTTP status and never reaches a client. The CLI prints its message in one
    line and exits 2 instead of a traceback (`coe.cli.errors.fail_cleanly`). Packages outside `coe/`
    (``router_training``) subclass it, so the CLI can catch their errors without importing them.
    """
