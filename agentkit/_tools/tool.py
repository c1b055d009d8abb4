"""`@tool` and `Tool`: a typed Python function the model can call.

The schema and validator are built once, when the decorator runs; a call
parses and validates the model's JSON arguments in one pydantic pass, runs the
function (async functions awaited, sync ones in a worker thread, or on the
event loop when declared `blocking=False`) and turns the result into
tool-message content.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic, overload

import anyio
import pydantic_core
from pydantic import BaseModel, ValidationError
from typing_extensions import ParamSpec, TypeVar

from agentkit._exceptions import (
    ToolArgumentsError,
    ToolDefinitionError,
    ToolResultError,
    ToolTimeoutError,
    UserError,
)
from agentkit._tools.schema import FunctionSchema, function_schema
from agentkit._tools.threads import StuckCount, run_in_thread

if TYPE_CHECKING:
    from agentkit._tools.context import RunContext

__all__ = ["ApprovalRule", "Tool", "tool", "tools_by_name"]

P = ParamSpec("P")
R = TypeVar("R")

ApprovalRule = Callable[["RunContext[Any]", Any], Any]
"""A function `(ctx, call) -> bool`, sync or async: whether this call (a `PendingCall`,
its arguments validated) needs a person's approval."""

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_MAX_INPUT = 80  # characters of an offending value quoted back to the model
_MAX_ERRORS = 20  # errors listed to the model; beyond them, only their number


