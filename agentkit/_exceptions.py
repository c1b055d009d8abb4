"""Every error agentkit raises, in one hierarchy.

```
AgentKitError
├── UserError                  a usage mistake by the application developer
│   ├── RequestOverRateLimitError  one request needs more than a whole window of the rate limit
│   ├── ToolDefinitionError    a function that cannot become a tool
│   └── ToolResultError        a tool returned something that is not JSON-serialisable
├── APIError                   .request
│   ├── APIConnectionError     the server could not be reached or the connection broke
│   │   └── APITimeoutError
│   ├── APIResponseValidationError   a successful response whose body is not what the API promises
│   ├── APIResponseTooLargeError     a body, or one stream event, over the client's size limit
│   └── APIStatusError         .status_code .type .code .param .request_id .body .response
│       ├── BadRequestError            400
│       ├── AuthenticationError        401
│       ├── PermissionDeniedError      403
│       ├── NotFoundError              404
│       ├── ConflictError              409
│       ├── UnprocessableEntityError   422
│       ├── RateLimitError             429
│       └── InternalServerError        >= 500
├── ToolCallError              a single tool call failed; the message is written for the model
│   ├── ToolArgumentsError     arguments that are not JSON or fail validation
│   ├── ToolTimeoutError       the tool ran longer than its timeout
│   ├── ToolThreadsExhaustedError  every thread for sync tools is held by a stuck call
│   └── MCPServerError         an MCP server could not be reached, or its connection broke
├── RateLimiterError           the store a shared rate limit keeps its buckets in failed (Redis)
├── ModelRetry                 raised by a tool to ask the model to try again
└── AgentRunError              a run ended without an answer; .messages is the history so far
    ├── MaxTurnsExceeded
    ├── RunTimeoutError
    ├── IncompleteOutputError  finish_reason "length"; .partial is the cut-off message
    ├── ContentFilterError     finish_reason "content_filter"
    ├── RefusalError           the model refused; .refusal is its text
    ├── ToolRetryError         one tool failed too many times in a row
    ├── RepeatedToolCallError  the same call with the same arguments, turn after turn
    ├── ToolExecutionError     a tool raised and the agent was told to raise; see __cause__
    ├── OutputValidationError  the final answer never matched output_type
    ├── UsageLimitExceeded     the run would go past its UsageLimits; .usage is what it used
    └── ModelBehaviorError     a response the loop cannot act on
```

The `.messages` of an `AgentRunError` always satisfy the history invariant:
every assistant tool call is answered by exactly one tool message, in order,
so the list can be inspected, stored, or sent again.

Messages name what was wrong: the tool, the parameter, the status code or the
field. They never contain an API key.

Every error pickles (for multiprocessing, task queues and durable engines) with
its type, message and attributes. The live httpx objects of an `APIError` do
not travel: `request` comes back as a bare request with the same method and
the URL as shown in messages (no user info, query values `***`), and a
`response` as the status code with only the headers that say when to retry
and which request it was (`retry-after`, `retry-after-ms`, `x-request-id`,
`x-ratelimit-*`). No header of the original request, so no API key, is in the
pickle; the message and `body` are masked of the request's secrets again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from agentkit._redact import display_url, scrub, scrub_value, secrets_of

if TYPE_CHECKING:
    from agentkit._wire.messages import AssistantMessage, Message
    from agentkit._wire.responses import Usage

__all__ = [
    "AgentRunError",
    "ContentFilterError",
    "IncompleteOutputError",
    "MaxTurnsExceeded",
    "ModelBehaviorError",
    "ModelRetry",
    "OutputValidationError",
    "RefusalError",
    "RepeatedToolCallError",
    "RunTimeoutError",
    "ToolExecutionError",
    "ToolRetryError",
    "UsageLimitExceeded",
    "APIConnectionError",
    "APIError",
    "APIResponseTooLargeError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AgentKitError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ToolArgumentsError",
    "ToolCallError",
    "ToolDefinitionError",
    "ToolResultError",
    "ToolThreadsExhaustedError",
    "ToolTimeoutError",
    "MCPServerError",
    "UnprocessableEntityError",
    "RateLimiterError",
    "RequestOverRateLimitError",
    "UserError",
]


class AgentKitError(Exception):
    """Base class of every error raised by agentkit."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own reduce calls `cls(*args)`, which the keyword-only
        # constructors below refuse; rebuilding without the constructor works for
        # every subclass, including a user's, with no per-class code.
        return (_rebuild, (type(self), *self._pickled()))

    def _pickled(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The `args` and attributes a pickle carries: all of them, unless a subclass
        says otherwise."""
        return self.args, dict(vars(self))


def _rebuild(cls: type[AgentKitError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """An unpickled error: its class, `args` and attributes, without calling `__init__`."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class UserError(AgentKitError):
    """A usage mistake by the application developer: bad arguments, settings or tools."""


class RequestOverRateLimitError(UserError):
    """One request needs more than the rate limit allows in a whole window, so it could
    never be sent without a 429: raised at once instead of waiting forever.

    Attributes:
        resource: `"tokens"` or `"requests"`.
        needed: What the request needs of it (tokens: its estimate).
        limit: The limit per window.
    """

    def __init__(self, resource: str, needed: int, limit: int) -> None:
        self.resource = resource
        self.needed = needed
        self.limit = limit
        super().__init__(
            f"this request needs an estimated {needed:,} {resource}, more than the rate limit "
            f"of {limit:,} {resource} per window allows; lower max_completion_tokens, shorten "
            "the conversation, or raise RateLimit(...) if the provider allows more"
        )


class RateLimiterError(AgentKitError):
    """The store that a shared rate limit keeps its buckets in (Redis) could not be
    reached or failed; the request was not sent, rather than sent unlimited.

    Attributes:
        limit_name: The name of the limit.
    """

    def __init__(self, message: str, *, limit_name: str) -> None:
        self.limit_name = limit_name
        super().__init__(message)


class ToolDefinitionError(UserError):
    """A function that cannot be turned into a tool.

    Raised when the decorator runs, listing every problem at once.

    Attributes:
        tool_name: The name the tool would have had.
        problems: One line per problem, each naming the parameter involved.
    """

    def __init__(self, tool_name: str, problems: list[str]) -> None:
        self.tool_name = tool_name
        self.problems = list(problems)
        listing = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"tool {tool_name!r} cannot be defined:\n{listing}")


