"""`ChatClient`: the OpenAI-compatible HTTP client, on one pooled httpx (or httpx2) client."""

from __future__ import annotations

import logging
import operator
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import httpx
from pydantic import BaseModel, ValidationError
from pydantic_core import to_json

from agentkit._client.body import BadEncodingError, read_limited, read_plain
from agentkit._client.deadline import AttemptDeadlines
from agentkit._client.direct import can_send_direct, send_direct
from agentkit._client.encode import dump_messages, dump_wire
from agentkit._client.errors import (
    parse_body,
    quote,
    redact_key,
    request_secrets,
    status_error,
    stream_error,
    transport_error,
)
from agentkit._client.http import HTTPStackName, check_cookies_first, stack_named, stack_of
from agentkit._client.retry import MAX_RETRY_AFTER, backoff_delay, retry_after, should_retry
from agentkit._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseTooLargeError,
    APIResponseValidationError,
    APITimeoutError,
    UserError,
)
from agentkit._lazy import on_first_use
from agentkit._redact import display_url, scrub, scrub_value, secrets_of
from agentkit._version import __version__
from agentkit._wire.params import PARAM_NAMES, CompletionParams

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from agentkit._client.chunk_stream import ChatStream
    from agentkit._client.ratelimit import RateLimit
    from agentkit._wire import responses as _responses
    from agentkit._wire.bodies import Model
    from agentkit._wire.messages import Message
    from agentkit._wire.responses import ChatCompletion
else:
    _responses = on_first_use(globals(), "_responses", "agentkit._wire.responses")

__all__ = [
    "DEFAULT_ATTEMPT_TIMEOUT",
    "DEFAULT_BASE_URL",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_TIMEOUT",
    "ChatClient",
]

