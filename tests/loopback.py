"""Serve a test server's connections on a free port of 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
from anyio.abc import SocketAttribute, SocketStream

S = TypeVar("S")


@asynccontextmanager
async def on_loopback(
    server: S, serve: Callable[[SocketStream, S], Awaitable[Any]]
) -> AsyncIterator[S]:
    """Set `server.base_url` to `http://127.0.0.1:<port>/v1` and hand each connection to
    `serve(stream, server)` until the block ends."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(SocketAttribute.local_port)
    server.base_url = f"http://127.0.0.1:{port}/v1"  # type: ignore[attr-defined]

    async def handle(stream: SocketStream) -> None:
        await serve(stream, server)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        try:
            yield server
        finally:
            tg.cancel_scope.cancel()
