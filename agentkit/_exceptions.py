"""Every error agentkit raises, in one hierarchy.

```
AgentKitError
├── UserError                  a usage mistake by the application developer
│   ├── ToolDefinitionError    a function that cannot become a tool
│   └── ToolResultError        a tool returned something that is not JSON-serialisable
├── APIError                   .request
│   ├── APIConnectionError     the server could not be reached or the connection broke
│   │   └── APITimeoutError
│   ├── APIResponseValidationError   a successful response whose body is not what the API promises
│   └── APIStatusError         .status_code .type .code .param .request_id .body .response
│       ├── BadRequestError            400
│       ├── AuthenticationError        401
│       ├── PermissionDeniedError      403
│       ├── NotFoundError              404
│       ├── ConflictError              409
│       ├── UnprocessableEntityError   422
│       ├── RateLimitError             429
│       └── InternalServerError        >= 500
└── ToolCallError              a single tool call failed; the message is written for the model
    ├── ToolArgumentsError     arguments that are not JSON or fail validation
    └── ToolTimeoutError       the tool ran longer than its timeout
```

Messages name what was wrong: the tool, the parameter, the status code or the
field. They never contain an API key.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "APIConnectionError",
    "APIError",
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
    "ToolTimeoutError",
    "UnprocessableEntityError",
    "UserError",
]


class AgentKitError(Exception):
    """Base class of every error raised by agentkit."""


class UserError(AgentKitError):
    """A usage mistake by the application developer: bad arguments, settings or tools."""


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
        errors: One entry per failing field: `{"loc": "path.to.field", "msg": "reason"}`.
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


class APIError(AgentKitError):
    """A request to the model API failed.

    Attributes:
        request: The HTTP request that failed (its `Authorization` header is
            masked in every repr httpx produces).
    """

    def __init__(self, message: str, *, request: httpx.Request) -> None:
        self.request = request
        super().__init__(message)


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
