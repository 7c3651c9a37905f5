"""How one expert fails and scales: retries, circuit breaker, stream timeouts and autoscaling."""

from __future__ import annotations

from pydantic import Field, model_validator

from coe.config.base import StrictModel

class RetryPolicy(StrictModel):
    """Retries of one expert for failures that can succeed on retry (429, 5xx, unreachable, timeout);
    a request error (context length, content filter, bad parameters) is never retried."""

    max_retries: int = Field(2, ge=0, description="Attempts after the first, on the same expert.")
    backoff_s: float = Field(0.25, ge=0, description="First backoff; doubles per retry, with full jitter.")
    backoff_max_s: float = Field(4.0, ge=0, description="Longest backoff between two attempts.")
    retry_after_cap_s: float = Field(
        10.0, ge=0, description="An upstream Retry-After up to this is honoured; a longer one moves on to a fallback "
        "(or answers 429 with it) instead of holding the request.",
    )
    deadline_s: float = Field(
        30.0, gt=0, description="No new attempt on this expert starts after this long: a silent upstream costs about "
        "one timeout, not one per retry.",
    )


class BreakerPolicy(StrictModel):
    """A circuit breaker per expert, shared by every ingress replica through the state store."""

    failures: int = Field(5, ge=1, description="Failures (5xx, unreachable, timeout) in one window that open it.")
    window_s: float = Field(30.0, gt=0, description="Length of the counting window.")
    open_s: float = Field(15.0, gt=0, description="How long it stays open before one half-open probe is let through.")


DEFAULT_REPLICA_QUEUE_S = 10.0


class StreamTimeouts(StrictModel):
    """Bounds on a streaming answer, enforced at CoE's door for every kind of expert."""

    first_token_s: float = Field(30.0, gt=0, description="From the request to the first piece of the answer.")
    stall_s: float = Field(30.0, gt=0, description="Longest silence between two pieces.")
    queue_s: float | None = Field(
        None, gt=0, description="Longest wait for a local expert's replica to accept a request. A replica "
        "restarting after a crash takes about a minute; past this the request goes to a fallback (or fails with "
        "503 and Retry-After) instead of waiting for it. Default: 10 s, or no bound for an expert that scales to "
        "zero (its first request waits for a boot).",
    )


class ScalingOptions(StrictModel):
    """Ray Serve autoscaling of a local expert's replicas from queue depth (ongoing requests per replica)."""

    min_replicas: int = Field(1, ge=0, description="0 lets a cold expert scale to zero (its first request waits for a boot).")
    max_replicas: int = Field(1, ge=1)
    initial_replicas: int | None = Field(None, ge=0, description="Replicas at deploy time (default: min_replicas).")
    target_ongoing_requests: float = Field(
        4.0, gt=0, description="Queued + running requests per replica Serve aims for; above it, it scales up."
    )
    upscale_delay_s: float = Field(10.0, ge=0)
    downscale_delay_s: float = Field(300.0, ge=0, description="Idle time before a replica is removed.")
    downscale_to_zero_delay_s: float | None = Field(
        None, ge=0, description="Idle time before the last replica goes (default: downscale_delay_s)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> "ScalingOptions":
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        if self.initial_replicas is not None and not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ValueError("initial_replicas must lie between min_replicas and max_replicas")
        return self
