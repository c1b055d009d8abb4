"""Turning HTTP failures into agentkit errors: the one place foreign errors are translated."""

from __future__ import annotations

import re
from typing import Any

import httpx
from pydantic_core import from_json

from agentkit._client.http import Stack
from agentkit._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from agentkit._redact import display_url, scrub, scrub_value, secrets_of

__all__ = [
    "parse_body",
    "quote",
    "redact_key",
    "request_secrets",
    "status_error",
    "stream_error",
    "transport_error",
]

_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}

# An error object inside a 200 stream has no status of its own; its type says which it is.
_STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "permission_denied": 403,
    "not_found_error": 404,
    "not_found": 404,
    "rate_limit_exceeded": 429,
    "rate_limit_error": 429,
    "insufficient_quota": 429,
    "tokens": 429,
    "requests": 429,
    "server_error": 500,
    "api_error": 500,
    "service_unavailable": 503,
    "overloaded_error": 503,
}

_MAX_TEXT = 300


def parse_body(content: bytes) -> Any:
    """The body as JSON when it is JSON, else as text."""
    try:
        return from_json(content)
    except ValueError:
        return content.decode("utf-8", errors="replace")


def request_secrets(request: httpx.Request) -> tuple[str, ...]:
    """The credentials `request` carries in its headers and URL (see `agentkit._redact`)."""
    return secrets_of(request.headers, request.url)


def quote(text: str, secrets: tuple[str, ...], limit: int) -> str:
    """`text` for an error message: its secrets masked first, then cut to `limit` characters.

    In that order, so that a key straddling the cut does not leave its first
    characters behind. Only the part that can reach the cut is scanned: a body
    of megabytes costs no more than its first `limit` characters.
    """
    longest = max(map(len, secrets), default=0)
    shown = scrub(text[: limit + longest], secrets)
    if len(shown) <= limit and len(text) <= limit + longest:
        return shown
    return shown[: limit - 1] + "…"


def status_error(response: httpx.Response, body: Any) -> APIStatusError:
    """The error for a response with a 4xx or 5xx status, with no secret of the request
    in its message or its `body`."""
    status = response.status_code
    cls = _BY_STATUS.get(status, InternalServerError if status >= 500 else APIStatusError)
    request = response.request
    secrets = request_secrets(request)
    where = f"{request.method} {display_url(request.url)}"
    # Described from the body as received: `_describe` masks what it quotes, and a
    # mark put in first would pass for an HTML tag in a page that is not JSON.
    message = f"HTTP {status} from {where}: {_describe(body, secrets)}"
    if status == 404:
        message += _version_hint(request)
    return cls(message, response=response, body=scrub_value(body, secrets))


def stream_error(
    response: httpx.Response, body: dict[str, Any], *, where: str = "in the stream"
) -> APIStatusError:
    """The error for an `{"error": {...}}` object that arrived with a 2xx status:
    inside a stream (`where`), or as the body of a plain response.

    Its status is the error's `code` when that is an HTTP error status (OpenRouter
    sends `"code": 400`), else its `status_code` or `status` (Groq), else the one
    its `type` or `code` names, else 500.
    """
    error = body.get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    if isinstance(code, str) and code.isascii() and code.isdigit():
        code = int(code)
    given = error.get("status_code", error.get("status"))  # Groq, Gemini
    status: int
    if isinstance(code, int) and _is_error_status(code):
        status = code
    elif isinstance(given, int) and _is_error_status(given):
        status = given
    else:
        status = _STATUS_BY_TYPE.get(str(error.get("type")), 0) or _STATUS_BY_TYPE.get(
            str(code), 500
        )
    cls = _BY_STATUS.get(status, InternalServerError if status >= 500 else APIStatusError)
    secrets = request_secrets(response.request)
    url = display_url(response.request.url)
    message = f"error {where} from {url}: {_describe(body, secrets)}"
    return cls(message, response=response, body=scrub_value(body, secrets), status_code=status)


