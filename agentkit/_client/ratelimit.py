"""`RateLimit`: one queue in front of the provider's request and token limits, shared by
every request of the clients that hold it.

Each request waits, first come first served, until a bucket of requests and one of
tokens both hold its share: one request, and its token estimate (the body's length
over four, plus `max_completion_tokens`, or `max_tokens`, or a default, times `n`).
The buckets refill continuously over the window, as the provider's do. When the
answer comes, the estimate is replaced by the usage it reports, and the buckets are
lowered to the `x-ratelimit-remaining-*` the provider sent (never raised: it may
count other clients on the same key). A 429 pauses the whole queue until the time
the provider gave (`retry-after`, else `x-ratelimit-reset-*`), not only the request
that got it.

Only the head of the queue looks at the buckets; the others sleep until it leaves.
The head sleeps until the buckets will have refilled enough, or until an answer
gives tokens back, whichever is first: no polling. A cancelled waiter leaves the
queue without having taken anything.

The buckets themselves are behind `Bucket`: in this process (`LocalBucket`), or in
Redis (`agentkit.ratelimit.RedisRateLimit`) for limits shared by many processes.

The module loads with the first client that has a rate limit.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from agentkit._client.retry import retry_after
from agentkit._exceptions import APIStatusError, RequestOverRateLimitError, UserError

if TYPE_CHECKING:
    import httpx


__all__ = [
    "DEFAULT_COMPLETION_TOKENS",
    "Bucket",
    "Caps",
    "Change",
    "LocalBucket",
    "RateLimit",
    "Taken",
    "Ticket",
    "limited_send",
    "parse_duration",
    "rate_limit_waits",
]

DEFAULT_COMPLETION_TOKENS = 1024
"""Tokens counted for the answer of a request that sets no `max_completion_tokens`. The
provider's own reckoning differs (OpenAI counts `max_tokens` when set); the usage in the
answer corrects the estimate either way."""

rate_limit_waits: ContextVar[list[float] | None] = ContextVar(
    "agentkit_rate_limit_waits", default=None
)
"""Where a run collects the seconds its requests waited for the limiter: a run with an
event handler sets a list here around each model request (see `ModelRequestEnd`)."""


class Caps:
    """The limits in force: requests and tokens per window (None: no limit known)."""

    __slots__ = ("requests", "tokens", "window")

    def __init__(self, requests: int | None, tokens: int | None, window: float) -> None:
        self.requests = requests
        self.tokens = tokens
        self.window = window


class Bucket(Protocol):
    """Where the levels of the two buckets live; every method is atomic on them."""

    async def take(self, tokens: int, caps: Caps) -> Taken:
        """Take one request and `tokens` if both are there: a wait of 0 and the levels
        left; else take nothing: the seconds until they will be there (or a pause ends)."""
        ...

    async def adjust(self, change: Change, caps: Caps) -> None:
        """Apply `change` to the levels."""
        ...

    async def pause(self, seconds: float, caps: Caps) -> None:
        """Let nothing through for `seconds` from now (a longer pause already set stays)."""
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

    async def take(self, tokens: int, caps: Caps) -> Taken:
        """See `Bucket.take`."""
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
        lower = change.epoch == self._epoch and (change.lower_requests or change.lower_tokens)
        if lower:
            self._epoch += 1
        if self._requests is not None:
            level = self._requests + change.requests - (change.lower_requests if lower else 0)
            self._requests = min(level, caps.requests or math.inf)
            if change.ceiling_requests is not None:
                self._requests = min(self._requests, change.ceiling_requests)
        if self._tokens is not None:
            level = self._tokens + change.tokens - (change.lower_tokens if lower else 0)
            self._tokens = min(level, caps.tokens or math.inf)
            if change.ceiling_tokens is not None:
                self._tokens = min(self._tokens, change.ceiling_tokens)

    async def pause(self, seconds: float, caps: Caps) -> None:
        """See `Bucket.pause`."""
        self._pause_end = max(self._pause_end, time.monotonic() + seconds)


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

    __slots__ = ("epoch", "requests_left", "tokens", "tokens_left", "waited")

    def __init__(self, tokens: int, taken: Taken, waited: float) -> None:
        self.tokens = tokens
        self.requests_left = taken[1]
        self.tokens_left = taken[2]
        self.epoch = taken[3]
        self.waited = waited


class _Waiter:
    __slots__ = ("kick", "turn")

    def __init__(self) -> None:
        self.turn = anyio.Event()  # set when it becomes the head of the queue
        self.kick: anyio.Event | None = None  # set to look at the buckets again


class RateLimit:
    """Requests and tokens per window, shared by every request of the clients that hold
    it: `ChatClient(rate_limit=RateLimit(rpm=500, tpm=200_000))`.

    Requests wait their turn (first come, first served) until they fit under both
    limits; waiting is cancellable and takes nothing. Limits not given are learned
    from the provider's `x-ratelimit-limit-requests` and `x-ratelimit-limit-tokens`
    headers, and a given limit above the one the provider reports is lowered to it:
    `RateLimit()` alone learns both from the first answer (requests before it are not
    held back). A 429 pauses every waiting request until the time the provider gave.

    Args:
        rpm: Requests per window (per minute by default).
        tpm: Tokens per window: prompt and completion, estimated before sending.
        window: The seconds the limits count over: 60 for the per-minute limits
            providers publish.
        completion_tokens: Tokens counted for the answer of a request that sets no
            `max_completion_tokens` (or `max_tokens`).
        chars_per_token: Bytes of request body per token, for the prompt estimate.
        learn: Whether to take limits from the provider's headers.

    Raises:
        UserError: A limit that is not a positive number.
    """

    def __init__(
        self,
        rpm: int | None = None,
        tpm: int | None = None,
        *,
        window: float = 60.0,
        completion_tokens: int = DEFAULT_COMPLETION_TOKENS,
        chars_per_token: float = 4.0,
        learn: bool = True,
    ) -> None:
        for name, value in (
            ("rpm", rpm),
            ("tpm", tpm),
            ("window", window),
            ("completion_tokens", completion_tokens),
            ("chars_per_token", chars_per_token),
        ):
            if value is None and name in ("rpm", "tpm"):
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise UserError(f"RateLimit({name}=...) must be a positive number, got {value!r}")
        if rpm is None and tpm is None and not learn:
            raise UserError("RateLimit() needs rpm=, tpm=, or learn=True to limit anything")
        self.rpm = rpm
        self.tpm = tpm
        self.window = float(window)
        self.completion_tokens = completion_tokens
        self.chars_per_token = chars_per_token
        self.learn = learn
        self._caps = Caps(rpm, tpm, self.window)
        # With no limit given, one request goes first and the rest wait for its answer,
        # which tells the limits (or, without the headers, that there are none known).
        self._probing = learn and rpm is None and tpm is None
        self._probe_out = False
        self._probe_done: anyio.Event | None = None
        self._queue: deque[_Waiter] = deque()
        self._bucket: Bucket = self._make_bucket()

    def _make_bucket(self) -> Bucket:
        """The buckets this limit keeps its levels in (a subclass may keep them elsewhere)."""
        return LocalBucket()

    def __repr__(self) -> str:
        caps = self._caps
        return (
            f"{type(self).__name__}(rpm={caps.requests}, tpm={caps.tokens}, window={self.window:g})"
        )

    @property
    def waiting(self) -> int:
        """Requests waiting their turn now."""
        return len(self._queue)

    # --- the queue ----------------------------------------------------------------------

    async def acquire(self, tokens: int) -> Ticket:
        """Wait until one request and `tokens` fit; take them.

        Raises:
            RequestOverRateLimitError: `tokens` is more than the whole token limit.
        """
        if self._caps.tokens is not None and tokens > self._caps.tokens:
            raise RequestOverRateLimitError("tokens", tokens, self._caps.tokens)
        started = time.monotonic()
        while self._probing:
            if not self._probe_out:
                self._probe_out = True  # this request learns the limits for all
                break
            if self._probe_done is None:
                self._probe_done = anyio.Event()
            await self._probe_done.wait()
        if not self._queue:
            taken = await self._take(tokens)
            if taken[0] == 0:
                return Ticket(tokens, taken, 0.0)
        waiter = _Waiter()
        self._queue.append(waiter)
        try:
            if self._queue[0] is not waiter:
                await waiter.turn.wait()
            while True:
                taken = await self._take(tokens)
                if taken[0] == 0:
                    break
                waiter.kick = anyio.Event()
                with anyio.move_on_after(taken[0]):
                    await waiter.kick.wait()
        finally:
            self._leave(waiter)
        return Ticket(tokens, taken, time.monotonic() - started)

    async def _take(self, tokens: int) -> Taken:
        # Shielded: a bucket in Redis may take the capacity and then lose the reply to a
        # cancellation, and the capacity with it.
        with anyio.CancelScope(shield=True):
            taken = await self._bucket.take(tokens, self._caps)
        return taken

    def _leave(self, waiter: _Waiter) -> None:
        queue = self._queue
        if queue and queue[0] is waiter:
            queue.popleft()
            if queue:
                queue[0].turn.set()
        else:
            queue.remove(waiter)

    def _end_probe(self, *, learned: bool) -> None:
        """The first request is over: with an answer (`learned`), every request goes on
        under the limits learned; without one, the next request tries."""
        if not self._probing:
            return
        self._probing = not learned
        self._probe_out = False
        done, self._probe_done = self._probe_done, None
        if done is not None:
            done.set()

    def _kick(self) -> None:
        """Make the head look at the buckets again: capacity came back, or a pause began."""
        if self._queue:
            kick = self._queue[0].kick
            if kick is not None:
                kick.set()

    # --- what the answers say -----------------------------------------------------------

    async def settle(
        self, ticket: Ticket, used: int | None, headers: Mapping[str, str] | httpx.Headers
    ) -> None:
        """Correct the buckets by a response: the tokens it used (None: keep the estimate),
        the limits and what remains per its headers.

        What remains is what the provider counted when the request arrived, which is
        about when it was let through here: any shortfall between the levels the
        request left here and what the provider says remains was used by someone else
        (another client on the key), and is taken off here too. Requests let through
        after this one are not in the provider's figure, and need no correction.
        """
        self._learn(headers)
        self._end_probe(learned=True)
        used_tokens = ticket.tokens if used is None else used
        change = Change(0.0, float(ticket.tokens - used_tokens), epoch=ticket.epoch)
        told_requests = _int(headers.get("x-ratelimit-remaining-requests"))
        told_tokens = _int(headers.get("x-ratelimit-remaining-tokens"))
        if told_requests is not None:
            if ticket.requests_left is None:
                change.ceiling_requests = told_requests  # no level then: the provider's
            else:
                # Less than one is the provider's rounding down, not someone else.
                change.lower_requests = max(ticket.requests_left - told_requests - 1, 0.0)
        if told_tokens is not None:
            if ticket.tokens_left is None:
                change.ceiling_tokens = told_tokens
            else:
                # The level had this request's estimate taken; the provider, its usage.
                left = ticket.tokens_left + ticket.tokens - used_tokens
                change.lower_tokens = max(left - told_tokens - 1, 0.0)
        if change:
            with anyio.CancelScope(shield=True):
                await self._bucket.adjust(change, self._caps)
        if change.tokens > 0:
            self._kick()

    async def give_back(self, ticket: Ticket, used: int) -> None:
        """The usage of a streamed answer, known at its end: it replaces the estimate."""
        change = Change(0.0, float(ticket.tokens - used))
        if change:
            with anyio.CancelScope(shield=True):
                await self._bucket.adjust(change, self._caps)
            if change.tokens > 0:
                self._kick()

    async def rejected(self, ticket: Ticket, headers: Mapping[str, str] | httpx.Headers) -> None:
        """A 429: pause everyone until the provider's reset, with the levels at most what
        the provider says remains."""
        self._learn(headers)
        self._end_probe(learned=True)
        wait = retry_after(headers)  # type: ignore[arg-type]
        if wait is None:
            resets = [
                parse_duration(headers.get(f"x-ratelimit-reset-{name}"))
                for name in ("requests", "tokens")
            ]
            wait = max((r for r in resets if r is not None), default=None)
        # What the request took stays taken, though the provider did not count it: a
        # 429 says the levels here were too high, and giving it back would repeat it.
        change = Change(
            ceiling_requests=_int(headers.get("x-ratelimit-remaining-requests")),
            ceiling_tokens=_int(headers.get("x-ratelimit-remaining-tokens")),
        )
        with anyio.CancelScope(shield=True):
            await self._bucket.adjust(change, self._caps)
            # No reset given: a second, the shortest window any provider counts.
            await self._bucket.pause(1.0 if wait is None else wait, self._caps)
        self._kick()

    def _learn(self, headers: Mapping[str, str] | httpx.Headers) -> None:
        if not self.learn:
            return
        caps = self._caps
        for name, given in (("requests", self.rpm), ("tokens", self.tpm)):
            told = _int(headers.get(f"x-ratelimit-limit-{name}"))
            if told is not None and told > 0:
                limit = told if given is None else min(given, told)
                if getattr(caps, name) != limit:
                    setattr(caps, name, limit)

    def estimate(self, content: bytes) -> int:
        """The tokens a request body may use: its prompt (bytes over `chars_per_token`)
        and its answer (`max_completion_tokens`, `max_tokens` or `completion_tokens`,
        times `n`)."""
        prompt = math.ceil(len(content) / self.chars_per_token)
        answer = _body_int(content, b'"max_completion_tokens":')
        if answer is None:
            answer = _body_int(content, b'"max_tokens":')
        if answer is None:
            answer = self.completion_tokens
        choices = _body_int(content, b'"n":') or 1
        return prompt + answer * choices


async def limited_send(
    send: Callable[..., Awaitable[httpx.Response]],
    limit: RateLimit,
    request: httpx.Request,
    *,
    stream: bool,
) -> httpx.Response:
    """One attempt of `request` through `limit`: wait for its share, send, settle.
    Only chat requests count: listing the models is not rate limited."""
    if request.method != "POST":
        return await send(request, stream=stream, limited=True)
    tickets = await limit.acquire(limit.estimate(request.content))
    waits = rate_limit_waits.get()
    if waits is not None:
        waits.append(tickets.waited)
    try:
        response = await send(request, stream=stream, limited=True)
    except APIStatusError as error:
        if error.status_code == 429:
            await limit.rejected(tickets, error.response.headers)
        else:
            await limit.settle(tickets, None, error.response.headers)
        raise
    except BaseException:
        limit._end_probe(learned=False)  # no answer: the next request learns the limits
        raise
    if not stream:
        await limit.settle(tickets, _usage(response.content), response.headers)
        return response
    # A streamed answer reports its usage in its last chunk, if at all: the estimate
    # stands until the stream closes, and is corrected then.
    await limit.settle(tickets, None, response.headers)
    response.stream = _usage_tap(response, limit, tickets)
    return response


def _usage_tap(response: httpx.Response, limit: RateLimit, ticket: Ticket) -> Any:
    """The response's byte stream, watched for `"total_tokens":` as it passes, which
    gives the tokens the estimate took back to the limit when the stream closes. A
    compressed stream shows nothing; its estimate stands."""
    # The stack's own base class: its responses check that a stream is one of theirs.
    base = sys.modules[type(response).__module__.partition(".")[0]].AsyncByteStream
    tap = _TAPS.get(base)
    if tap is None:
        tap = _TAPS[base] = type("UsageTap", (_UsageTap, base), {"__slots__": ()})
    return tap(response.stream, limit, ticket)


class _UsageTap:
    __slots__ = ("_closed", "_inner", "_limit", "_tail", "_ticket", "used")

    def __init__(self, inner: Any, limit: RateLimit, ticket: Ticket) -> None:
        self._inner = inner
        self._limit = limit
        self._ticket = ticket
        self._tail = b""
        self._closed = False
        self.used: int | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            # The tail of the last piece: the key or its digits may be cut between two.
            data = self._tail + chunk
            if b'"total_tokens":' in data:
                used = _usage(data)
                if used is not None:
                    self.used = used
            self._tail = data[-64:]
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._closed:
                self._closed = True
                if self.used is not None:
                    await self._limit.give_back(self._ticket, self.used)


_TAPS: dict[type, type] = {}


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | None) -> float | None:
    """Seconds from a reset header: OpenAI's `6m0s`, `1.5s`, `20ms`, or plain seconds."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    return sum(float(number) * _UNIT[unit] for number, unit in parts)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


_KEYS: dict[bytes, re.Pattern[bytes]] = {}


def _body_int(content: bytes, key: bytes) -> int | None:
    """The integer after the last `key` followed by one in compact JSON. Inside a string
    a quote is escaped, so `"key":` with bare quotes can only be a key of an object."""
    pattern = _KEYS.get(key)
    if pattern is None:
        pattern = _KEYS[key] = re.compile(re.escape(key) + rb"\s*(\d+)")
    at = content.rfind(key)
    if at < 0:
        return None
    match = pattern.match(content, at)
    if match is None:  # the last one is something else (a tool parameter named so)
        found = pattern.findall(content)
        return int(found[-1]) if found else None
    return int(match.group(1))


def _usage(content: bytes) -> int | None:
    """`usage.total_tokens` of a completion body, found from its end without parsing it
    all (usage comes last, and `"total_tokens":` appears nowhere else)."""
    return _body_int(content, b'"total_tokens":')
