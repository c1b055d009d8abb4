"""When to retry a failed request, and how long to wait first."""

from __future__ import annotations

import datetime
import email.utils
import math
import random
import time
from typing import Any

import httpx

__all__ = ["MAX_RETRY_AFTER", "backoff_delay", "retry_after", "should_retry"]

INITIAL_DELAY = 0.5
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
"""A server asking for a longer wait gets an error at once: a service must not hang."""

_RETRY_STATUSES = frozenset({408, 409, 429})


def should_retry(status_code: int, headers: httpx.Headers, body: Any) -> bool:
    """Whether an error answer is worth another attempt."""
    if status_code == 429 and _error_code(body) == "insufficient_quota":
        # An empty account stays empty; retrying only burns time.
        return False
    override = str(headers.get("x-should-retry", "")).strip().lower()
    if override in ("true", "false"):
        return override == "true"
    return status_code in _RETRY_STATUSES or status_code >= 500


def _error_code(body: Any) -> Any:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def retry_after(headers: httpx.Headers, *, now: float | None = None) -> float | None:
    """The wait a response asks for, in seconds: `retry-after-ms`, then `Retry-After`
    (seconds or an HTTP date). None when neither is present or readable."""
    millis = _seconds(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def _seconds(value: str | None) -> float | None:
    """A number of seconds (or milliseconds) from a header, or None when it is not one.

    `nan` is not a wait; `inf` is, and a long one.
    """
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return None if math.isnan(number) else max(number, 0.0)


def backoff_delay(attempt: int) -> float:
    """Exponential backoff with jitter: about 0.5 s, 1 s, 2 s, … capped at 8 s.

    `attempt` counts retries already made (0 before the first retry). Jitter
    spreads out clients that failed together so they do not retry in step.
    """
    # Cap the exponent too: 2.0**attempt overflows a float past about 1024 retries.
    delay = min(INITIAL_DELAY * 2.0 ** min(attempt, 16), MAX_DELAY)
    return delay * (1.0 - 0.25 * random.random())
