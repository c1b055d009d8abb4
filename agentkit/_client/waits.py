"""Where a run collects the seconds its requests waited for a `RateLimit`: a run with
an event handler sets a list here around each model request, and the client adds each
attempt's wait to it (see `ModelRequestEnd.rate_limit_wait`). A module of its own, so
that a run with an event handler does not load the limiter."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["rate_limit_waits"]

rate_limit_waits: ContextVar[list[float] | None] = ContextVar(
    "agentkit_rate_limit_waits", default=None
)