def _is_error_status(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599


def redact_key(error: APIError) -> APIError:
    """`error`, with the request's secrets taken out of its message and its `body`.

    A server or proxy may quote the key it was given back, in an error status,
    a 200 page that is not JSON, or an error event inside a stream. The errors
    built here mask it already; this is the last pass over any `APIError`
    before it leaves the client. Secrets are the API key and every other
    credential of the request (see `agentkit._redact.secrets_of`); any run of
    8 or more of their characters becomes `<redacted>`. Shorter ones (test
    values) are left alone, so as not to garble messages.
    """
    secrets = request_secrets(error.request)
    if secrets:
        error.args = tuple(
            scrub(arg, secrets) if isinstance(arg, str) else arg for arg in error.args
        )
        if hasattr(error, "body"):
            error.body = scrub_value(error.body, secrets)
    return error


def transport_error(exc: Exception, request: httpx.Request, stack: Stack) -> APIError:
    """The error for a request that never got a complete response."""
    where = f"{request.method} {display_url(request.url)}"
    if isinstance(exc, stack.timeout_error):
        return APITimeoutError(
            f"request timed out ({type(exc).__name__}): {where}", request=request
        )
    # httpx's and httpcore's messages may quote the URL, with its user info and query.
    detail = quote(str(exc), request_secrets(request), _MAX_TEXT) or type(exc).__name__
    if isinstance(exc, stack.module.ConnectError):
        root = display_url(_root_of(request.url))
        return APIConnectionError(
            f"cannot connect to {root} ({where}: {type(exc).__name__}: {detail}). "
            "Check that the server is running and listening there, and that the base URL "
            "is right: it comes from ChatClient(base_url=...), else the OPENAI_BASE_URL "
            "environment variable",
            request=request,
        )
    return APIConnectionError(f"connection error on {where}: {detail}", request=request)


_ENDPOINTS = ("/chat/completions", "/models")
_VERSION = re.compile(r"/v\d+[a-z0-9]*(/|$)", re.I)


def _root_of(url: httpx.URL) -> httpx.URL:
    """The base URL a request was made from: its URL without the endpoint's path."""
    path = url.path
    for endpoint in _ENDPOINTS:
        if path.endswith(endpoint):
            return url.copy_with(path=path[: -len(endpoint)] or "/")
    return url


def _version_hint(request: httpx.Request) -> str:
    """For a 404: a suggestion when the base URL has no version segment (`/v1`), the
    usual cause of a 404 from a server that is otherwise right."""
    root = _root_of(request.url)
    if root is request.url or _VERSION.search(root.path):
        return ""
    suggested = display_url(root.copy_with(path=root.path.rstrip("/") + "/v1"))
    return (
        f". The base URL {display_url(root)!r} has no version segment, and "
        "OpenAI-compatible servers serve the API under one: try "
        f"base_url={suggested!r} (or set OPENAI_BASE_URL to it)"
    )


def _describe(body: Any, secrets: tuple[str, ...]) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            text = str(error.get("message") or "(no message)")
            extras = [f"{k}={error[k]}" for k in ("type", "code", "param") if error.get(k)]
            text = f"{text} ({', '.join(extras)})" if extras else text
            return scrub(text, secrets)
        if isinstance(error, str):
            return scrub(error, secrets)
    text = body if isinstance(body, str) else str(body)
    return quote(_readable(text), secrets, _MAX_TEXT) or "(empty body)"


def _readable(text: str) -> str:
    """A one-line version of a body that is not JSON, such as a proxy's HTML page."""
    if "<" in text and ">" in text:
        import html  # only for a body like this one: its entity table is large to load

        title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
        if title and title.group(1).strip():
            text = title.group(1)
        else:
            text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", text, flags=re.I | re.S)
            text = re.sub(r"<[^>]+>", " ", text)
        text = html.unescape(text)
    return " ".join(text.split())