logger = logging.getLogger("agentkit")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=5.0)
"""Ten minutes to read a long completion, five seconds to connect."""
DEFAULT_ATTEMPT_TIMEOUT = 600.0
"""Ten minutes for one attempt in all, however slowly the server sends its bytes: httpx's
own timeouts are per read, and a server sending a byte now and then never trips them."""
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""32 MiB of decoded body: a completion with many long choices is a few MiB at most."""
DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024
"""8 MiB of data in one stream event, the SSE decoder's own default (not imported from
it: the decoder loads with the first stream). A chunk is a few hundred bytes."""
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
"""At most 100 connections, all kept alive (5 s idle expiry), on both stacks. Measured
(`python -m benchmarks --parts load --concurrency 1000 --pool 100,1000,1000/100 --no-gate`,
1,000 runs at once against a 50 ms loopback model, two requests each, 2 cores): on httpx2
a pool of 100 takes 3-6 s, 1,000 connections keeping 100 alive 13-16 s, 1,000 connections
19-31 s, since httpcore2's pool scans its connections on every request; on httpx every
size takes 15-28 s (httpcore's queue is quadratic), so one default serves both. Requests
beyond the pool wait for a free connection: with a model that takes seconds to answer, and
a provider that allows more requests at once, pass an `http_client` with larger limits."""

T = TypeVar("T")


async def _sleep(seconds: float) -> None:
    # One indirection so tests can record the delays instead of waiting them out.
    await anyio.sleep(seconds)


class ChatClient:
    """A client for any OpenAI-compatible Chat Completions API.

    One pooled `httpx.AsyncClient` (or `httpx2.AsyncClient`) serves every call,
    so a single `ChatClient` can be shared by many agents and concurrent runs.

    Args:
        base_url: The API root, such as `http://localhost:11434/v1`. Defaults to
            the `OPENAI_BASE_URL` environment variable, then `https://api.openai.com/v1`.
        api_key: Sent as `Authorization: Bearer …`. Defaults to `OPENAI_API_KEY`;
            optional, since local servers need none. Never shown in a repr,
            a log line or an error message. Whitespace around it (a key read
            from a file often ends in a newline) is dropped.
        http_client: An `httpx.AsyncClient` or `httpx2.AsyncClient` to use
            instead of a new one. It is never closed by this client. An httpx
            client's cookie jar is given a check for a `Set-Cookie` header
            before it parses a response (httpx2's has one): the same jar and
            cookies, without 17 µs of parsing per response that sets none.
        http: The HTTP stack of a client built here: `"httpx"` (the default) or
            `"httpx2"` (`pip install 'agentkit[httpx2]'`), the one to pick for a
            service running hundreds of requests at once: its pool is 4-6x
            faster under that load (see docs/performance.md).
            Either gets `DEFAULT_LIMITS`: at
            most 100 connections, all kept alive; requests beyond them wait for a
            free one. With 1,000 runs at once against a 50 ms model (2 cores), 100
            connections beat 1,000 on both stacks (httpx2: 3-6 s against 19-31 s;
            httpx: 15-28 s at either size). For more requests in flight, such as a
            slow model on a provider that allows them, pass an `http_client`.
        timeout: Seconds, or an `httpx.Timeout`: httpx's timeouts for each
            operation (to connect, for each read, each write). Defaults to 600 s
            (5 s to connect) for a client built here, and to the settings of a
            given `http_client`.
        attempt_timeout: Seconds one attempt of a request may take in all, on top
            of the per-read `timeout`, so a server that trickles its bytes cannot
            hold a request forever. For `create` and `list_models` it runs from
            sending the request to the last byte of the body. For `stream` it runs
            from sending the request to the first event, and then again between
            any two events: a stream that keeps sending events lasts as long as
            it needs. Past it, `APITimeoutError`, retried like any timeout (a
            stream only until its first chunk has reached the caller). Defaults
            to 600 s; None: only the per-read `timeout`.
        max_response_bytes: The most bytes of a body, after decompression, read
            from a response that is not streamed (an error status's too). Reading
            stops at the limit, so a compressed bomb is never decompressed whole:
            `APIResponseTooLargeError`, or for an error status the status error
            with the start of its body. Defaults to 32 MiB; None: no limit.
        max_event_bytes: The most bytes of data in one event of a stream (and
            in any one line of it); past it, `APIResponseTooLargeError`. Defaults
            to 8 MiB; None: no limit.
        max_retries: Retries after a connection error, a timeout, or a status of
            408, 409, 429 or 500 and above. 0 disables retrying.
        default_headers: Headers added to every request.
        rate_limit: A `RateLimit` shared by every request of this client (and of any
            other client given the same one): requests wait their turn to stay under
            the provider's requests and tokens per minute, instead of bouncing off
            them with 429s. `agentkit.ratelimit.RedisRateLimit` shares one limit
            between processes. None (the default): no limiter.

    Example:
        >>> async with ChatClient(base_url="http://localhost:8000/v1") as client:
        ...     reply = await client.create(
        ...         model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
        ...     )
        ...     print(reply.choices[0].message.content)
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        http_client: Any = None,
        http: HTTPStackName = "httpx",
        timeout: float | httpx.Timeout | Any | None = None,
        attempt_timeout: float | None = DEFAULT_ATTEMPT_TIMEOUT,
        max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES,
        max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
        max_retries: int = 2,
        default_headers: Mapping[str, str] | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            # The URL is not quoted: user info or a query may hold a secret.
            shown, reason = display_url(url), scrub(str(exc), secrets_of(url=url))
            raise UserError(f"base_url {shown!r} is not a valid URL ({reason})") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            shown = display_url(url)
            raise UserError(f"base_url {shown!r} must be an http:// or https:// URL")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise UserError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if attempt_timeout is not None and (
            isinstance(attempt_timeout, bool)
            or not isinstance(attempt_timeout, (int, float))
            or not attempt_timeout > 0
        ):
            raise UserError(
                "attempt_timeout must be a positive number of seconds, or None for no "
                f"limit; got {attempt_timeout!r}"
            )
        for name, size in (
            ("max_response_bytes", max_response_bytes),
            ("max_event_bytes", max_event_bytes),
        ):
            if size is not None and (
                isinstance(size, bool) or not isinstance(size, int) or size < 1
            ):
                raise UserError(
                    f"{name} must be a positive integer (bytes), or None for no limit; got {size!r}"
                )
        self._deadlines = AttemptDeadlines()
        self.attempt_timeout = attempt_timeout
        self.max_response_bytes = max_response_bytes
        self.max_event_bytes = max_event_bytes
        self.base_url = url.rstrip("/")
        # Endpoints are joined to the path, so a query (Azure's ?api-version=...) is kept.
        prefix = parsed.path.rstrip("/")
        self._chat_url = str(parsed.copy_with(path=prefix + "/chat/completions"))
        self._models_url = str(parsed.copy_with(path=prefix + "/models"))
        self.max_retries = max_retries
        self._api_key = _check_key(
            api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        )
        if not self._api_key and parsed.host == "api.openai.com":
            _check_credentials(http_client, default_headers)
        self._owns_http = http_client is None
        self._stack = stack_named(http) if http_client is None else stack_of(http_client)
        if timeout is None:
            timeout = DEFAULT_TIMEOUT if self._owns_http else None
        self._timeout: Any = None if timeout is None else self._stack.timeout(timeout)
        headers = {"user-agent": f"agentkit/{__version__}", "accept": "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        headers.update(_check_headers(default_headers or {}, "default_headers"))
        self._headers = headers
        if rate_limit is not None:
            from agentkit._client.ratelimit import RateLimit  # loaded only when one is used

            if not isinstance(rate_limit, RateLimit):
                raise UserError(
                    f"rate_limit must be a RateLimit (or RedisRateLimit), got {rate_limit!r}"
                )
        self._limiter = rate_limit
        # For `_fast_chat_request`: a chat request's header list (with the place of its
        # content-length) per streaming flag, with the client's headers it was built
        # from; and the chat URL, parsed.
        self._merged_headers: dict[
            bool,
            tuple[list[tuple[bytes, bytes, bytes]], tuple[list[tuple[bytes, bytes, bytes]], int]],
        ] = {}
        self._chat_url_parsed = self._stack.module.URL(self._chat_url)
        # User info in the URL is auth that `AsyncClient.send` applies: never sent direct.
        self._direct_url = not (parsed.username or parsed.password)
        # Last, once every argument is known to be good: nothing is left open by an error.
        # Typed as httpx: httpx2 has the same API, and only duck typing is used.
        self._http: httpx.AsyncClient = http_client or self._stack.client(
            timeout=DEFAULT_TIMEOUT, limits=DEFAULT_LIMITS
        )
        check_cookies_first(self._http)

    def __repr__(self) -> str:
        key = "set" if self._api_key else "none"
        return f"ChatClient(base_url={display_url(self.base_url)!r}, api_key=<{key}>)"

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool, unless it was passed in by the caller."""
        if self._owns_http:
            try:
                await self._http.aclose()
            except RuntimeError:
                # Its connections were made in an event loop that has ended (see
                # `_new_pool`): they cannot be closed from this one, and went with it.
                self._http = self._stack.client(timeout=DEFAULT_TIMEOUT, limits=DEFAULT_LIMITS)
                await self._http.aclose()

    # --- the API ----------------------------------------------------------------------

    async def create(
        self,
        *,
        model: str,
        messages: Sequence[Message | Mapping[str, Any]],
        **params: Unpack[CompletionParams],
    ) -> ChatCompletion:
        """`POST /chat/completions`: one complete response.

        Args:
            model: The model name.
            messages: The conversation, as message models or dicts in wire form.
            **params: Any request field (`temperature`, `tools`, `tool_choice`,
                `response_format`, …; see `CompletionParams`), `extra_body` for
                provider-specific fields, `extra_headers`, and a per-call `timeout`.

        Raises:
            UserError: An unknown parameter or a malformed message.
            APIStatusError: The server answered with an error (a subclass per
                status), or with a 2xx body that carries an `error` object.
            APIConnectionError: The server could not be reached, after all retries.
            APIResponseValidationError: The response is not a chat completion.
        """
        if params.get("stream"):
            raise UserError("create() does not stream; use `async with client.stream(...)`")
        request = self._chat_request(model, messages, dict(params), stream=False)

        async def attempt() -> ChatCompletion:
            response = await self._send(request, stream=False)
            completion = _parse(_responses.ChatCompletion, response)
            extra = completion.__pydantic_extra__
            if extra and extra.get("error") is not None:
                # A 2xx body that carries an error object alongside a completion.
                raise stream_error(response, parse_body(response.content), where="in the body")
            return completion

        return await self.with_retries(attempt)

    def stream(
        self,
        *,
        model: str,
        messages: Sequence[Message | Mapping[str, Any]],
        **params: Unpack[CompletionParams],
    ) -> ChatStream:
        """`POST /chat/completions` with `stream: true`: chunks as they arrive.

        Takes the same arguments as `create`. Use it as an async context
        manager; leaving the block early closes the response and returns the
        connection to the pool. Opening the stream is retried like `create`;
        once the first chunk has reached the caller, nothing is retried.

        The stream ends at `data: [DONE]`, or at the end of the body once a
        chunk with a `finish_reason` has arrived (some servers send no
        `[DONE]`). An event carrying a top-level `error` raises the matching
        `APIStatusError` (status from the error's numeric `code`), even when
        the rest of it is an ordinary chunk.

        Raises:
            APIStatusError: An error status, or an error event in the stream.
            APIConnectionError: The body ended before any `finish_reason`.
            APIResponseValidationError: An event that is not a chunk.

        Example:
            >>> async with client.stream(model="gpt-4o-mini", messages=msgs) as chunks:
            ...     async for chunk in chunks:
            ...         print(chunk.choices[0].delta.content or "", end="")
        """
        from agentkit._client.chunk_stream import (
            ChatStream,  # with the SSE decoder: loads on first use
        )

        request = self._chat_request(model, messages, dict(params), stream=True)
        gap = self.attempt_timeout
        if gap is not None:
            # A read waiting longer than the longest gap allowed between events is over
            # it already; the stream checks the gap itself against a server that trickles.
            timeouts = request.extensions.get("timeout")
            read = timeouts.get("read") if isinstance(timeouts, dict) else None
            if isinstance(timeouts, dict) and (read is None or read > gap):
                request.extensions["timeout"] = {**timeouts, "read": gap}
        return ChatStream(
            lambda: self._send(request, stream=True),
            self.with_retries,
            request=request,
            stack=self._stack,
            attempt_timeout=gap,
            max_event_bytes=self.max_event_bytes,
            deadlines=self._deadlines,
        )

    async def list_models(self) -> list[Model]:
        """`GET /models`: the models the server offers."""
        from agentkit._wire.bodies import ModelList  # loads with the first listing

        request = self._http.build_request(
            "GET", self._models_url, headers=self._headers, **self._timeout_kw(None)
        )

        async def attempt() -> list[Model]:
            response = await self._send(request, stream=False)
            return _parse(ModelList, response).data

        return await self.with_retries(attempt)

    # --- requests, retries and responses ------------------------------------------------

    def _chat_request(
        self,
        model: str,
        messages: Sequence[Message | Mapping[str, Any]],
        params: dict[str, Any],
        *,
        stream: bool,
    ) -> httpx.Request:
        extra_body = params.pop("extra_body", None) or {}
        extra_headers = params.pop("extra_headers", None) or {}
        timeout = params.pop("timeout", None)
        if not PARAM_NAMES.issuperset(params):
            unknown = sorted(set(params) - PARAM_NAMES)
            raise UserError(
                f"unknown request parameter(s) {', '.join(unknown)}; "
                "send provider-specific fields with extra_body={...}"
            )
        body: dict[str, Any] = {"model": model, "messages": dump_messages(messages)}
        for name, value in params.items():
            if value is not None:
                body[name] = dump_wire(value)
        if stream:
            body["stream"] = True
        if extra_body:
            body.update(dump_wire(dict(extra_body)))
        content = to_json(body)
        if not extra_headers and timeout is None:
            fast = self._fast_chat_request(content, stream)
            if fast is not None:
                return fast
        headers = self._chat_headers(stream)
        headers.update(_check_headers(extra_headers, "extra_headers"))
        return self._http.build_request(
            "POST",
            self._chat_url,
            content=content,
            headers=headers,
            **self._timeout_kw(timeout),
        )

    def _chat_headers(self, stream: bool) -> dict[str, str]:
        """Our headers for a chat request, before any `extra_headers`."""
        headers = dict(self._headers)
        headers["content-type"] = "application/json"
        if stream:
            headers["accept"] = "text/event-stream"
        return headers

    def _fast_chat_request(self, content: bytes, stream: bool) -> httpx.Request | None:
        """The chat request `build_request` would build, in a third of the time; or None
        when the client has settings only `build_request` knows how to merge.

        `build_request` merges our headers into the client's one by one, then the
        request adds `Host` and `Content-Length`, each step a new `Headers` built in
        Python, which costs more than everything else agentkit does for a request.
        Those headers are the same for every request as long as the client's are
        unchanged, but for the length: so a request is built the general way once,
        and later ones copy its header list with their own `Content-Length` in its
        place, and pass the body as the same `ByteStream` it would have had (a request
        given its stream adds no headers). Cookies, query parameters or a subclass
        that builds its own requests take the general path.
        """
        http = self._http
        module = self._stack.module
        if (
            type(http).build_request is not module.AsyncClient.build_request
            or http.cookies
            or http.params
        ):
            return None
        timeout = self._timeout if self._timeout is not None else http.timeout
        extensions = {"timeout": timeout.as_dict()}
        # The client's header list as httpx keeps it: compared in C, without `.raw`'s copy.
        client_headers = http.headers._list
        cached = self._merged_headers.get(stream)
        if cached is None or cached[0] != client_headers:
            client_headers = list(client_headers)  # kept apart from later changes
            merged = module.Headers(http.headers)
            merged.update(self._chat_headers(stream))
            request: httpx.Request = module.Request(
                "POST",
                self._chat_url_parsed,
                content=content,
                headers=merged,
                extensions=extensions,
            )
            entries = list(request.headers._list)
            names = [name for _, name, _ in entries]
            if names.count(b"content-length") != 1:
                return request  # not a header list to copy: built this way every time
            at = names.index(b"content-length")
            self._merged_headers[stream] = (client_headers, (entries, at))
            return request
        entries, at = cached[1]
        headers = module.Headers()
        headers._list = entries.copy()
        raw_name, name, _ = entries[at]
        headers._list[at] = (raw_name, name, str(len(content)).encode())
        request = module.Request(
            "POST",
            self._chat_url_parsed,
            headers=headers,
            stream=module.ByteStream(content),
            extensions=extensions,
        )
        request.read()  # as `content=` does: `request.content` is the body
        return request

    def _timeout_kw(self, timeout: float | httpx.Timeout | Any | None) -> dict[str, Any]:
        chosen = self._timeout if timeout is None else self._stack.timeout(timeout)
        return {} if chosen is None else {"timeout": chosen}

    async def _send(
        self, request: httpx.Request, *, stream: bool, limited: bool = False
    ) -> httpx.Response:
        """One attempt: the response if its status is 2xx, else the matching error.

        Not streamed, the body is read (up to `max_response_bytes`) within
        `attempt_timeout`; streamed, the response comes back open, and the stream
        keeps to `attempt_timeout` itself. With a rate limit, the attempt first waits
        its turn (outside `attempt_timeout`), then comes back here `limited`.
        """
        if self._limiter is not None and not limited:
            from agentkit._client.limited import limited_send  # loaded with the first use

            return await limited_send(self._send, self._limiter, request, stream=stream)
        if stream or self.attempt_timeout is None:
            return await self._send_once(request, stream=stream)
        with self._deadlines.move_on_after(self.attempt_timeout):
            return await self._send_once(request, stream=False)
        raise APITimeoutError(
            f"no complete response to {request.method} {request.url} within "
            f"attempt_timeout={self.attempt_timeout:g} s; pass "
            "ChatClient(attempt_timeout=...) to wait longer (None: no limit)",
            request=request,
        )

    async def _send_once(
        self, request: httpx.Request, *, stream: bool, renewed: bool = False
    ) -> httpx.Response:
        http = self._http
        if http.is_closed:
            raise UserError("this ChatClient, or the http_client it was given, is closed")
        started = time.perf_counter()
        direct = not stream and self._direct_url and can_send_direct(http, self._stack)
        try:
            if direct:
                response = await send_direct(http, request, self._stack)
            else:
                # Always streamed, so a body that is not is read here, where its size is kept.
                response = await http.send(request, stream=True)
        except self._stack.local_protocol_error as exc:
            # The request itself is malformed, such as a header name with a space.
            # httpx's message quotes the header, which may hold a key: leave it out,
            # and the exception too (`from None`), since tracebacks print causes.
            raise UserError(
                f"the request to {display_url(request.url)} cannot be sent: a header holds a "
                f"character HTTP does not allow ({type(exc).__name__}); check "
                "default_headers and extra_headers"
            ) from None
        except self._stack.transport_error as exc:
            raise transport_error(exc, request, self._stack) from exc
        except RuntimeError as exc:
            # Not an error httpx raises for a request: its pool was made in another event
            # loop (or under another async library), which cannot be used here.
            if renewed:
                raise
            self._new_pool(exc)
            return await self._send_once(request, stream=stream, renewed=True)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d in %.0f ms",
                request.method,
                display_url(request.url),
                response.status_code,
                (time.perf_counter() - started) * 1000,
            )
        if response.is_success:
            if not stream:
                await self._read(response, request, cut=False)
                if direct:
                    response.elapsed = timedelta(seconds=time.perf_counter() - started)
            return response
        content = await self._read(response, request, cut=True)
        if direct:
            response.elapsed = timedelta(seconds=time.perf_counter() - started)
        # A server may quote the key back ("invalid key sk-…"): status_error masks it.
        raise status_error(response, parse_body(content))

    def _new_pool(self, exc: RuntimeError) -> None:
        """A new connection pool in place of one made in another event loop: the client
        was used with `run_sync`, `anyio.run` or `asyncio.run` before. A pool given by
        the caller is theirs: an error says why it failed."""
        if not self._owns_http:
            raise UserError(
                f"the http_client given to this ChatClient failed ({exc}): its connections "
                "were most likely made in another event loop, which has ended (each "
                "run_sync, anyio.run or asyncio.run starts a new one). Make the http_client "
                "inside the event loop that uses it, or let ChatClient make its own (it "
                "starts a new pool in a new loop)"
            ) from exc
        logger.debug("event loop changed: a new connection pool for %s", display_url(self.base_url))
        # The old pool is dropped, not closed: closing needs the loop that has ended.
        self._http = self._stack.client(timeout=DEFAULT_TIMEOUT, limits=DEFAULT_LIMITS)
        self._merged_headers.clear()

    async def _read(self, response: httpx.Response, request: httpx.Request, *, cut: bool) -> bytes:
        """The body of a response, read to its end and closed; `response.content` too.

        Over `max_response_bytes` of decoded body, reading stops: `cut` keeps what
        was read up to the limit, else `APIResponseTooLargeError`.
        """
        limit = self.max_response_bytes
        try:
            if limit is None:
                return await response.aread()
            length = _plain_length(response.headers)
            if length is not None:
                # Not compressed, and of a known length, which h11 never reads past.
                if length <= limit:
                    return await read_plain(response)
                if not cut:
                    raise _too_large(request, limit)
            content, fits = await read_limited(response, limit, keep=cut)
            if not fits and not cut:
                raise _too_large(request, limit)
            # What `aread` would have kept: errors and callers read `response.content`.
            response._content = content
            return content
        except BadEncodingError as exc:
            raise APIResponseValidationError(
                f"the response to {request.method} {request.url} is not valid "
                f"{response.headers.get('content-encoding')}: {exc}",
                request=request,
                body=None,
            ) from None
        except self._stack.transport_error as exc:
            raise transport_error(exc, request, self._stack) from exc
        finally:
            await response.aclose()

    async def with_retries(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until it succeeds, the error is final, or retries run out."""
        retries = 0
        while True:
            try:
                return await attempt()
            except APIError as error:
                redact_key(error)
                delay = self._retry_delay(error, retries)
                if delay is None:
                    if retries and isinstance(error, APIConnectionError) and error.args:
                        # It ends the request: say that retrying did not help.
                        error.args = (f"{error.args[0]} (gave up after {retries} retries)",)
                    raise
                logger.info(
                    "retrying %s %s in %.2f s (retry %d of %d): %s",
                    error.request.method,
                    display_url(error.request.url),
                    delay,
                    retries + 1,
                    self.max_retries,
                    error,
                )
            await _sleep(delay)
            retries += 1

    def _retry_delay(self, error: APIError, retries: int) -> float | None:
        """Seconds to wait before retrying after `error`, or None to give up."""
        if retries >= self.max_retries:
            return None
        response = getattr(error, "response", None)
        if response is None:
            # No response at all: a connection error or timeout; validation errors are final.
            return backoff_delay(retries) if isinstance(error, APIConnectionError) else None
        status = getattr(error, "status_code", response.status_code)
        if not should_retry(status, response.headers, getattr(error, "body", None)):
            return None
        wait = retry_after(response.headers)
        if wait is None:
            return backoff_delay(retries)
        return wait if wait <= MAX_RETRY_AFTER else None


def _plain_length(headers: Any) -> int | None:
    """The `content-length` of a body sent without a `content-encoding`, else None.

    Read from the lower-case names httpx's and httpx2's `Headers` keep (`_list`: raw
    name, lower-case name, value), searched by list methods rather than a Python loop
    over the pairs: a response carries a dozen headers or more, and this runs for
    every response.
    """
    entries: list[tuple[bytes, bytes, bytes]] | None = getattr(headers, "_list", None)
    if entries is None:  # another Headers class: lower-case the names here
        entries = [(key, key.lower(), value) for key, value in headers.raw]
    names = list(map(_LOWER_NAME, entries))
    if names.count(b"content-length") != 1:
        return None  # none, or sent twice: read within the limit instead
    if b"content-encoding" in names and any(
        name == b"content-encoding" and value.strip().lower() not in (b"", b"identity")
        for _, name, value in entries
    ):
        return None
    length = entries[names.index(b"content-length")][2]
    return int(length) if length.isdigit() else None


_LOWER_NAME = operator.itemgetter(1)


def _too_large(request: httpx.Request, limit: int) -> APIResponseTooLargeError:
    return APIResponseTooLargeError(
        f"the response to {request.method} {request.url} is over max_response_bytes="
        f"{limit:,} bytes (decoded); pass ChatClient(max_response_bytes=...) to allow more "
        "(None: no limit)",
        request=request,
        limit=limit,
        setting="max_response_bytes",
    )


def _check_key(key: str | None) -> str | None:
    """The key without surrounding whitespace; a UserError (that does not quote it)
    when it cannot be sent in an HTTP header."""
    if key is None:
        return None
    key = key.strip()
    if not all("!" <= char <= "~" for char in key):
        raise UserError(
            "api_key holds a character that cannot be sent in an HTTP header (a space, "
            "a line break, a control or non-ASCII character); check where it comes from"
        )
    return key or None


def _check_credentials(http_client: Any, default_headers: Mapping[str, str] | None) -> None:
    """A UserError, before any request, for api.openai.com without a key: it would only
    answer 401. A key in an `Authorization` header of its own, or an `auth` of the
    given http_client, is one too."""
    headers = [name.lower() for name in default_headers or ()]
    if http_client is not None:
        headers += [name.lower() for name in getattr(http_client, "headers", {})]
        if getattr(http_client, "auth", None) is not None:
            return
    if "authorization" in headers or "api-key" in headers:
        return
    raise UserError(
        "no API key for https://api.openai.com/v1: set the OPENAI_API_KEY environment "
        "variable, or pass ChatClient(api_key=...). For a local or other OpenAI-compatible "
        "server, pass ChatClient(base_url=...) or set OPENAI_BASE_URL (such as "
        "http://localhost:11434/v1 for Ollama, http://localhost:8000/v1 for vLLM)"
    )


def _check_headers(headers: Mapping[str, str], where: str) -> dict[str, str]:
    """The headers with lower-case names, or a UserError naming the first one whose value
    HTTP cannot carry. Checked before sending, since httpx's and httpcore's errors and
    debug logs quote the value, and a header may hold a key."""
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if (
            not isinstance(value, str)
            or value != value.strip(" \t")
            or not all(" " <= char <= "~" or char == "\t" for char in value)
        ):
            raise UserError(
                f"{where}[{name!r}] cannot be sent as an HTTP header value: it must be a "
                "string of printable ASCII without a line break or surrounding whitespace"
            )
        checked[name.lower()] = value
    return checked


M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], response: httpx.Response) -> M:
    """The response body as `model`, or an error naming the field that does not fit."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        secrets = request_secrets(response.request)
        body = scrub_value(parse_body(response.content), secrets)
        if isinstance(body, dict) and body.get("error") is not None:
            # A proxy or router that reports an error with a 2xx status.
            raise stream_error(response, body, where="in the body") from None
        if exc.errors()[0]["type"] == "json_invalid":
            what = f"is not JSON: {quote(response.text, secrets, 200)!r}"
        else:
            first = exc.errors()[0]
            loc = ".".join(str(part) for part in first["loc"]) or "(body)"
            what = f"is not a valid {model.__name__}: {loc}: {first['msg']}"
        where = f"{response.request.method} {display_url(response.request.url)}"
        raise APIResponseValidationError(
            f"the response to {where} {what}",
            request=response.request,
            body=body,
        ) from None
