"""A chat request sent straight to the client's transport, doing what `AsyncClient.send`
would do for it, when none of that method's general machinery applies."""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

import httpx

from agentkit._client.http import Stack

__all__ = ["can_send_direct", "send_direct"]


def can_send_direct(http: Any, stack: Stack) -> bool:
    """Whether `send_direct` does for `http` all that `http.send` would do.

    `AsyncClient.send` runs each request through an auth flow (an async generator),
    a redirect loop with its event hooks, and a stream wrapper that times the
    response, which together cost more than a third of what agentkit does for a
    request. For a client of the library's own class that has none of those set,
    they do nothing but that timing: no auth, no event hooks, no following of
    redirects, and neither `send` nor `_send_single_request` replaced or wrapped.
    Its first request takes the general way, which opens the client as `send`
    does (so that a later `async with client` is refused as before). The URL's
    own user info would be auth too: the caller checks it once.
    """
    cls = type(http)
    if cls is not stack.module.AsyncClient or http._state is not stack.opened:
        return False
    # Patched or wrapped in place (by a tracing or error-reporting SDK, say), `send`
    # is left to do its own work.
    own = stack.own_send
    if own is None or cls.send is not own[0] or cls._send_single_request is not own[1]:
        return False
    hooks = http._event_hooks
    return (
        http._auth is None
        and not http.follow_redirects
        and not hooks["request"]
        and not hooks["response"]
    )


async def send_direct(http: Any, request: httpx.Request, stack: Stack) -> httpx.Response:
    """The response to `request` from `http`'s transport, unread, as
    `http.send(request, stream=True)` gives it when `can_send_direct(http, stack)`.

    The caller reads and closes the body, then sets `response.elapsed`: the stream
    wrapper that would set it is left out.
    """
    transport = http._transport_for_url(request.url)
    try:
        response: httpx.Response = await transport.handle_async_request(request)
    except stack.module.RequestError as exc:
        exc.request = request  # as the library's own `request_context` does
        raise
    response.request = request
    http.cookies.extract_cookies(response)
    response.default_encoding = http._default_encoding
    logger = stack.logger
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            'HTTP Request: %s %s "%s %d %s"',
            request.method,
            request.url,
            response.http_version,
            response.status_code,
            response.reason_phrase,
        )
    # (The status is compared first: `has_redirect_location` reads five enum members.)
    if 300 <= response.status_code < 400 and response.has_redirect_location:
        # Not followed (`follow_redirects` is off): the request a redirect would make.
        with suppress(stack.module.RemoteProtocolError):
            response.next_request = http._build_redirect_request(request, response)
    return response
