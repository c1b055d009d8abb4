"""A served agent continues its caller's trace: the incoming `traceparent` (and
`tracestate`) made the current context for the request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import context, propagate

__all__ = ["TraceContextMiddleware"]

Scope = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]
]


class TraceContextMiddleware:
    """An ASGI app that runs `app` in the trace context its HTTP requests carry, so an
    instrumented agent served by `agentkit.serve` makes its `invoke_agent` span a
    child of the caller's span.

    Args:
        app: The ASGI app, such as `agentkit.serve.serve(agent)`'s.

    Example:
        >>> app = TraceContextMiddleware(serve(agent))
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        """Handle one ASGI call; an HTTP one in the context of its trace headers."""
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        carrier: dict[str, str] = {}
        for name, value in scope.get("headers") or ():
            if name in (b"traceparent", b"tracestate"):
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        if not carrier:
            await self.app(scope, receive, send)
            return
        token = context.attach(propagate.extract(carrier))
        try:
            await self.app(scope, receive, send)
        finally:
            context.detach(token)
