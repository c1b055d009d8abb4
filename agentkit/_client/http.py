"""The HTTP stacks a `ChatClient` runs on: httpx (the default) or httpx2 (optional).

The two have the same API but separate classes, so everything that names a
class (exceptions to catch, `Timeout`, `Limits`) goes through a `Stack`.
httpx2 is imported only when a client asks for it.
"""

from __future__ import annotations

import importlib
import logging
from types import FunctionType, ModuleType
from typing import Any, Literal

import httpx

from agentkit._exceptions import UserError

__all__ = ["HTTPStackName", "Stack", "check_cookies_first", "stack_named", "stack_of"]

HTTPStackName = Literal["httpx", "httpx2"]


class Stack:
    """One HTTP library, and the classes agentkit uses from it."""

    __slots__ = ("logger", "module", "name", "opened", "own_send")

    def __init__(self, name: str, module: ModuleType) -> None:
        self.name = name
        self.module = module
        self.logger = logging.getLogger(name)
        """The library's own logger, which logs each request at INFO."""
        self.opened = module._client.ClientState.OPENED
        """The state of an `AsyncClient` that has sent a request and is not closed."""
        self.own_send = _own_methods(module)
        """`AsyncClient.send` and `._send_single_request` as the library defines them, or
        None when something replaced or wrapped either before agentkit saw them."""

    def __repr__(self) -> str:
        return f"Stack({self.name!r})"

    @property
    def transport_error(self) -> type[Exception]:
        """Raised when no complete response arrived (connection, protocol, timeout)."""
        return self.module.TransportError  # type: ignore[no-any-return]

    @property
    def timeout_error(self) -> type[Exception]:
        """The timeout subclass of `transport_error`."""
        return self.module.TimeoutException  # type: ignore[no-any-return]

    @property
    def local_protocol_error(self) -> type[Exception]:
        """Raised for a request that cannot be sent at all (a bad header)."""
        return self.module.LocalProtocolError  # type: ignore[no-any-return]

    @property
    def http_error(self) -> type[Exception]:
        """The base of every exception the library raises."""
        return self.module.HTTPError  # type: ignore[no-any-return]

    def timeout(self, value: Any) -> Any:
        """This stack's `Timeout` for seconds, or for either library's `Timeout`."""
        if isinstance(value, (int, float)):
            return self.module.Timeout(value)
        return self.module.Timeout(
            connect=value.connect, read=value.read, write=value.write, pool=value.pool
        )

    def client(self, *, timeout: Any, limits: httpx.Limits) -> Any:
        """A new `AsyncClient` of this stack."""
        return self.module.AsyncClient(
            timeout=self.timeout(timeout),
            limits=self.module.Limits(
                max_connections=limits.max_connections,
                max_keepalive_connections=limits.max_keepalive_connections,
                keepalive_expiry=limits.keepalive_expiry,
            ),
        )


def _own_methods(module: ModuleType) -> tuple[object, object] | None:
    methods = tuple(
        module.AsyncClient.__dict__.get(name) for name in ("send", "_send_single_request")
    )
    for method in methods:
        if (
            type(method) is not FunctionType
            or method.__module__ != module._client.__name__
            or hasattr(method, "__wrapped__")
        ):
            return None
    return methods[0], methods[1]


_HTTPX = Stack("httpx", httpx)


def stack_named(name: str) -> Stack:
    """The stack called `name`, importing it if needed."""
    if name == "httpx":
        return _HTTPX
    if name != "httpx2":
        raise UserError(f'http must be "httpx" or "httpx2", got {name!r}')
    try:
        return Stack("httpx2", importlib.import_module("httpx2"))
    except ImportError:
        raise UserError(
            "http='httpx2' needs the httpx2 package: pip install 'agentkit[httpx2]'"
        ) from None


def stack_of(http_client: Any) -> Stack:
    """The stack an `AsyncClient` (or a subclass of one) belongs to."""
    for cls in type(http_client).__mro__:
        root = cls.__module__.partition(".")[0]
        if root in ("httpx", "httpx2") and cls.__name__ == "AsyncClient":
            return stack_named(root)
    raise UserError(
        "http_client must be an httpx.AsyncClient or an httpx2.AsyncClient, "
        f"got {type(http_client).__name__}"
    )


class _CookiesChecked(httpx.Cookies):
    """httpx's cookie jar, which looks for a `Set-Cookie` header before it parses
    a response's headers for one (as httpx2's does)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        for key, _ in response.headers.raw:
            if key.lower() in (b"set-cookie", b"set-cookie2"):
                super().extract_cookies(response)
                return


def check_cookies_first(http_client: Any) -> None:
    """Have an httpx `AsyncClient` skip its cookie jar for responses that set none.

    httpx gives every response to the jar, which copies its headers into an
    `email.message.Message` first: about 17 µs a response, a tenth of a clock
    run, for APIs that hardly ever set a cookie. The client keeps its jar, so
    cookies set by a response are kept and sent as before; an httpx2 client, or
    one whose cookies are already not httpx's own class, is left as it is.
    """
    cookies = getattr(http_client, "_cookies", None)
    if type(cookies) is httpx.Cookies:
        http_client._cookies = _CookiesChecked(cookies.jar)
