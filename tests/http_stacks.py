"""Running the client's HTTP tests on both stacks, httpx and httpx2.

Tests that use the `http_stack` fixture run twice. Their clients come from
`async_client()`: on httpx a plain `httpx.AsyncClient` (which respx mocks);
on httpx2 an `httpx2.AsyncClient` whose `MockTransport` forwards every
request through httpx, so the same respx routes answer it and exceptions come
back as httpx2's own. `real_async_client()` gives a client of the current
stack with a real network transport, for tests against a loopback server.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import Any

import httpx
import httpx2
import pytest

BASE = "https://llm.test/v1"
"""The base URL the client tests' respx routes answer under."""

STACK: ContextVar[str] = ContextVar("STACK", default="httpx")

TLS = ssl.create_default_context()
"""One TLS context for every client: building one per client costs ~50 ms."""


@pytest.fixture(params=["httpx", "httpx2"])
def http_stack(request: pytest.FixtureRequest) -> Iterator[str]:
    token = STACK.set(str(request.param))
    yield str(request.param)
    STACK.reset(token)


def async_client(**kwargs: Any) -> Any:
    """A client of the current stack, answered by respx on either stack."""
    if STACK.get() == "httpx":
        return httpx.AsyncClient(verify=TLS, **kwargs)
    return httpx2.AsyncClient(transport=httpx2.MockTransport(_through_httpx), **kwargs)


def real_async_client(**kwargs: Any) -> Any:
    """A client of the current stack that really connects (to a loopback server)."""
    module: Any = httpx if STACK.get() == "httpx" else httpx2
    return module.AsyncClient(trust_env=False, verify=TLS, **kwargs)


class _Body(httpx2.AsyncByteStream):
    """An httpx response's body, read as the httpx2 response is read."""

    def __init__(self, response: httpx.Response, client: httpx.AsyncClient) -> None:
        self._response = response
        self._client = client

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.TransportError as exc:
            raise _as_httpx2(exc) from exc

    async def aclose(self) -> None:
        await self._response.aclose()
        await self._client.aclose()


async def _through_httpx(request: httpx2.Request) -> httpx2.Response:
    client = httpx.AsyncClient(verify=TLS)
    forwarded = client.build_request(
        request.method,
        str(request.url),
        headers=list(request.headers.multi_items()),
        content=await request.aread(),
        extensions={"timeout": request.extensions.get("timeout", {})},
    )
    try:
        response = await client.send(forwarded, stream=True)
    except httpx.TransportError as exc:
        await client.aclose()
        raise _as_httpx2(exc) from exc
    return httpx2.Response(
        response.status_code,
        headers=list(response.headers.multi_items()),
        stream=_Body(response, client),
    )


def _as_httpx2(exc: httpx.TransportError) -> Exception:
    """httpx2's exception of the same name, so the client sees its own stack's errors."""
    cls = getattr(httpx2, type(exc).__name__, httpx2.TransportError)
    return cls(str(exc))  # type: ignore[no-any-return]