class Tool(Generic[P, R]):
    """A function the model can call, with its name, description and JSON schema.

    A `Tool` is still callable exactly like the function it wraps. Create one
    with `@tool` or `Tool.from_function`.

    A sync function runs in a worker thread, bounded by anyio's default thread
    limiter (40 per event loop). A call abandoned past its `timeout` (or with its
    run) keeps its thread until it returns: when such stuck calls fill the pool,
    sync calls fail with `ToolThreadsExhaustedError` and a warning is logged,
    rather than a thread being added for each. A sync function known never to
    block (no I/O, no locks, microseconds of work) can run on the event loop
    instead, without the thread hand-off: `blocking=False`.

    Attributes:
        function: The wrapped function.
        name: The name the model calls the tool by.
        description: What the tool does, for the model; `None` when undocumented.
        parameters: The JSON schema of the arguments object.
        strict: Whether the schema follows OpenAI's strict mode.
        timeout: Seconds a call may take, or `None` for no limit. When a sync
            function runs past it, the call fails with `ToolTimeoutError` at
            once, but its worker thread cannot be interrupted: it is left to
            finish in the background and its result is discarded. The same
            holds when the run is cancelled or reaches its own timeout.
        retries: Failed turns in a row this tool is allowed before the run ends
            with `ToolRetryError`; `None` leaves it to the agent's
            `max_tool_retries`.
        requires_approval: Whether a call waits for a person's yes: `True`,
            `False`, or a function `(ctx, call) -> bool` (sync or async) deciding
            per call, given the run context and the `PendingCall` (its
            arguments validated). See `Agent.resume`.
        blocking: Whether a sync function may block, and so runs in a worker
            thread (`True`, the default); `False` calls it on the event loop.
    """

    function: Callable[P, R]
    name: str
    description: str | None
    parameters: dict[str, Any]
    strict: bool
    timeout: float | None
    retries: int | None
    requires_approval: bool | ApprovalRule
    blocking: bool = True
    # A sync function called on the event loop (blocking=False), not in a thread.
    _inline: bool = False
    is_external: bool = False
    """A tool without a body (`Tool.external`): its calls pause the run."""

    def __init__(
        self,
        function: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool = False,
        timeout: float | None = None,
        retries: int | None = None,
        requires_approval: bool | ApprovalRule = False,
        blocking: bool = True,
    ) -> None:
        """Build a tool; see `Tool.from_function`."""
        name = getattr(function, "__name__", "<unnamed>") if name is None else name
        problems = [] if _NAME.match(name) else [f"the name must match {_NAME.pattern}"]
        if timeout is not None and not timeout > 0:
            problems.append(f"timeout must be a positive number of seconds, not {timeout!r}")
        if retries is not None and (
            isinstance(retries, bool) or not isinstance(retries, int) or retries < 0
        ):
            problems.append(f"retries must be an integer >= 0 or None, not {retries!r}")
        if not (isinstance(requires_approval, bool) or callable(requires_approval)):
            problems.append(
                f"requires_approval must be True, False or a function (ctx, call) -> bool, "
                f"not {requires_approval!r}"
            )
        is_async = inspect.iscoroutinefunction(inspect.unwrap(function))
        if not isinstance(blocking, bool):
            problems.append(f"blocking must be True or False, not {blocking!r}")
        elif not blocking and is_async:
            problems.append(
                "blocking=False is for sync functions: an async function already runs on "
                "the event loop; drop blocking=False"
            )
        elif not blocking and timeout is not None:
            problems.append(
                "a function run on the event loop (blocking=False) cannot be stopped at its "
                f"timeout of {timeout!r} s; drop timeout, or drop blocking=False to run it "
                "in a worker thread"
            )
        try:
            schema = function_schema(function, name=name, description=description, strict=strict)
        except ToolDefinitionError as exc:
            raise ToolDefinitionError(name, [*problems, *exc.problems]) from None
        if problems:
            raise ToolDefinitionError(name, problems)
        functools.update_wrapper(self, function)
        # This tool's calls abandoned while their thread runs, in any event loop.
        self._stuck = StuckCount()
        self.function = function
        self.name = name
        self.description = schema.description
        self.parameters = schema.parameters
        self.strict = strict
        self.timeout = timeout
        self.retries = retries
        self.requires_approval = requires_approval
        self.blocking = blocking
        self._schema = schema
        self._is_async = is_async
        self._inline = not blocking

    @classmethod
    def from_function(
        cls,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        strict: bool = False,
        timeout: float | None = None,
        retries: int | None = None,
        requires_approval: bool | ApprovalRule = False,
        blocking: bool = True,
    ) -> Tool[P, R]:
        """Make a tool of a function without decorating it.

        Args:
            fn: A sync or async function with annotated parameters. A first
                parameter annotated `RunContext[...]` receives the run context
                and is not part of the schema.
            name: The tool name; defaults to the function's name. It must match
                `^[a-zA-Z0-9_-]{1,64}$`.
            description: What the tool does; defaults to the docstring's
                summary and body.
            strict: Make the schema follow OpenAI's strict mode and send
                `"strict": true` with the definition.
            timeout: Seconds a call may take before it fails with
                `ToolTimeoutError`. A sync function's thread is not
                interrupted; it is left to finish in the background.
            retries: Failed turns in a row allowed for this tool, instead of
                the agent's `max_tool_retries`.
            requires_approval: `True` (or a function `(ctx, call) -> bool`
                deciding per call) to make a call wait for a person's yes.
            blocking: `False` for a sync function that never blocks (no I/O,
                no locks, no sleeping, little CPU): it is called on the event
                loop, sparing the hand-off to a worker thread and back. While
                it runs, nothing else in the event loop does; a function that
                may wait belongs in a thread (the default). Refused for an
                async function and together with `timeout`.

        Returns:
            The tool.

        Raises:
            ToolDefinitionError: Listing every problem with the function.
        """
        return cls(
            fn,
            name=name,
            description=description,
            strict=strict,
            timeout=timeout,
            retries=retries,
            requires_approval=requires_approval,
            blocking=blocking,
        )

    @classmethod
    def external(
        cls, name: str, parameters_model: type[BaseModel], description: str | None = None
    ) -> Tool[..., Any]:
        """A tool without a body, answered from outside (a browser, a mobile app,
        another service): a call pauses the run with the call pending, and
        `Agent.resume(state, results={call_id: value})` supplies its result.

        Args:
            name: The name the model calls the tool by.
            parameters_model: A pydantic model of the arguments: its fields (with
                their types, defaults, constraints and descriptions) are the
                tool's parameters, and a call's arguments are validated against it.
            description: What the tool does; defaults to the model's docstring.

        Returns:
            The tool, for `Agent(tools=[...], pauses=Paused)`.

        Raises:
            ToolDefinitionError: The model's fields cannot be tool parameters.
        """
        import typing

        if not (isinstance(parameters_model, type) and issubclass(parameters_model, BaseModel)):
            raise ToolDefinitionError(
                name, [f"parameters_model must be a pydantic model class, not {parameters_model!r}"]
            )

        def external(**arguments: Any) -> Any:
            raise UserError(
                f"the external tool {name!r} has no body: its calls pause the run and are "
                "answered by Agent.resume(state, results={call_id: value})"
            )

        parameters = []
        annotations: dict[str, Any] = {}
        for field_name, field in parameters_model.model_fields.items():
            hint: Any = typing.Annotated[field.annotation, field]
            default = inspect.Parameter.empty if field.is_required() else field.get_default()
            parameters.append(
                inspect.Parameter(
                    field_name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint
                )
            )
            annotations[field_name] = hint
        external.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        external.__annotations__ = annotations
        external.__doc__ = parameters_model.__doc__
        external.__qualname__ = external.__name__ = name
        made: Tool[..., Any] = Tool(external, name=name, description=description)
        made.is_external = True
        return made

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the wrapped function directly, as if it were not a tool."""
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r}, strict={self.strict!r}, timeout={self.timeout!r})"

    @property
    def _origin(self) -> str:
        """Where the tool comes from, for error messages."""
        module = getattr(self.function, "__module__", None)
        qualname = getattr(self.function, "__qualname__", self.name)
        return f"function {module}.{qualname}" if module else f"function {qualname}"

    @property
    def takes_context(self) -> bool:
        """Whether the function's first parameter receives a `RunContext`."""
        return self._schema.context_param is not None

    @property
    def definition(self) -> dict[str, Any]:
        """The tool's wire form, as sent in a request's `tools` list.

        `{"type": "function", "function": {"name", "description"?, "parameters",
        "strict"?}}`; `description` is left out when there is none and
        `strict` is only sent when true.
        """
        function: dict[str, Any] = {"name": self.name}
        if self.description is not None:
            function["description"] = self.description
        function["parameters"] = self.parameters
        if self.strict:
            function["strict"] = True
        return {"type": "function", "function": function}

    def validate_arguments(self, arguments: str) -> dict[str, Any]:
        """Parse and validate a model's JSON arguments.

        Args:
            arguments: The `arguments` string of a tool call. An empty string
                counts as `{}`, as some servers send it for tools without
                parameters.

        Returns:
            The arguments as keyword arguments of the function (without the
            run context). Parameters that were not sent are absent.

        Raises:
            ToolArgumentsError: The arguments are not a JSON object or do not
                validate; its message tells the model what to fix.
        """
        try:
            return self._schema.validator.validate_json(arguments or "{}")  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise _arguments_error(self.name, exc, self._schema, arguments or "{}") from None

    async def call(self, arguments: str, ctx: RunContext[Any] | None = None) -> str:
        """Validate a model's arguments, run the function and format its result.

        Exceptions raised by the function itself propagate unchanged: turning
        them into a message for the model is the agent loop's decision.

        Args:
            arguments: The `arguments` string of a tool call.
            ctx: The run context; required when the function takes one.

        Returns:
            The content of the tool message: a returned `str` as it is,
            anything else as JSON.

        Raises:
            ToolArgumentsError: The arguments are not a JSON object or do not validate.
            ToolTimeoutError: The call took longer than `timeout`.
            ToolResultError: The result cannot be serialised to JSON.
            UserError: The function takes a `RunContext` and none was given.
        """
        kwargs = self.validate_arguments(arguments)
        schema = self._schema
        args = [
            kwargs.pop(p) if p in kwargs else schema.defaults[p] for p in schema.positional_only
        ]
        if schema.context_param is not None:
            if ctx is None:
                raise UserError(f"tool {self.name!r} takes a RunContext; pass ctx to call()")
            if schema.context_by_name:
                kwargs[schema.context_param] = ctx
            else:
                args.insert(0, ctx)
        if self._inline:
            # blocking=False: called on the event loop (never with a timeout).
            result = self.function(*args, **kwargs)
            if inspect.isawaitable(result):  # a sync callable that returned a coroutine
                result = await result
        elif self.timeout is None:
            # An async function is awaited here directly: one coroutine less per call.
            fn: Callable[..., Any] = self.function
            result = await (fn(*args, **kwargs) if self._is_async else self._run(args, kwargs))
        else:
            # move_on_after rather than fail_after: a TimeoutError raised by the
            # function itself must not pass for the tool's own timeout.
            with anyio.move_on_after(self.timeout) as scope:
                result = await self._run(args, kwargs)
            if scope.cancelled_caught:
                raise ToolTimeoutError(self.name, self.timeout)
        return _to_content(self.name, result)

    async def _run(self, args: list[Any], kwargs: dict[str, Any]) -> Any:
        fn: Callable[..., Any] = self.function
        if self._is_async:
            return await fn(*args, **kwargs)
        # A worker thread keeps a slow sync tool from blocking other runs. On
        # cancellation or timeout the thread is abandoned (it cannot be
        # interrupted) so the caller is not held up until it finishes; it keeps
        # its place in the bounded pool until it does (see `threads`).
        call = functools.partial(fn, *args, **kwargs)
        result = await run_in_thread(self.name, call, self._stuck)
        if inspect.isawaitable(result):  # a sync callable that returned a coroutine
            result = await result
        return result


