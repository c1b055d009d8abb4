"""`RunConfig`: an agent's settings as one run sees them, validated once and frozen.

`Agent` builds one when it is made and a new one whenever one of its settings
is changed, so a bad value is refused where it is set. A run takes the
configuration current at its start and keeps it to its end.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, Union

from agentkit._client.encode import WireList, dump_wire
from agentkit._client.model import ChatModel
from agentkit._exceptions import UserError
from agentkit._lazy import on_first_use
from agentkit._run.tool_errors import ToolErrorDetail
from agentkit._tools.context import RunContext
from agentkit._tools.output import OutputSpec
from agentkit._tools.tool import Tool, tools_by_name

if TYPE_CHECKING:
    from agentkit._client.settings import ModelSettings
    from agentkit._run.limits import UsageLimits
    from agentkit._wire import messages as _messages
    from agentkit._wire.messages import Message, NamedToolChoice, SystemMessage
else:
    _messages = on_first_use(globals(), "_messages", "agentkit._wire.messages")

__all__ = [
    "DEFAULT_MAX_TOOL_RESULT_CHARS",
    "ApprovalHandler",
    "Handoff",
    "InputFilter",
    "Instructions",
    "OutputValidator",
    "RunConfig",
]

Instructions = Union[str, Callable[[RunContext[Any]], Union[str, Awaitable[str]]]]  # noqa: UP007
"""Text, or a function of the run's context that returns it (sync or async)."""

OutputValidator = Callable[..., Any]
"""A function `(ctx, output) -> output` or `(output) -> output`, sync or async,
that may raise `ModelRetry` to send the answer back."""

DEFAULT_MAX_TOOL_RESULT_CHARS = 100_000
"""Characters of one tool message sent to the model unless an agent says otherwise."""


ApprovalHandler = Callable[[RunContext[Any], Any], Any]
"""A function `(ctx, call) -> bool | Reject`, sync or async, deciding on the spot
whether a call that requires approval (a `PendingCall`) runs."""

InputFilter = Callable[[list["Message"]], Sequence["Message"]]
"""A function from the history so far to the history the next agent receives."""


TargetOutputT = TypeVar("TargetOutputT", covariant=True)


class Handoff(Generic[TargetOutputT]):
    """One way for a run to move to another agent, offered to the model as a tool.

    Its type parameter is the target's output type: an agent's `result.output`
    is typed as the union of its own and its handoff targets' output types.

    Made by `agentkit.handoff` (or from an agent given in `Agent(handoffs=...)`).
    When the model calls the tool, the turn's other calls still run; then the run
    goes on with the target's configuration (its instructions, tools and output
    type), its history passed through `input_filter` if one is given.

    Attributes:
        tool: The tool the model calls; it takes no arguments.
        target_name: The name of the agent the run moves to.
        config: The target's configuration, as it is when the handoff happens.
        client: The target's own client, if it has one (else the run keeps its own).
        owner: The target itself, reported as `RunResult.last_agent`.
        input_filter: What of the history the target receives (all of it when None).
    """

    __slots__ = ("client", "config", "input_filter", "owner", "target_name", "tool")

    def __init__(
        self,
        *,
        tool_name: str,
        description: str,
        target_name: str,
        config: Callable[[], RunConfig],
        client: Callable[[], ChatModel | None],
        owner: Any,
        input_filter: InputFilter | None = None,
    ) -> None:
        answer = f"Transferred to {target_name}: it answers from here."

        async def transfer() -> str:
            return answer

        self.tool: Tool[[], Any] = Tool(transfer, name=tool_name, description=description)
        self.target_name = target_name
        self.config = config
        self.client = client
        self.owner = owner
        self.input_filter = input_filter

    def __repr__(self) -> str:
        return f"Handoff(tool={self.tool.name!r}, target={self.target_name!r})"