class ToolResultError(UserError):
    """A tool returned a value that cannot be turned into tool-message content.

    Attributes:
        tool_name: The tool that returned the value.
    """

    def __init__(self, tool_name: str, message: str) -> None:
        self.tool_name = tool_name
        super().__init__(f"tool {tool_name!r} returned a value that cannot be sent: {message}")


class ToolCallError(AgentKitError):
    """One tool call failed in a way the model can correct.

    Its message is written for the model and goes back to it as the tool
    result; it never holds a Python traceback.

    Attributes:
        tool_name: The tool that was called.
    """

    def __init__(self, tool_name: str, message: str) -> None:
        self.tool_name = tool_name
        super().__init__(message)


class ToolArgumentsError(ToolCallError):
    """The model's arguments for a tool are not JSON or do not validate.

    Attributes:
        tool_name: The tool that was called.
        errors: One entry per failing field: `{"loc": "path.to.field", "msg": "reason"}`;
            the first few dozen at most (the message gives the number of all of them).
    """

    def __init__(self, tool_name: str, message: str, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__(tool_name, message)


class ToolTimeoutError(ToolCallError):
    """A tool ran longer than its `timeout`.

    Attributes:
        tool_name: The tool that was called.
        timeout: The limit, in seconds.
    """

    def __init__(self, tool_name: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(tool_name, f"tool {tool_name!r} timed out after {timeout:g} seconds")


class ToolThreadsExhaustedError(ToolCallError):
    """A sync tool cannot run: every worker thread is held by a call that was
    abandoned (it timed out, or its run was cancelled) and has not returned yet.

    Sync tools run in the threads of anyio's default thread limiter (40 unless
    set otherwise with `anyio.to_thread.current_default_thread_limiter().total_tokens`).
    A thread cannot be interrupted, so an abandoned call keeps its thread until
    its function returns; when such calls hold all of them, new sync calls fail
    at once with this error instead of waiting.

    Attributes:
        tool_name: The tool that could not run.
        stuck: The number of abandoned calls still running.
        limit: The number of threads in the pool.
    """

    def __init__(self, tool_name: str, stuck: int, limit: float) -> None:
        self.stuck = stuck
        self.limit = limit
        super().__init__(
            tool_name,
            f"tool {tool_name!r} cannot run now: all {stuck} worker threads are held by "
            f"earlier tool calls that timed out or were cancelled and have not returned "
            f"(limit {limit:g}); try again later, or fix the tools that hang",
        )


class MCPServerError(ToolCallError):
    """An MCP server could not be started or reached, or its connection broke.

    Raised for the calls in flight when the server dies; the next call starts
    a new connection. Raised as well by `async with server:` when the first
    connection fails.

    Attributes:
        tool_name: The tool being called, as the model knows it; empty when
            no call was involved (opening the server).
        server_name: The server's name.
    """

    def __init__(self, tool_name: str, server_name: str, message: str) -> None:
        self.server_name = server_name
        super().__init__(tool_name, message)


class APIError(AgentKitError):
    """A request to the model API failed.

    Attributes:
        request: The HTTP request that failed, as it was sent: its headers and
            URL hold the credentials, which the error's message and `body`
            never show (httpx's repr masks the `Authorization` header and a URL
            password, not a key in the query). A pickled error carries a bare
            request instead; see the module docstring.
    """

    def __init__(self, message: str, *, request: httpx.Request) -> None:
        self.request = request
        super().__init__(message)

    def _pickled(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args, state = self.args, dict(vars(self))
        request = state.get("request")
        if request is None:
            return args, state
        # Masked when the error was built; again here, for one built elsewhere.
        secrets = secrets_of(request.headers, request.url)
        args = tuple(scrub(a, secrets) if isinstance(a, str) else a for a in args)
        if "body" in state:
            state["body"] = scrub_value(state["body"], secrets)
        state["request"] = bare = _bare_request(request)
        if state.get("response") is not None:
            state["response"] = _bare_response(state["response"], bare)
        return args, state


class APIConnectionError(APIError):
    """The server could not be reached, or the connection broke mid-response."""


class APITimeoutError(APIConnectionError):
    """The request took longer than the client's timeout."""


class APIResponseValidationError(APIError):
    """A successful response whose body does not match the API's shape.

    Attributes:
        body: The body as text, or as parsed JSON when it was JSON.
    """

    def __init__(self, message: str, *, request: httpx.Request, body: Any) -> None:
        self.body = body
        super().__init__(message, request=request)


class APIResponseTooLargeError(APIError):
    """A response body, or one event of a stream, is larger than the client allows.

    Reading stops at the limit: the rest is never read or decompressed. Not retried,
    since the same request would most likely get the same answer.

    Attributes:
        limit: The limit in bytes.
        setting: The `ChatClient` argument that sets it (`max_response_bytes` or
            `max_event_bytes`).
    """

    def __init__(self, message: str, *, request: httpx.Request, limit: int, setting: str) -> None:
        self.limit = limit
        self.setting = setting
        super().__init__(message, request=request)


class APIStatusError(APIError):
    """The server answered with an error: an HTTP status of 4xx or 5xx, or an
    error object inside a stream.

    Attributes:
        status_code: The HTTP status code.
        type: `error.type` from the body, if any.
        code: `error.code` from the body, if any.
        param: `error.param` from the body, if any.
        request_id: The `x-request-id` response header, if any.
        body: The parsed JSON body, or the text when it was not JSON.
        response: The HTTP response.
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        body: Any,
        status_code: int | None = None,
    ) -> None:
        self.response = response
        self.status_code = response.status_code if status_code is None else status_code
        self.body = body
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            error = {}
        self.type: str | None = _opt_str(error.get("type"))
        self.code: str | None = _opt_str(error.get("code"))
        self.param: str | None = _opt_str(error.get("param"))
        self.request_id: str | None = response.headers.get("x-request-id")
        super().__init__(message, request=response.request)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


# Response headers a pickled APIStatusError keeps: what retry logic and support requests use.
_KEPT_HEADERS = ("retry-after", "retry-after-ms", "x-request-id")


def _bare_request(request: Any) -> httpx.Request:
    """The request as a pickle may carry it: its method and shown URL, no header or body."""
    try:
        url = httpx.URL(display_url(request.url))
    except (httpx.InvalidURL, TypeError):
        url = httpx.URL("http://unknown.invalid/")
    bare = httpx.Request(str(request.method), url)
    # httpx adds a Host header from the URL: harmless, the URL is already shown.
    return bare


def _bare_response(response: Any, request: httpx.Request | None) -> httpx.Response:
    """The response as a pickle may carry it: its status and the retry headers."""
    headers = [
        (name, value)
        for name, value in response.headers.items()
        if name.lower() in _KEPT_HEADERS or name.lower().startswith("x-ratelimit-")
    ]
    return httpx.Response(int(response.status_code), headers=headers, request=request)


class BadRequestError(APIStatusError):
    """HTTP 400: the request was malformed or used a value the model does not support."""


class AuthenticationError(APIStatusError):
    """HTTP 401: the API key is missing or wrong."""


class PermissionDeniedError(APIStatusError):
    """HTTP 403: the key may not use this resource."""


class NotFoundError(APIStatusError):
    """HTTP 404: no such model or endpoint."""


class ConflictError(APIStatusError):
    """HTTP 409: the request conflicts with the state of a resource."""


class UnprocessableEntityError(APIStatusError):
    """HTTP 422: the request was well-formed but could not be processed."""


class RateLimitError(APIStatusError):
    """HTTP 429: too many requests or tokens, or the account has no quota left."""


class InternalServerError(APIStatusError):
    """HTTP 500 or above: the server failed."""


class ModelRetry(AgentKitError):
    """Raised inside a tool to send `message` back to the model as the tool's result,
    asking it to try again (with other arguments, say).

    Example:
        >>> @tool
        ... def lookup(city: str) -> str:
        ...     if city not in KNOWN:
        ...         raise ModelRetry(f"unknown city {city!r}; pick one of {sorted(KNOWN)}")
        ...     return KNOWN[city]
    """


class AgentRunError(AgentKitError):
    """A run ended without an answer.

    Attributes:
        messages: The conversation so far. Every assistant tool call in it is
            answered by exactly one tool message, so it can be stored or resumed.
    """

    def __init__(self, message: str, *, messages: Sequence[Message]) -> None:
        self.messages: list[Message] = list(messages)
        super().__init__(message)


class MaxTurnsExceeded(AgentRunError):
    """The run made `max_turns` model requests and the model still wanted tools."""


class RunTimeoutError(AgentRunError):
    """The run went past its `timeout`."""


class IncompleteOutputError(AgentRunError):
    """The model stopped at its token limit (`finish_reason: "length"`).

    Attributes:
        partial: The assistant message as far as it got.
    """

    def __init__(
        self, message: str, *, messages: Sequence[Message], partial: AssistantMessage
    ) -> None:
        self.partial = partial
        super().__init__(message, messages=messages)


class ContentFilterError(AgentRunError):
    """The provider's content filter stopped the answer (`finish_reason: "content_filter"`)."""


class RefusalError(AgentRunError):
    """The model refused to answer.

    Attributes:
        refusal: The model's refusal text.
    """

    def __init__(self, refusal: str, *, messages: Sequence[Message]) -> None:
        self.refusal = refusal
        super().__init__(f"the model refused: {refusal}", messages=messages)


class ToolRetryError(AgentRunError):
    """One tool failed more times in a row than `max_tool_retries` allows.

    Attributes:
        tool_name: The tool (or the unknown name the model kept calling).
        last_error: The error text of the last failure.
    """

    def __init__(
        self, tool_name: str, last_error: str, attempts: int, *, messages: Sequence[Message]
    ) -> None:
        self.tool_name = tool_name
        self.last_error = last_error
        super().__init__(
            f"tool {tool_name!r} failed {attempts} times in a row; last error: {last_error}",
            messages=messages,
        )


class RepeatedToolCallError(AgentRunError):
    """The model made the same call with the same arguments turn after turn.

    Attributes:
        tool_name: The tool called.
        arguments: The arguments, as the JSON the model sent.
    """

    def __init__(
        self, tool_name: str, arguments: str, turns: int, *, messages: Sequence[Message]
    ) -> None:
        self.tool_name = tool_name
        self.arguments = arguments
        super().__init__(
            f"tool {tool_name!r} was called with the same arguments {turns} turns in a row: "
            f"{arguments}",
            messages=messages,
        )


class ToolExecutionError(AgentRunError):
    """A tool raised, and the agent was set to raise tool errors (`tool_errors="raise"`).

    The tool's own exception is `__cause__`.

    Attributes:
        tool_name: The tool that raised.
    """

    def __init__(self, tool_name: str, error: BaseException, *, messages: Sequence[Message]):
        self.tool_name = tool_name
        super().__init__(
            f"tool {tool_name!r} raised {type(error).__name__}: {error}", messages=messages
        )


class OutputValidationError(AgentRunError):
    """The model's final answer did not match `output_type`, after every retry.

    Attributes:
        errors: The validation errors of the last attempt.
    """

    def __init__(self, message: str, *, messages: Sequence[Message], errors: str) -> None:
        self.errors = errors
        super().__init__(message, messages=messages)


class ModelBehaviorError(AgentRunError):
    """The model answered with something the loop cannot act on, such as no choices."""


class UsageLimitExceeded(AgentRunError):
    """The run would have gone past one of its `UsageLimits`.

    Attributes:
        usage: The tokens the run used, summed over its requests.
    """

    def __init__(self, message: str, *, messages: Sequence[Message], usage: Usage) -> None:
        self.usage = usage
        super().__init__(message, messages=messages)
