"""A request sent through a `RateLimit`: its wait, its send, and the corrections its
answer brings (usage, headers, a 429), streamed answers included. Loaded with the first
request of a client that has a rate limit."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from agentkit._client.buckets import Ticket
from agentkit._client.ratelimit import RateLimit, body_int
from agentkit._client.waits import rate_limit_waits
from agentkit._exceptions import APIStatusError

if TYPE_CHECKING:
    import httpx

__all__ = ["limited_send"]


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
        if tickets.probe:
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


def _usage(content: bytes) -> int | None:
    """`usage.total_tokens` of a completion body, found from its end without parsing it
    all (usage comes last, and `"total_tokens":` appears nowhere else)."""
    return body_int(content, b'"total_tokens":')
