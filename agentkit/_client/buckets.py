"""The buckets behind a `RateLimit`: what they hold (`Caps`, `Ticket`), how they change
(`Change`), the protocol a store implements (`Bucket`), and the store in this process's
memory (`LocalBucket`). `agentkit.ratelimit.RedisBucket` keeps them in Redis."""

from __future__ import annotations

import math
import time
from typing import Protocol

__all__ = ["Bucket", "Caps", "Change", "LocalBucket", "Taken", "Ticket"]


class Caps:
    """The limits in force: requests and tokens per window (None: no limit known)."""

    __slots__ = ("requests", "tokens", "window")

    def __init__(self, requests: int | None, tokens: int | None, window: float) -> None:
        self.requests = requests
        self.tokens = tokens
        self.window = window


class Bucket(Protocol):
    """Where the levels of the two buckets live; every method is atomic on them."""

    async def take(self, tokens: int, caps: Caps, owner: str) -> Taken:
        """Take one request and `tokens` if both are there: a wait of 0 and the levels
        left; else take nothing: the seconds until they will be there (or a pause ends).
        `owner` names the waiting request, for a store that keeps it a place in line."""
        ...

    async def adjust(self, change: Change, caps: Caps) -> None:
        """Apply `change` to the levels."""
        ...

    async def pause(self, seconds: float, caps: Caps) -> None:
        """Let nothing through for `seconds` from now (a longer pause already set stays)."""
        ...

    async def release(self, owner: str, caps: Caps) -> None:
        """The request `owner` waits no more (cancelled, failed): it leaves its place."""
        ...


class LocalBucket:
    """The buckets in this process's memory."""

    __slots__ = ("_epoch", "_pause_end", "_requests", "_stamp", "_tokens")

    def __init__(self) -> None:
        self._epoch = 0
        self._requests: float | None = None  # None until a limit is known: full then
        self._tokens: float | None = None
        self._stamp = time.monotonic()
        self._pause_end = 0.0

    def _refill(self, caps: Caps, now: float) -> None:
        elapsed = max(now - self._stamp, 0.0)
        self._stamp = now
        if caps.requests is not None:
            level = caps.requests if self._requests is None else self._requests
            self._requests = min(level + elapsed * caps.requests / caps.window, caps.requests)
        if caps.tokens is not None:
            level = caps.tokens if self._tokens is None else self._tokens
            self._tokens = min(level + elapsed * caps.tokens / caps.window, caps.tokens)

    async def take(self, tokens: int, caps: Caps, owner: str = "") -> Taken:
        """See `Bucket.take`. In one process, the queue of `RateLimit` keeps the order:
        `owner` has no place here."""
        now = time.monotonic()
        self._refill(caps, now)
        if now < self._pause_end:
            return (self._pause_end - now, None, None, 0)
        wait = 0.0
        if caps.requests is not None and self._requests is not None and self._requests < 1:
            wait = (1 - self._requests) * caps.window / caps.requests
        if caps.tokens is not None and self._tokens is not None and self._tokens < tokens:
            wait = max(wait, (tokens - self._tokens) * caps.window / caps.tokens)
        if wait > 0:
            return (wait, None, None, 0)
        if self._requests is not None:
            self._requests -= 1
        if self._tokens is not None:
            self._tokens -= tokens
        return (0.0, self._requests, self._tokens, self._epoch)

    async def adjust(self, change: Change, caps: Caps) -> None:
        """See `Bucket.adjust`."""
        self._refill(caps, time.monotonic())
        lower = change.epoch == self._epoch and bool(change.lower_requests or change.lower_tokens)
        if lower:
            self._epoch += 1
        if self._requests is not None:
            level = _lowered(self._requests + change.requests, change.lower_requests, lower)
            self._requests = min(level, caps.requests or math.inf)
            if change.ceiling_requests is not None:
                self._requests = min(self._requests, change.ceiling_requests)
        if self._tokens is not None:
            level = _lowered(self._tokens + change.tokens, change.lower_tokens, lower)
            self._tokens = min(level, caps.tokens or math.inf)
            if change.ceiling_tokens is not None:
                self._tokens = min(self._tokens, change.ceiling_tokens)

    async def pause(self, seconds: float, caps: Caps) -> None:
        """See `Bucket.pause`."""
        self._pause_end = max(self._pause_end, time.monotonic() + seconds)

    async def release(self, owner: str, caps: Caps) -> None:
        """See `Bucket.release`: there are no places here."""


def _lowered(level: float, lower: float, apply: bool) -> float:
    """`level` less use seen elsewhere, but not below zero on that account: the
    provider's remaining, which the shortfall comes from, is never below zero."""
    if not apply or not lower:
        return level
    return max(level - lower, min(level, 0.0))


Taken = tuple[float, "float | None", "float | None", int]
"""What `Bucket.take` returns: the wait (0: taken), the levels of requests and tokens it
left (None: no limit known), and the bucket's correction epoch."""


class Change:
    """A change to the levels, from one response.

    Attributes:
        requests: Given back (taken, when negative), always.
        tokens: Given back (taken, when negative), always.
        lower_requests: Taken off for use the provider saw and this limiter did not,
            only if no such correction came since the request was let through
            (`epoch`), so one shortfall seen by many responses is taken off once.
        lower_tokens: Likewise, for tokens.
        epoch: The correction epoch at the request's take.
        ceiling_requests: The most the level may be after the change (None: no bound).
        ceiling_tokens: Likewise, for tokens.
    """

    __slots__ = (
        "ceiling_requests",
        "ceiling_tokens",
        "epoch",
        "lower_requests",
        "lower_tokens",
        "requests",
        "tokens",
    )

    def __init__(
        self,
        requests: float = 0.0,
        tokens: float = 0.0,
        *,
        lower_requests: float = 0.0,
        lower_tokens: float = 0.0,
        epoch: int = -1,
        ceiling_requests: int | None = None,
        ceiling_tokens: int | None = None,
    ) -> None:
        self.requests = requests
        self.tokens = tokens
        self.lower_requests = lower_requests
        self.lower_tokens = lower_tokens
        self.epoch = epoch
        self.ceiling_requests = ceiling_requests
        self.ceiling_tokens = ceiling_tokens

    def __bool__(self) -> bool:
        return bool(
            self.requests
            or self.tokens
            or self.lower_requests
            or self.lower_tokens
            or self.ceiling_requests is not None
            or self.ceiling_tokens is not None
        )


class Ticket:
    """One request let through: the tokens it took, how long it waited, and the levels of
    the buckets just after it took its share (None: no limit known then)."""

    __slots__ = ("epoch", "probe", "requests_left", "tokens", "tokens_left", "waited")

    def __init__(self, tokens: int, taken: Taken, waited: float) -> None:
        self.tokens = tokens
        self.requests_left = taken[1]
        self.tokens_left = taken[2]
        self.epoch = taken[3]
        self.waited = waited
        self.probe = False  # the first request of a limit learning its limits