class RunConfig:
    """What the loop needs of an agent; see `Agent` for what each setting means.

    Build it with `RunConfig.build`, which validates every setting, and change
    it with `replace`, which validates again. It cannot be changed in place.
    """

    __slots__ = (
        "approval_handler",
        "extra_body",
        "gated",
        "handoffs",
        "instructions",
        "max_tool_result_chars",
        "max_tool_retries",
        "max_turns",
        "model",
        "on_max_turns",
        "output_retries",
        "output_spec",
        "output_validators",
        "parallel_tool_calls",
        "repeat_limit",
        "repeated_tool_calls",
        "request_params",
        "reset_tool_choice",
        "settings",
        "system_message",
        "tool_choice",
        "tool_concurrency",
        "tool_definitions",
        "tool_error_detail",
        "tool_errors",
        "tools",
        "usage_limits",
    )

    model: str
    instructions: tuple[Instructions, ...]
    tools: Mapping[str, Tool[..., Any]]
    tool_choice: str | NamedToolChoice
    max_turns: int
    output_spec: OutputSpec[Any]
    settings: ModelSettings
    extra_body: Mapping[str, Any] | None
    """Provider-specific request fields, merged over `settings.extra_body`."""
    parallel_tool_calls: bool | None
    max_tool_retries: int
    output_retries: int
    tool_errors: Literal["return", "raise"]
    repeated_tool_calls: Literal["raise", "tell"]
    repeat_limit: int
    on_max_turns: Literal["raise", "answer"]
    reset_tool_choice: bool
    tool_concurrency: int | None
    max_tool_result_chars: int | None
    output_validators: tuple[OutputValidator, ...]
    usage_limits: UsageLimits | None
    tool_error_detail: ToolErrorDetail | None
    approval_handler: ApprovalHandler | None
    handoffs: Mapping[str, Handoff[Any]]
    """The run's ways to other agents, by the name of their tool (also in `tools`)."""
    # Derived from the settings above when the configuration is built.
    tool_definitions: WireList
    """The tools' definitions in wire form, sent with every request."""
    gated: frozenset[str]
    """The tools whose calls may pause a run (approval, or an external result); empty
    for most agents, so the loop's check costs one attribute read per turn."""
    request_params: Mapping[str, Any]
    """The request fields every request of a run carries besides the conversation
    and the tools: the model settings and the response format."""
    system_message: SystemMessage | None
    """The instructions as one system message, when they are all text (None when
    there are none, or when some are functions, rendered for each request)."""

    def __init__(self, **fields: Any) -> None:
        # Called by `build` only, with every field.
        for name in self.__slots__:
            if name != "system_message":
                object.__setattr__(self, name, fields[name])
        texts = self.instructions
        static = all(isinstance(part, str) for part in texts)
        system = _messages.SystemMessage(content="\n\n".join(texts)) if texts and static else None  # type: ignore[arg-type]
        object.__setattr__(self, "system_message", system)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a RunConfig cannot be changed; use .replace({name}=...)")

    def __repr__(self) -> str:
        return f"RunConfig(model={self.model!r}, tools={list(self.tools)!r})"

    @property
    def output_type(self) -> Any:
        """The type a run's final answer is validated against."""
        return self.output_spec.output_type

    @classmethod
    def build(
        cls,
        *,
        model: str,
        instructions: Instructions | Sequence[Instructions] | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] = (),
        tool_choice: Any = "auto",
        max_turns: int = 10,
        output_type: Any = str,
        settings: ModelSettings | None = None,
        parallel_tool_calls: bool | None = None,
        max_tool_retries: int = 2,
        output_retries: int = 2,
        tool_errors: Literal["return", "raise"] = "return",
        repeated_tool_calls: Literal["raise", "tell"] = "raise",
        repeat_limit: int = 3,
        on_max_turns: Literal["raise", "answer"] = "raise",
        reset_tool_choice: bool = True,
        tool_concurrency: int | None = None,
        max_tool_result_chars: int | None = DEFAULT_MAX_TOOL_RESULT_CHARS,
        output_validators: Iterable[OutputValidator] = (),
        usage_limits: UsageLimits | None = None,
        handoffs: Iterable[Handoff[Any]] = (),
        tool_error_detail: ToolErrorDetail | None = None,
        extra_body: Mapping[str, Any] | None = None,
        approval_handler: ApprovalHandler | None = None,
    ) -> RunConfig:
        """A validated configuration.

        Raises:
            UserError: A setting is out of range or of the wrong kind; the
                message names it.
        """
        if not isinstance(model, str) or not model:
            raise UserError(f"model must be a non-empty model name, got {model!r}")
        ways = tuple(handoffs)
        for way in ways:
            if not isinstance(way, Handoff):
                raise UserError(f"handoffs must be agents or handoff(...) values, got {way!r}")
        if isinstance(tools, (str, bytes, Tool)) or callable(tools):
            tools_by_name(tools)  # the error for a single tool given without a list
        by_name = MappingProxyType(tools_by_name([*tools, *(way.tool for way in ways)]))
        _check_int("max_turns", max_turns, 1)
        _check_int("max_tool_retries", max_tool_retries, 0)
        _check_int("output_retries", output_retries, 0)
        _check_int("repeat_limit", repeat_limit, 2)
        if tool_concurrency is not None:
            _check_int("tool_concurrency", tool_concurrency, 1)
        if max_tool_result_chars is not None:
            _check_int("max_tool_result_chars", max_tool_result_chars, 1)
        _check_choice("tool_errors", tool_errors, ("return", "raise"))
        _check_choice("repeated_tool_calls", repeated_tool_calls, ("raise", "tell"))
        _check_choice("on_max_turns", on_max_turns, ("raise", "answer"))
        if tool_error_detail is not None:
            _check_choice("tool_error_detail", tool_error_detail, ("message", "type"))
        if not isinstance(reset_tool_choice, bool):
            raise UserError(f"reset_tool_choice must be True or False, got {reset_tool_choice!r}")
        if parallel_tool_calls is not None and not isinstance(parallel_tool_calls, bool):
            raise UserError(
                f"parallel_tool_calls must be True, False or None, got {parallel_tool_calls!r}"
            )
        if settings is None:
            from agentkit._client.settings import ModelSettings  # loads with the first agent

            settings = ModelSettings()
        elif not hasattr(settings, "to_params"):
            hint = ""
            if isinstance(settings, Mapping):
                fields = ", ".join(f"{key}={value!r}" for key, value in settings.items())
                hint = f"; write settings=ModelSettings({fields[:120]})"
            raise UserError(
                f"settings must be a ModelSettings, got {type(settings).__name__}{hint}"
            )
        validators = tuple(output_validators)
        for validator in validators:
            if not callable(validator):
                raise UserError(f"an output validator must be a function, got {validator!r}")
        if approval_handler is not None and not callable(approval_handler):
            raise UserError(
                f"approval_handler must be a function (ctx, call) -> bool, got {approval_handler!r}"
            )
        if usage_limits is not None and not hasattr(usage_limits, "check_tokens"):
            raise UserError(f"usage_limits must be a UsageLimits, got {usage_limits!r}")
        output_spec: OutputSpec[Any] = OutputSpec(output_type)
        params = settings.to_params()
        if extra_body is not None:
            if not isinstance(extra_body, Mapping):
                raise UserError(f"extra_body must be a mapping of field names, got {extra_body!r}")
            params["extra_body"] = {**params.get("extra_body", {}), **extra_body}
        if output_spec.response_format is not None:
            params["response_format"] = output_spec.response_format
        return cls(
            model=model,
            instructions=_instructions(instructions),
            tools=by_name,
            tool_choice=_tool_choice(tool_choice, by_name),
            max_turns=max_turns,
            output_spec=output_spec,
            settings=settings,
            parallel_tool_calls=parallel_tool_calls,
            max_tool_retries=max_tool_retries,
            output_retries=output_retries,
            tool_errors=tool_errors,
            repeated_tool_calls=repeated_tool_calls,
            repeat_limit=repeat_limit,
            on_max_turns=on_max_turns,
            reset_tool_choice=reset_tool_choice,
            tool_concurrency=tool_concurrency,
            max_tool_result_chars=max_tool_result_chars,
            output_validators=validators,
            usage_limits=usage_limits,
            handoffs=MappingProxyType({way.tool.name: way for way in ways}),
            tool_error_detail=tool_error_detail,
            extra_body=extra_body,
            approval_handler=approval_handler,
            tool_definitions=WireList(dump_wire(t.definition) for t in by_name.values()),
            gated=frozenset(
                name
                for name, t in by_name.items()
                if getattr(t, "requires_approval", False) is not False
                or getattr(t, "is_external", False)
            ),
            request_params=MappingProxyType(params),
        )

    def replace(self, **changes: Any) -> RunConfig:
        """This configuration with `changes` applied, validated as `build` validates.

        Raises:
            UserError: A changed setting is invalid, or is not a setting.
        """
        handoff_tools = {id(way.tool) for way in self.handoffs.values()}
        settings = {
            "model": self.model,
            "instructions": self.instructions,
            "tools": tuple(t for t in self.tools.values() if id(t) not in handoff_tools),
            "handoffs": tuple(self.handoffs.values()),
            "tool_error_detail": self.tool_error_detail,
            "extra_body": self.extra_body,
            "approval_handler": self.approval_handler,
            "tool_choice": _choice_name(self.tool_choice),
            "max_turns": self.max_turns,
            "output_type": self.output_type,
            "settings": self.settings,
            "parallel_tool_calls": self.parallel_tool_calls,
            "max_tool_retries": self.max_tool_retries,
            "output_retries": self.output_retries,
            "tool_errors": self.tool_errors,
            "repeated_tool_calls": self.repeated_tool_calls,
            "repeat_limit": self.repeat_limit,
            "on_max_turns": self.on_max_turns,
            "reset_tool_choice": self.reset_tool_choice,
            "tool_concurrency": self.tool_concurrency,
            "max_tool_result_chars": self.max_tool_result_chars,
            "output_validators": self.output_validators,
            "usage_limits": self.usage_limits,
        }
        unknown = set(changes) - set(settings)
        if unknown:
            raise UserError(f"not an agent setting: {', '.join(sorted(unknown))}")
        return self.build(**{**settings, **changes})


