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

The buckets are in `buckets.py`; a request's way through the limit, in `limited.py`.
The module loads with the first client that has a rate limit.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING

import anyio

from agentkit._client.buckets import Bucket, Caps, Change, LocalBucket, Taken, Ticket
from agentkit._client.retry import retry_after
from agentkit._exceptions import RateLimiterError, RequestOverRateLimitError, UserError

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_COMPLETION_TOKENS", "RateLimit", "body_int", "parse_duration"]

logger = logging.getLogger("agentkit")

DEFAULT_COMPLETION_TOKENS = 1024
"""Tokens counted for the answer of a request that sets no `max_completion_tokens`. The
provider's own reckoning differs (OpenAI counts `max_tokens` when set); the usage in the
answer corrects the estimate either way."""


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
    `RateLimit()` alone learns both from the first answer: its first request goes
    alone, and the others wait for its answer. A 429 pauses every waiting request until the time the provider gave.

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
        self._taking = False
        self._id = os.urandom(6).hex()
        self._serial = itertools.count()
        self._bucket: Bucket = self._make_bucket()
        # Buckets in memory never suspend, so nothing can cut them short: no shield.
        self._local = isinstance(self._bucket, LocalBucket)

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
        self._check_fits(tokens)
        started = time.monotonic()
        while self._probing:
            if not self._probe_out:
                self._probe_out = True  # this request learns the limits for all
                try:
                    ticket = await self._acquire(tokens, started)
                except BaseException:
                    self._end_probe(learned=False)
                    raise
                ticket.probe = True
                return ticket
            if self._probe_done is None:
                self._probe_done = anyio.Event()
            await self._probe_done.wait()
        return await self._acquire(tokens, started)

    def _check_fits(self, tokens: int) -> None:
        if self._caps.tokens is not None and tokens > self._caps.tokens:
            raise RequestOverRateLimitError("tokens", tokens, self._caps.tokens)

    async def _acquire(self, tokens: int, started: float) -> Ticket:
        # Names this request to a store shared by processes, which keeps a place in line
        # for a request that found too little (see `RedisBucket.take`).
        owner = f"{self._id}:{next(self._serial)}"
        held = False
        if not self._queue and not self._taking:
            # Nobody waits: try at once. Arrivals during a slow look (Redis) queue up.
            self._taking = True
            try:
                taken = await self._take(tokens, owner)
            finally:
                self._taking = False
            if taken[0] == 0:
                return Ticket(tokens, taken, 0.0)
            held = True
            if self._queue:
                # Others queued during the look, and go first: this one leaves its place.
                await self._release(owner)
                held = False
        waiter = _Waiter()
        self._queue.append(waiter)
        try:
            if self._queue[0] is not waiter:
                await waiter.turn.wait()
            while True:
                # Made before the look: what an answer gives back during a slow look
                # (Redis) still wakes this waiter.
                waiter.kick = anyio.Event()
                taken = await self._take(tokens, owner)
                if taken[0] == 0:
                    held = False  # taking leaves the place
                    break
                held = True
                with anyio.move_on_after(taken[0]):
                    await waiter.kick.wait()
        finally:
            if held and not self._local:  # cancelled or failed: leave the place in line
                await self._release(owner)
            self._leave(waiter)
        return Ticket(tokens, taken, time.monotonic() - started)

    async def _take(self, tokens: int, owner: str) -> Taken:
        self._check_fits(tokens)  # again: a limit learned while waiting may be lower
        if self._local:
            return await self._bucket.take(tokens, self._caps, owner)
        # Shielded: a bucket in Redis may take the capacity and then lose the reply to a
        # cancellation, and the capacity with it.
        with anyio.CancelScope(shield=True):
            taken = await self._bucket.take(tokens, self._caps, owner)
        return taken

    async def _release(self, owner: str) -> None:
        try:
            with anyio.CancelScope(shield=True):
                await self._bucket.release(owner, self._caps)
        except RateLimiterError as exc:  # the place lapses by itself soon after
            logger.warning("rate limit: a place in line was not left: %s", exc)

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
        learned = self._learn(headers)
        self._end_probe(learned=True)
        used_tokens = ticket.tokens if used is None else used
        change = Change(0.0, float(ticket.tokens - used_tokens), epoch=ticket.epoch)
        told_requests = _int(headers.get("x-ratelimit-remaining-requests"))
        told_tokens = _int(headers.get("x-ratelimit-remaining-tokens"))
        caps = self._caps
        if told_requests is not None:
            # No level then, or one under other limits: the provider's is the most.
            if ticket.requests_left is None or learned:
                change.ceiling_requests = told_requests
            else:
                # Under a limit lowered since (by another answer), the level is at most
                # that limit: the shortfall counts from there.
                left = _at_most(ticket.requests_left, caps.requests)
                # Less than one is the provider's rounding down, not someone else.
                change.lower_requests = max(left - told_requests - 1, 0.0)
        if told_tokens is not None:
            if ticket.tokens_left is None or learned:
                change.ceiling_tokens = told_tokens
            else:
                # The level had this request's estimate taken; the provider, its usage.
                left = _at_most(ticket.tokens_left, caps.tokens) + ticket.tokens - used_tokens
                change.lower_tokens = max(left - told_tokens - 1, 0.0)
        if change or learned:
            # New limits go to the store too (in Redis, for processes yet to learn them).
            await self._correct(change, always=learned)
        if change.tokens > 0:
            self._kick()

    async def _correct(
        self, change: Change, pause: float | None = None, *, always: bool = False
    ) -> None:
        """Apply an answer's correction (and a 429's pause). The answer is already here:
        if the store of the buckets fails now, the request does not fail with it; the
        levels keep the estimate, which errs on the safe side."""
        try:
            if self._local:
                await self._apply(change, pause, always)
            else:
                # Shielded: a correction cut short by a cancellation would be lost.
                with anyio.CancelScope(shield=True):
                    await self._apply(change, pause, always)
        except RateLimiterError as exc:
            logger.warning("rate limit: an answer's correction was not stored: %s", exc)

    async def _apply(self, change: Change, pause: float | None, always: bool) -> None:
        if change or always:
            await self._bucket.adjust(change, self._caps)
        if pause is not None:
            await self._bucket.pause(pause, self._caps)

    async def give_back(self, ticket: Ticket, used: int) -> None:
        """The usage of a streamed answer, known at its end: it replaces the estimate."""
        change = Change(0.0, float(ticket.tokens - used))
        if change:
            await self._correct(change)
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
        # No reset given: a second, the shortest window any provider counts.
        await self._correct(change, 1.0 if wait is None else wait)
        self._kick()

    def _learn(self, headers: Mapping[str, str] | httpx.Headers) -> bool:
        """Take the limits the headers give; whether they changed."""
        if not self.learn:
            return False
        caps = self._caps
        changed = False
        for name, given in (("requests", self.rpm), ("tokens", self.tpm)):
            told = _int(headers.get(f"x-ratelimit-limit-{name}"))
            if told is not None and told > 0:
                limit = told if given is None else min(given, told)
                if getattr(caps, name) != limit:
                    setattr(caps, name, limit)
                    changed = True
        return changed

    def estimate(self, content: bytes) -> int:
        """The tokens a request body may use: its prompt (bytes over `chars_per_token`)
        and its answer (`max_completion_tokens`, `max_tokens` or `completion_tokens`,
        times `n`)."""
        prompt = math.ceil(len(content) / self.chars_per_token)
        answer = body_int(content, b'"max_completion_tokens":')
        if answer is None:
            answer = body_int(content, b'"max_tokens":')
        if answer is None:
            answer = self.completion_tokens
        choices = body_int(content, b'"n":') or 1
        return prompt + answer * choices


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


def _at_most(level: float, cap: int | None) -> float:
    return level if cap is None else min(level, cap)


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


_KEYS: dict[bytes, re.Pattern[bytes]] = {}


def body_int(content: bytes, key: bytes) -> int | None:
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