@overload
def tool(fn: Callable[P, R], /) -> Tool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    timeout: float | None = None,
    retries: int | None = None,
    requires_approval: bool | ApprovalRule = False,
    blocking: bool = True,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool = False,
    timeout: float | None = None,
    retries: int | None = None,
    requires_approval: bool | ApprovalRule = False,
    blocking: bool = True,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Turn a typed, documented function into a `Tool`.

    Use it bare (`@tool`) or with options (`@tool(strict=True, timeout=5)`).

    Number arguments must be finite: NaN or ±Infinity for a `float` or `Decimal`
    parameter (also inside pydantic models and dataclasses) goes back to the
    model as an argument error naming the parameter. To accept them, say so
    with pydantic: `Annotated[float, Field(allow_inf_nan=True)]`, or
    `model_config = ConfigDict(allow_inf_nan=True)` on a model.

    Example:
        >>> @tool
        ... def get_current_time(timezone: str) -> str:
        ...     '''Current local time in a time zone.
        ...
        ...     Args:
        ...         timezone: IANA time zone name, such as "Asia/Tokyo".
        ...     '''
        ...     ...

    Args:
        fn: The function, when used bare.
        name: The tool name; defaults to the function's name.
        description: What the tool does; defaults to the docstring.
        strict: Make the schema follow OpenAI's strict mode.
        timeout: Seconds a call may take before it fails with `ToolTimeoutError`.
        retries: Failed turns in a row allowed for this tool before the run
            ends with `ToolRetryError`, instead of the agent's `max_tool_retries`.
        requires_approval: `True`, or a function `(ctx, call) -> bool` deciding
            per call, to make calls wait for a person's yes (the run pauses; see
            `Agent.resume`).
        blocking: `False` for a sync function that never blocks: it is called
            on the event loop rather than in a worker thread (see
            `Tool.from_function`). Refused for async functions and with `timeout`.

    Returns:
        The tool, or a decorator that makes one.

    Raises:
        ToolDefinitionError: Listing every problem with the function.
    """

    def decorate(function: Callable[P, R]) -> Tool[P, R]:
        return Tool(
            function,
            name=name,
            description=description,
            strict=strict,
            timeout=timeout,
            retries=retries,
            requires_approval=requires_approval,
            blocking=blocking,
        )

    return decorate if fn is None else decorate(fn)


def tools_by_name(
    tools: Iterable[Tool[..., Any] | Callable[..., Any]],
) -> dict[str, Tool[..., Any]]:
    """Index tools by name, making plain functions into tools.

    Args:
        tools: Tools, or functions to be made into tools with default options.

    Returns:
        Each tool under its name, in the given order.

    Raises:
        ToolDefinitionError: Two tools have the same name, or a function cannot
            be made into a tool.
    """
    if isinstance(tools, (str, bytes, Tool)) or callable(tools):
        raise UserError(
            f"tools must be a list of tools, got {_described(tools)}; "
            "write tools=[...] even for one tool"
        )
    index: dict[str, Tool[..., Any]] = {}
    for position, item in enumerate(tools):
        if not isinstance(item, Tool) and not callable(item):
            raise UserError(
                f"tools[{position}] is {_described(item)}, not a tool: pass a function "
                "(sync or async), a function decorated with @tool, or a Tool"
            )
        as_tool = item if isinstance(item, Tool) else Tool(item)
        if as_tool.name in index:
            first = index[as_tool.name]._origin
            raise ToolDefinitionError(
                as_tool.name,
                [f"another tool is already named {as_tool.name!r}: {first} and {as_tool._origin}"],
            )
        index[as_tool.name] = as_tool
    return index


def _described(value: object) -> str:
    """A value and its type for an error message, cut to a readable length."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:59] + "…"
    return f"{text} (a {type(value).__name__})"