def _instructions(value: Any) -> tuple[Instructions, ...]:
    """The instructions as a tuple of parts: text or functions."""
    if value is None:
        return ()
    if isinstance(value, str) or callable(value):
        parts: tuple[Any, ...] = (value,)
    elif isinstance(value, (list, tuple)):
        parts = tuple(value)
    else:
        raise UserError(
            "instructions must be text, a function (ctx) -> str, or a list of them; "
            f"got {type(value).__name__} {value!r:.80}"
        )
    for part in parts:
        if not (isinstance(part, str) or callable(part)):
            raise UserError(
                "instructions must be text, a function (ctx) -> str, or a list of them; "
                f"got {part!r}"
            )
    return parts


async def render_instructions(
    parts: Sequence[Instructions], ctx: RunContext[Any]
) -> SystemMessage | None:
    """The instructions for one request, functions called with the run's context."""
    texts: list[str] = []
    for part in parts:
        text = part if isinstance(part, str) else part(ctx)
        if inspect.isawaitable(text):
            text = await text
        if not isinstance(text, str):
            raise UserError(f"an instructions function returned {type(text).__name__}, not str")
        if text:
            texts.append(text)
    return _messages.SystemMessage(content="\n\n".join(texts)) if texts else None


def _tool_choice(choice: Any, tools: Mapping[str, Tool[..., Any]]) -> str | NamedToolChoice:
    # A name or a mode is a string: only another value needs the wire models.
    if not isinstance(choice, str) and isinstance(choice, _messages.NamedToolChoice):
        choice = choice.function.name
    if choice in ("auto", "none", "required"):
        if choice == "required" and not tools:
            raise UserError('tool_choice="required" needs at least one tool')
        return str(choice)
    if isinstance(choice, str):
        if choice not in tools:
            known = ", ".join(tools) or "none"
            raise UserError(f"tool_choice {choice!r} is not a tool of this agent (tools: {known})")
        return _messages.NamedToolChoice.of(choice)
    raise UserError(f'tool_choice must be "auto", "none", "required" or a tool name: {choice!r}')


def _choice_name(choice: str | NamedToolChoice) -> str:
    return choice if isinstance(choice, str) else choice.function.name


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
