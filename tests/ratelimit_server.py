"""A rate-limited OpenAI-compatible server on 127.0.0.1, on whichever anyio backend runs.

It answers chat completions like `fault_server`'s tiny model (a tool call to a user
message, text once tool answers are back), but enforces a request limit and a token
limit per window the way OpenAI does: two buckets that refill continuously over the
window. A request is charged one request and its prompt plus completion tokens when it
arrives; one that does not fit gets a 429 (not charged) with `retry-after`,
`retry-after-ms` and the `x-ratelimit-*` headers. Every answer carries
`x-ratelimit-limit-{requests,tokens}`, `x-ratelimit-remaining-{requests,tokens}` and
`x-ratelimit-reset-{requests,tokens}` (the time until the bucket is full, as OpenAI
writes it: `1s`, `250ms`, `6m0s`).

The window is scaled down for tests: 60 requests and 20,000 tokens per second is the
same limit as per minute, sixty times faster.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import SocketStream

from tests.fault_server import Request, _head, _read_request, completion, normal_message
from tests.loopback import on_loopback


def duration(seconds: float) -> str:
    """A reset time as OpenAI writes it: `6m0s`, `1.5s`, `250ms`."""
    if seconds < 1:
        return f"{max(math.ceil(seconds * 1000), 0)}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def prompt_tokens(body: dict[str, Any]) -> int:
    """What this server counts for a prompt: the messages' JSON over four."""
    return len(json.dumps(body.get("messages", []))) // 4 + 10


@dataclass
class LimitedServer:
    rpm: int = 60
    tpm: int = 20_000
    window: float = 1.0
    completion_tokens: int = 40
    """Tokens each answer reports as its completion."""
    base_url: str = ""
    accepted: list[float] = field(default_factory=list)
    """When each request that was answered arrived (time.monotonic)."""
    rejected: list[float] = field(default_factory=list)
    """When each request that got a 429 arrived."""
    tokens_used: int = 0
    accepted_tokens: list[int] = field(default_factory=list)
    """The tokens charged for each answered request, in the order of `accepted`."""
    _requests: float = 0.0
    _tokens: float = 0.0
    _stamp: float = 0.0

    def __post_init__(self) -> None:
        self._requests, self._tokens = float(self.rpm), float(self.tpm)
        self._stamp = time.monotonic()

    def admit(self, tokens: int) -> tuple[bool, dict[str, str]]:
        """Charge a request of `tokens` if it fits; whether it did, and the headers."""
        now = time.monotonic()
        elapsed, self._stamp = now - self._stamp, now
        self._requests = min(self._requests + elapsed * self.rpm / self.window, self.rpm)
        self._tokens = min(self._tokens + elapsed * self.tpm / self.window, self.tpm)
        fits = self._requests >= 1 and self._tokens >= tokens
        if fits:
            self._requests -= 1
            self._tokens -= tokens
            self.tokens_used += tokens
            self.accepted.append(now)
            self.accepted_tokens.append(tokens)
        else:
            self.rejected.append(now)
        headers = {
            "x_ratelimit_limit_requests": str(self.rpm),
            "x_ratelimit_limit_tokens": str(self.tpm),
            "x_ratelimit_remaining_requests": str(max(math.floor(self._requests), 0)),
            "x_ratelimit_remaining_tokens": str(max(math.floor(self._tokens), 0)),
            "x_ratelimit_reset_requests": duration(
                (self.rpm - self._requests) * self.window / self.rpm
            ),
            "x_ratelimit_reset_tokens": duration(
                (self.tpm - self._tokens) * self.window / self.tpm
            ),
        }
        if not fits:
            wait = max(
                (1 - self._requests) * self.window / self.rpm,
                (tokens - self._tokens) * self.window / self.tpm,
                0.0,
            )
            headers["retry_after"] = str(math.ceil(wait))
            headers["retry_after_ms"] = str(math.ceil(wait * 1000))
        return fits, headers


async def _respond(stream: SocketStream, server: LimitedServer, request: Request) -> None:
    message = normal_message(request)
    body_dict = completion(message)
    prompt = prompt_tokens(request.body)
    body_dict["usage"] = {
        "prompt_tokens": prompt,
        "completion_tokens": server.completion_tokens,
        "total_tokens": prompt + server.completion_tokens,
    }
    fits, headers = server.admit(prompt + server.completion_tokens)
    if fits:
        body = json.dumps(body_dict).encode()
        head = _head("200 OK", "application/json", length=len(body), **headers)
    else:
        error = {
            "message": "Rate limit reached for requests or tokens per min; please try again",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        body = json.dumps({"error": error}).encode()
        head = _head("429 Too Many Requests", "application/json", length=len(body), **headers)
    await stream.send(head + body)


async def _serve(stream: SocketStream, server: LimitedServer) -> None:
    buffer = bytearray()
    try:
        async with stream:
            while (request := await _read_request(stream, buffer)) is not None:
                await _respond(stream, server, request)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


@asynccontextmanager
async def limited_server(
    *, rpm: int = 60, tpm: int = 20_000, window: float = 1.0
) -> AsyncIterator[LimitedServer]:
    """Serve on a free port of 127.0.0.1; yields the server (base URL and what it saw)."""
    async with on_loopback(LimitedServer(rpm=rpm, tpm=tpm, window=window), _serve) as server:
        yield server