def _arguments_error(
    name: str, exc: ValidationError, schema: FunctionSchema, arguments: str
) -> ToolArgumentsError:
    """A message the model can act on: each failing field, its reason and value.

    At most `_MAX_ERRORS` are listed, with the number of the rest: a list of a
    million invalid items would otherwise take seconds (on the event loop) to
    describe, for a message cut to its first characters anyway. pydantic has
    found every error by now, but turning them into Python objects costs more
    than finding them, so with too many the arguments are validated again with
    each list and dict stopping at its first invalid item, and the first errors
    of that pass are listed.
    """
    total = exc.error_count()
    errors: list[dict[str, str]] = []
    lines: list[str] = []
    found = exc.errors(include_url=False, include_context=False) if total <= _MAX_ERRORS else []
    unknown: list[str] = []
    if total > _MAX_ERRORS:
        # Each field at its first error, then unknown arguments, listed from the
        # parsed object: a million unknown keys cost no more than a million items.
        try:
            schema.fail_fast_validator().validate_json(arguments)
        except ValidationError as first_errors:
            found = first_errors.errors(include_url=False, include_context=False)
        if len(found) < _MAX_ERRORS:
            try:
                parsed = pydantic_core.from_json(arguments)
            except ValueError:  # pydantic read it: only a parser limit would get here
                parsed = None
            unknown = schema.unknown_arguments(parsed, _MAX_ERRORS - len(found))
    for error in found:
        if len(errors) == _MAX_ERRORS:
            break
        loc = ".".join(str(part) for part in error["loc"])
        kind = error["type"]
        if kind == "json_invalid":
            reason = error["msg"].removeprefix("Invalid JSON: ")
            message = (
                f"the arguments of tool {name!r} are not valid JSON ({reason}); send an object"
            )
            return ToolArgumentsError(name, message, [{"loc": "", "msg": reason}])
        if not loc and kind in ("dict_type", "model_type", "typed_dict_type"):
            got = _json_type(error["input"])
            message = f"the arguments of tool {name!r} must be a JSON object, not {got}"
            return ToolArgumentsError(name, message, [{"loc": "", "msg": message}])
        if kind == "extra_forbidden":
            msg = "unexpected argument"
        elif kind == "finite_number":
            msg = "must be a finite number, not NaN or Infinity"
        else:
            msg = error["msg"]
        errors.append({"loc": loc, "msg": msg})
        shown = "" if kind in ("missing", "extra_forbidden") else _shown(error["input"])
        lines.append(f"- {loc or '(arguments)'}: {msg}{shown}")
    for name in unknown:
        errors.append({"loc": name, "msg": "unexpected argument"})
        lines.append(f"- {name}: unexpected argument")
    count = f"{total:,} error" + ("s" if total > 1 else "")
    if total > len(errors):
        listed = "the first is" if len(errors) == 1 else f"the first {len(errors)} are"
        count += f"; {listed} listed, fix them and try again"
    message = f"invalid arguments for tool {name!r} ({count}):\n" + "\n".join(lines)
    return ToolArgumentsError(name, message, errors)


def _shown(value: Any) -> str:
    # NaN and Infinity as JSON spells them, not pydantic's default of null.
    text = pydantic_core.to_json(_clip(value), fallback=repr, inf_nan_mode="constants").decode()
    if len(text) > _MAX_INPUT:
        text = text[: _MAX_INPUT - 3] + "..."
    return f" (got {text})"


def _clip(value: Any, depth: int = 0) -> Any:
    """As much of a value as an 80-character quote can show: serialising a list of a
    million items to show its first few would cost as much as the list."""
    if isinstance(value, str):
        return value[:_MAX_INPUT]
    if isinstance(value, list | dict) and depth >= 3:
        return "..."
    if isinstance(value, list):
        return [_clip(item, depth + 1) for item in value[:8]]
    if isinstance(value, dict):
        items = itertools.islice(value.items(), 8)
        return {key: _clip(item, depth + 1) for key, item in items}
    return value


def _json_type(value: Any) -> str:
    kinds = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (str, "a string"))
    if value is None:
        return "null"
    if isinstance(value, list):
        return "an array"
    return next((label for kind, label in kinds if isinstance(value, kind)), "a value")


def _to_content(name: str, result: Any) -> str:
    """Tool-message content: a `str` as it is, anything else as JSON."""
    if isinstance(result, str):
        return result
    try:
        return pydantic_core.to_json(result).decode()
    except pydantic_core.PydanticSerializationError as exc:
        raise ToolResultError(name, str(exc)) from None
