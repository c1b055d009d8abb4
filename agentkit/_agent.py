"""`Agent`: a model, instructions and tools, run as a loop until the model answers."""

from __future__ import annotations

import dataclasses
import functools
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, overload

import anyio
from typing_extensions import Never, Self, TypeVar

from agentkit._client.client import ChatClient
from agentkit._client.model import ChatModel
from agentkit._exceptions import RunTimeoutError, UserError
from agentkit._lazy import on_first_use
from agentkit._run.config import (
    DEFAULT_MAX_TOOL_RESULT_CHARS,
    ApprovalHandler,
    Handoff,
    InputFilter,
    Instructions,
    OutputValidator,
    RunConfig,
)
from agentkit._run.tool_errors import ToolErrorDetail
from agentkit._tools.context import RunContext
from agentkit._tools.output import OutputSpec
from agentkit._tools.tool import Tool, _to_content

if TYPE_CHECKING:
    from agentkit._client.settings import ModelSettings
    from agentkit._run import (
        history as _history,
        loop as _loop,
        result as _result,
        rules as _rules,
        state as _state,
        tool_step as _tool_step,
    )
    from agentkit._run.events import EventHandler, StreamEvent
    from agentkit._run.limits import UsageLimits
    from agentkit._run.loop import Run
    from agentkit._run.observe import RunObserver
    from agentkit._run.result import Paused, Reject, RunResult
    from agentkit._run.session import Session
    from agentkit._run.state import RunState
    from agentkit._run.streamed_run import StreamedRun
    from agentkit._run.tool_step import ToolOutcome
    from agentkit._wire import messages as _messages
    from agentkit._wire.messages import ContentPart, Message
else:
    # The run machinery loads with an agent's first run; the wire models with the
    # first agent, request or run that needs one (see agentkit._lazy).
    _history = on_first_use(globals(), "_history", "agentkit._run.history")
    _loop = on_first_use(globals(), "_loop", "agentkit._run.loop")
    _result = on_first_use(globals(), "_result", "agentkit._run.result")
    _rules = on_first_use(globals(), "_rules", "agentkit._run.rules")
    _state = on_first_use(globals(), "_state", "agentkit._run.state")
    _tool_step = on_first_use(globals(), "_tool_step", "agentkit._run.tool_step")
    _messages = on_first_use(globals(), "_messages", "agentkit._wire.messages")

__all__ = ["DEFAULT_MAX_TOOL_RESULT_CHARS", "Agent", "handoff"]

OutputT = TypeVar("OutputT", default=str)
PauseT = TypeVar("PauseT", default=Never)
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
# The output types of handoff targets, joined into the agent's own by `Agent(handoffs=...)`.
H1 = TypeVar("H1")
H2 = TypeVar("H2")
H3 = TypeVar("H3")

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,50}$")

Prompt = str | Sequence["ContentPart"]
History = Sequence["Message | Mapping[str, Any]"]


class _Setting(Generic[T]):
    """An attribute of `Agent` kept in its `RunConfig`: read from it, and set by
    building a new, validated configuration."""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, agent: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, agent: Agent[Any, Any], owner: type[Any]) -> T: ...
    def __get__(self, agent: Agent[Any, Any] | None, owner: type[Any]) -> Self | T:
        if agent is None:
            return self
        return getattr(agent.config, self._name)  # type: ignore[no-any-return]

    def __set__(self, agent: Agent[Any, Any], value: Any) -> None:
        agent.config = agent.config.replace(**{self._name: value})


class _Checked:
    """A plain attribute of `Agent`, checked by `check` whenever it is set (in the
    constructor too), so a wrong value fails where it is given, not in a run.

    It has no `__get__`: the value lives in the instance's `__dict__` under the same
    name, so reading it (once per run) costs a plain attribute read.
    """

    def __init__(self, check: Callable[[Any], Any]) -> None:
        self._check = check

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    def __set__(self, agent: Agent[Any, Any], value: Any) -> None:
        agent.__dict__[self._name] = self._check(value)


def _check_client(client: Any) -> ChatModel | None:
    if client is None or callable(getattr(client, "create", None)):
        return client  # type: ignore[no-any-return]
    if isinstance(client, str):
        raise UserError(
            f"client must be a ChatModel, not a string ({client[:80]!r}); to use a server "
            "at a URL, pass client=ChatClient(base_url=...), or set OPENAI_BASE_URL"
        )
    raise UserError(
        f"client must be a ChatModel (a ChatClient, a FallbackModel, or a test model such "
        f"as agentkit.testing.FunctionModel), got {type(client).__name__}"
    )


def _check_event_handler(handler: Any) -> EventHandler | None:
    if handler is None or callable(handler):
        return handler  # type: ignore[no-any-return]
    raise UserError(
        "event_handler must be a function called with each event (sync or async), "
        f"got {type(handler).__name__} {handler!r:.80}"
    )


if TYPE_CHECKING:
    from typing import TypeAlias

    from typing_extensions import TypedDict, Unpack

    class _AgentOptions(TypedDict, total=False):
        """The keyword arguments of `Agent` that do not take part in its type."""

        client: ChatModel | None
        instructions: Instructions | Sequence[Instructions] | None
        tools: Iterable[Tool[..., Any] | Callable[..., Any]]
        tool_choice: str
        max_turns: int
        settings: ModelSettings | None
        extra_body: Mapping[str, Any] | None
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
        tool_error_detail: ToolErrorDetail | None
        timeout: float | None
        event_handler: EventHandler | None
        output_validators: Iterable[OutputValidator]
        usage_limits: UsageLimits | None
        name: str | None
        approval_handler: ApprovalHandler | None
        instrument: RunObserver | None

    # A handoff target whose output type is `T`.
    _Target: TypeAlias = "Agent[T, Any] | Handoff[T]"

    Approval: TypeAlias = "bool | Reject"
    """A decision on a pending call: `True` approves it; `False` or `Reject(reason)` refuses it."""


class Agent(Generic[OutputT, PauseT]):
    """A model with instructions and tools, run as a loop until it answers.

    An agent holds configuration only, so one agent can serve many concurrent
    runs; each run keeps its own state.

    Args:
        model: The model name sent with each request.
        client: A `ChatClient`, or any object with the same `create` method
            (such as `agentkit.testing.FunctionModel`). Default: each run makes a
            `ChatClient` from the environment and closes it at the end; pass
            one client to share its connection pool between runs.
        instructions: The system message sent first in every request: text, a
            function `(ctx) -> str` (sync or async) called before each request,
            or a list of both (joined by blank lines). They are the agent's, not
            the conversation's: they are not stored in `RunResult.messages`, and
            a history from another agent continues under this agent's
            instructions. (To keep a system message in the history, put it
            there yourself: `message_history=[SystemMessage(...), ...]`.)
        tools: `Tool`s, or plain functions to be made into tools.
        tool_choice: `"auto"`, `"none"`, `"required"`, or the name of a tool.
        max_turns: The most model requests one run may make.
        output_type: `str` for text, or a type (a pydantic model, say) the final
            answer must validate against; it is requested with a strict JSON schema.
        settings: Sampling fields sent with every request.
        extra_body: Provider-specific request fields (`thinking`, vLLM's
            `chat_template_kwargs`, …) merged into every request body last,
            over `settings.extra_body`.
        parallel_tool_calls: Sent as `parallel_tool_calls` when not None.
        max_tool_retries: Turns in a row in which a tool failed (bad arguments,
            an unknown name, an error) that are sent back to the model for it
            to correct; one more ends the run with `ToolRetryError`.
        output_retries: Final answers that fail validation and are sent back;
            one more ends the run with `OutputValidationError`.
        tool_errors: What to do when a tool raises: `"return"` sends the error
            to the model as the tool's result; `"raise"` ends the run with
            `ToolExecutionError`.
        repeated_tool_calls: When the same tool is called with the same
            arguments `repeat_limit` turns in a row: `"raise"` ends the run with
            `RepeatedToolCallError`; `"tell"` answers that call with an error
            asking the model to use the results it has.
        repeat_limit: See `repeated_tool_calls`.
        on_max_turns: `"raise"` ends a run that reaches `max_turns` with
            `MaxTurnsExceeded`; `"answer"` makes one last request with
            `tool_choice: "none"` so the run ends with an answer.
        reset_tool_choice: After a forced call (`"required"` or a name), send
            `"auto"` so the loop can end. False keeps forcing.
        tool_concurrency: The most tool calls of one turn run at once (None: all).
        max_tool_result_chars: The most characters of one tool message sent to
            the model (default 100,000, about 25,000 tokens). A longer result,
            or error text, is cut to its first `max_tool_result_chars`
            characters followed by a notice such as `[truncated: the tool
            returned 10,485,760 characters; only the first 100,000 are shown]`.
            None sends every result whole.
        tool_error_detail: What the model is told when a tool raises (other than
            `ModelRetry` or `ToolCallError`, whose messages are always sent):
            `"message"`, the exception's type and message; `"type"`, only
            `Error: the tool <name> failed (<ExceptionType>)`, the message and
            traceback going to the `agentkit` logger instead. None: `"message"`,
            except in a served app, whose `tool_error_detail` applies (`"type"`
            by default).
        timeout: Seconds a whole run may take before `RunTimeoutError`. The
            run ends on time even while a sync tool blocks in its worker
            thread: the call is answered as cancelled and the thread, which
            cannot be interrupted, is left to finish in the background.
            None (the default): no limit on the run, which may rightly take
            hours of tool calls; each request to the model is still bounded
            by its `ChatClient`'s `attempt_timeout` (600 s by default).
        event_handler: Called with each `RunEvent`; see `agentkit.RunEvent`.
        output_validators: Functions `(ctx, output) -> output` (or `(output) ->
            output`), sync or async, applied in order to a final answer that has
            the right type; one may raise `ModelRetry` to send the answer back
            with its message, within `output_retries`. See `output_validator`.
        usage_limits: `UsageLimits` every run keeps to, unless a run gets its own.
        name: The agent's name: the tool that hands a run to it is
            `transfer_to_<name>`, and `as_tool` names its tool after it.
        handoffs: Agents (or `handoff(...)` values) this agent may hand a run
            to: the model gets one tool per target, and calling it moves the
            rest of the run to that agent (its instructions, tools and output
            type). `RunResult.last_agent` says which agent answered. Handoffs
            count against the turn budget of the agent that has the run.
            `result.output` is typed as the union of this agent's output type
            and the targets'; give targets of different types as a tuple (up
            to three), since a type checker joins a mixed list into `object`.
        pauses: `Paused`, for an agent whose runs may pause: one with tools that
            require approval (`@tool(requires_approval=...)`) or external tools.
            `run` is then typed to return `RunResult[OutputT] | Paused`, so a
            type-checked caller must handle the pause; an agent with such tools
            and without `pauses=Paused` refuses to run (unless an
            `approval_handler` decides every approval and it has no external tools).
        approval_handler: A function `(ctx, call) -> bool | Reject`, sync or
            async, that decides on the spot whether a call that requires approval
            runs, given the run context and the `PendingCall`: for CLIs and
            notebooks, where a person answers while the run waits. `False` or
            `Reject(reason)` refuses the call; the model is told the reason.
        instrument: What watches this agent's runs, such as
            `agentkit.otel.Instrumentation()` (OpenTelemetry traces and metrics);
            default: `Agent.instrument_all`, which `agentkit.otel.instrument()` sets.

    Every argument is also an attribute. Setting one (`agent.max_turns = 20`,
    `agent.settings = ModelSettings(...)`) validates it as the constructor
    does, raising `UserError` for a bad value, and applies to the runs started
    afterwards; runs in progress keep the configuration they started with.

    Example:
        >>> agent = Agent("gpt-4o-mini", instructions="Be brief.", tools=[get_current_time])
        >>> result = agent.run_sync("What time is it in Tokyo?")
        >>> print(result.output)
    """

    instrument_all: ClassVar[RunObserver | None] = None
    """What watches the runs of every agent made without `instrument`; None, unless
    `agentkit.otel.instrument()` set it."""

    model = _Setting[str]()
    instructions = _Setting["tuple[Instructions, ...]"]()
    output_validators = _Setting["tuple[OutputValidator, ...]"]()
    usage_limits = _Setting["UsageLimits | None"]()
    tool_error_detail = _Setting["ToolErrorDetail | None"]()
    extra_body = _Setting["Mapping[str, Any] | None"]()
    approval_handler = _Setting["ApprovalHandler | None"]()
    tools = _Setting[Mapping[str, Tool[..., Any]]]()
    tool_choice = _Setting["str | _messages.NamedToolChoice"]()
    max_turns = _Setting[int]()
    output_type = _Setting[Any]()
    output_spec = _Setting[OutputSpec[Any]]()
    settings = _Setting["ModelSettings"]()
    parallel_tool_calls = _Setting[bool | None]()
    max_tool_retries = _Setting[int]()
    output_retries = _Setting[int]()
    tool_errors = _Setting[Literal["return", "raise"]]()
    repeated_tool_calls = _Setting[Literal["raise", "tell"]]()
    repeat_limit = _Setting[int]()
    on_max_turns = _Setting[Literal["raise", "answer"]]()
    reset_tool_choice = _Setting[bool]()
    tool_concurrency = _Setting[int | None]()
    max_tool_result_chars = _Setting[int | None]()
    if TYPE_CHECKING:
        client: ChatModel | None
        event_handler: EventHandler | None
    else:
        client = _Checked(_check_client)
        event_handler = _Checked(_check_event_handler)

    # The overloads give `result.output` the union of the agent's output type and
    # its handoff targets'. A list of targets of different types is joined by
    # mypy into `object`, so such a list types the output as `Any`; a tuple of up
    # to three targets keeps each type.
    @overload
    def __init__(
        self: Agent[OutputT, PauseT],
        model: str,
        *,
        output_type: type[OutputT] = ...,
        handoffs: tuple[()] = (),
        pauses: type[PauseT] | None = None,
        **options: Unpack[_AgentOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: Agent[OutputT | H1, PauseT],
        model: str,
        *,
        output_type: type[OutputT] = ...,
        handoffs: tuple[_Target[H1]],
        pauses: type[PauseT] | None = None,
        **options: Unpack[_AgentOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: Agent[OutputT | H1 | H2, PauseT],
        model: str,
        *,
        output_type: type[OutputT] = ...,
        handoffs: tuple[_Target[H1], _Target[H2]],
        pauses: type[PauseT] | None = None,
        **options: Unpack[_AgentOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: Agent[OutputT | H1 | H2 | H3, PauseT],
        model: str,
        *,
        output_type: type[OutputT] = ...,
        handoffs: tuple[_Target[H1], _Target[H2], _Target[H3]],
        pauses: type[PauseT] | None = None,
        **options: Unpack[_AgentOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: Agent[OutputT | H1, PauseT],
        model: str,
        *,
        output_type: type[OutputT] = ...,
        handoffs: Iterable[_Target[H1]],
        pauses: type[PauseT] | None = None,
        **options: Unpack[_AgentOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: Agent[Any, PauseT],
        model: str,
        *,
        output_type: type[OutputT] = ...,
        handoffs: Iterable[Agent[Any, Any] | Handoff[Any]],
        pauses: type[PauseT] | None = None,
        **options: Unpack[_AgentOptions],
    ) -> None: ...
    def __init__(
        self,
        model: str,
        *,
        client: ChatModel | None = None,
        instructions: Instructions | Sequence[Instructions] | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] = (),
        tool_choice: str = "auto",
        max_turns: int = 10,
        output_type: type[OutputT] = str,  # type: ignore[assignment]  # OutputT defaults to str
        settings: ModelSettings | None = None,
        extra_body: Mapping[str, Any] | None = None,
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
        tool_error_detail: ToolErrorDetail | None = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
        output_validators: Iterable[OutputValidator] = (),
        usage_limits: UsageLimits | None = None,
        name: str | None = None,
        handoffs: Iterable[Agent[Any, Any] | Handoff[Any]] = (),
        pauses: type[PauseT] | None = None,
        approval_handler: ApprovalHandler | None = None,
        instrument: RunObserver | None = None,
    ) -> None:
        if pauses is not None and pauses is not _result.Paused:
            raise UserError(f"pauses must be agentkit.Paused or None, got {pauses!r}")
        self.pauses = pauses
        if name is not None and (not isinstance(name, str) or not _NAME.match(name)):
            raise UserError(f"name must match {_NAME.pattern} (it names tools), got {name!r}")
        self.name = name
        self.config = RunConfig.build(
            model=model,
            instructions=instructions,
            tools=tools,
            tool_choice=tool_choice,
            max_turns=max_turns,
            output_type=output_type,
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
            output_validators=output_validators,
            usage_limits=usage_limits,
            handoffs=[_as_handoff(target) for target in handoffs],
            tool_error_detail=tool_error_detail,
            extra_body=extra_body,
            approval_handler=approval_handler,
        )
        """The settings a run uses, validated; replaced whenever one is set."""
        self.client = client
        self.timeout = timeout
        self.event_handler = event_handler
        self.instrument = instrument
        """What watches this agent's runs (`agentkit.otel.Instrumentation`); None
        means the process-wide default, `Agent.instrument_all`."""

    @property
    def handoffs(self) -> Mapping[str, Handoff[Any]]:
        """The agent's handoffs, by the name of the tool that makes each one."""
        return self.config.handoffs

    @handoffs.setter
    def handoffs(self, targets: Iterable[Agent[Any, Any] | Handoff[Any]]) -> None:
        self.config = self.config.replace(handoffs=[_as_handoff(t) for t in targets])

    def as_tool(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = None,
    ) -> Tool[..., Any]:
        """This agent as a tool of another: the model writes the request, this agent
        runs on it, and its output is the tool's result.

        The sub-run gets the calling run's `deps`, its events go to the calling
        run's event handler, its usage is added to the calling run's, and it is
        cancelled with it (or after `timeout` seconds, as a tool timeout).

        Args:
            name: The tool's name; defaults to the agent's `name`.
            description: What the agent does, for the model that calls it.
            timeout: Seconds the sub-run may take.

        Example:
            >>> translator = Agent("gpt-4o-mini", name="translator", instructions="Translate to French.")
            >>> writer = Agent("gpt-4o", tools=[translator.as_tool(description="Translates to French.")])
        """
        tool_name = name or self.name
        if tool_name is None:
            raise UserError("as_tool() needs a name: pass name=..., or give the agent a name")
        agent = self

        async def run_agent(ctx: RunContext[Any], input: str) -> Any:
            """Run the agent on a request.

            Args:
                input: The request for the agent, complete in itself: it sees nothing else.
            """
            result: Any = await agent.run(input, deps=ctx.deps, event_handler=ctx.event_handler)
            if isinstance(result, _result.Paused):
                ctx.add_usage(result.usage)
                waiting = ", ".join(p.tool_name for p in result.pending)
                raise UserError(
                    f"the agent {tool_name!r}, called as a tool, paused on {waiting}: "
                    "an agent used as a tool must not pause (give it an approval_handler)"
                )
            ctx.add_usage(result.usage)
            return result.output

        return Tool(
            run_agent,
            name=tool_name,
            description=description or f"Ask the agent {tool_name!r}.",
            timeout=timeout,
        )

    @property
    def timeout(self) -> float | None:
        """Seconds a whole run may take before `RunTimeoutError` (None: no limit)."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
        ):
            raise UserError(f"timeout must be a positive number of seconds, got {value!r}")
        self._timeout = value

    def __repr__(self) -> str:
        return f"Agent(model={self.model!r}, tools={list(self.tools)!r})"

    def output_validator(self, function: F) -> F:
        """Register an output validator (a decorator); see `output_validators`.

        Example:
            >>> @agent.output_validator
            ... def in_the_future(ctx: RunContext[None], when: date) -> date:
            ...     if when <= date.today():
            ...         raise ModelRetry("the date must be in the future")
            ...     return when
        """
        self.output_validators = (*self.output_validators, function)
        return function

    def start_state(self, prompt: Prompt, message_history: History | None = None) -> RunState:
        """The state a run of this agent starts from: the history, checked, and the prompt.

        A durable engine or a caller that stores runs itself makes the state here and
        drives it with `resume`; `run` does the same in one call.

        Args:
            prompt: The user's message: text, or content parts.
            message_history: An earlier conversation to continue.

        Raises:
            UserError: The history breaks the tool-call invariant, or the prompt is empty.
        """
        return _state.RunState(messages=self._start(prompt, message_history))

    async def run(
        self,
        prompt: Prompt,
        *,
        message_history: History | None = None,
        deps: Any = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
        model: str | None = None,
        settings: ModelSettings | None = None,
        instructions: Instructions | Sequence[Instructions] | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] = (),
        usage_limits: UsageLimits | None = None,
        session: Session | None = None,
    ) -> RunResult[OutputT] | PauseT:
        """Run the agent until the model gives a final answer, or until it pauses.

        Args:
            prompt: The user's message: text, or content parts (text and images).
            message_history: An earlier conversation to continue, such as
                `RunResult.messages` of a previous run.
            deps: Anything the tools need; they receive it as `ctx.deps`.
            timeout: Seconds for the whole run; overrides the agent's `timeout`.
            event_handler: Called with each event; overrides the agent's handler.
            model: The model for this run instead of the agent's.
            settings: Model settings for this run, over the agent's: the fields
                set here replace the agent's, the others are kept.
            instructions: Instructions for this run instead of the agent's.
            tools: Tools this run has besides the agent's.
            usage_limits: `UsageLimits` for this run instead of the agent's.
            session: A `Session` (`agentkit.sessions`) to continue: its history is
                loaded under its lock, and the run's new messages are stored only
                when the run ends with an answer. Not with `message_history`.

        The overrides apply to this run only: the agent is not changed, and
        concurrent runs with other overrides do not see them.

        Returns:
            The `RunResult`; or, for an agent made with `pauses=Paused`, a
            `Paused` when calls wait for approval or outside results (see `resume`).

        Raises:
            AgentRunError: The run ended without an answer (a subclass says why);
                its `.messages` is the history so far.
            APIError: A request failed after the client's retries.
            UserError: Bad arguments, history or tool results.
        """
        config = self._config_for(model, settings, instructions, tools, usage_limits)
        events = event_handler or self.event_handler
        if session is not None:
            return await self._run_in_session(
                session, prompt, message_history, config, deps, timeout, events
            )
        state = _state.RunState(messages=self._start(prompt, message_history))
        return await self._run(
            config, state, deps=deps, timeout=timeout, events=events, streamed=False
        )

    async def _run_in_session(
        self,
        session: Session,
        prompt: Prompt,
        message_history: History | None,
        config: RunConfig,
        deps: Any,
        timeout: float | None,
        events: EventHandler | None,
    ) -> RunResult[OutputT] | PauseT:
        """`run` with the session's history, its new messages stored if it answers."""
        # Loaded here, not with `Agent`: a run without a session never imports it.
        from agentkit._run.session import run_in_session

        _one_history(message_history, session)

        state = _state.RunState(messages=[])

        async def in_session(history: list[Message]) -> tuple[Any, Sequence[Message] | None]:
            state.messages = self._start(prompt, history)
            result = await self._run(
                config, state, deps=deps, timeout=timeout, events=events, streamed=False
            )
            return result, result.messages if isinstance(result, _result.RunResult) else None

        return await run_in_session(session, in_session, lambda: state.messages)

    async def resume(
        self,
        state: RunState,
        approvals: Mapping[str, Approval] | None = None,
        *,
        results: Mapping[str, Any] | None = None,
        deps: Any = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] = (),
    ) -> RunResult[OutputT] | PauseT:
        """Continue a paused run: approved calls run, rejected ones are answered with
        their reason, external ones with their results, and the loop goes on.

        `state` may come from another process (`RunState.model_validate_json` of
        `paused.state.model_dump_json()`), with the agent rebuilt from code. The
        state is updated in place and stops being paused, so resuming the same
        object twice is refused; two copies loaded from the same JSON cannot be
        told apart here: a caller that stores paused states should consume each
        one once, keyed on `(state.run_id, state.step)`.

        Args:
            state: The `state` of a `Paused` result.
            approvals: For each pending call that needs approval, by its id:
                `True` to run it; `False` or `Reject(reason)` to refuse it (the
                model is told the reason).
            results: For each pending call of an external tool, by its id: its
                result, turned into the tool message as a tool's return value is.
            deps: Anything the tools need; they receive it as `ctx.deps`.
            timeout: Seconds for the rest of the run.
            event_handler: Called with each event; overrides the agent's handler.
            tools: Tools besides the agent's, as given to the run that paused.

        Returns:
            The `RunResult`, or a `Paused` when the run pauses again.

        Raises:
            UserError: The state is not paused (or was resumed already), a
                pending call has no decision or an unknown id was given, or the
                agent changed so that an approved call no longer fits its tool.
        """
        config, finish_turn = self._resumption(state, approvals, results, tools)
        events = event_handler or self.event_handler
        return await self._run(
            config,
            state,
            deps=deps,
            timeout=timeout,
            events=events,
            streamed=False,
            resume=finish_turn,
        )

    def _resumption(
        self,
        state: RunState,
        approvals: Mapping[str, Approval] | None,
        results: Mapping[str, Any] | None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]],
    ) -> tuple[RunConfig, Callable[[Run[Any]], Any]]:
        """The configuration to resume `state` with, and the step that finishes its
        paused turn; every check is made here, before anything runs."""
        config = self._config_for(None, None, None, tools, None)
        if not state.pending:
            _rules.check_resume(config, state, ())  # says it is not paused
        approved, answers = _decisions(state, approvals or {}, results or {}, config)
        if state.agent is not None and state.agent != self.name:
            raise UserError(
                f"run {state.run_id} was handed to the agent {state.agent!r}: resume it "
                "with that agent"
            )
        _rules.check_resume(config, state, approved)

        async def finish_turn(run: Run[Any]) -> None:
            await run.resume_turn(approved, answers)

        return config, finish_turn

    def resume_sync(
        self,
        state: RunState,
        approvals: Mapping[str, Approval] | None = None,
        *,
        results: Mapping[str, Any] | None = None,
        deps: Any = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] = (),
    ) -> RunResult[OutputT] | PauseT:
        """`resume`, from synchronous code: starts an event loop for the rest of the run."""
        _refuse_in_event_loop("resume_sync", "await agent.resume(...)")
        call = functools.partial(
            self.resume,
            state,
            approvals,
            results=results,
            deps=deps,
            timeout=timeout,
            event_handler=event_handler,
            tools=tools,
        )
        return anyio.run(call)

    def run_sync(
        self,
        prompt: Prompt,
        *,
        message_history: History | None = None,
        deps: Any = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
        model: str | None = None,
        settings: ModelSettings | None = None,
        instructions: Instructions | Sequence[Instructions] | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] = (),
        usage_limits: UsageLimits | None = None,
        session: Session | None = None,
    ) -> RunResult[OutputT] | PauseT:
        """`run`, from synchronous code: starts an event loop for the run.

        Raises:
            UserError: Called where an event loop is already running; use
                `await agent.run(...)` there instead.
        """
        _refuse_in_event_loop("run_sync", "await agent.run(...)")
        call = functools.partial(
            self.run,
            prompt,
            message_history=message_history,
            deps=deps,
            timeout=timeout,
            event_handler=event_handler,
            model=model,
            settings=settings,
            instructions=instructions,
            tools=tools,
            usage_limits=usage_limits,
            session=session,
        )
        return anyio.run(call)

    def run_stream(
        self,
        prompt: Prompt,
        *,
        message_history: History | None = None,
        deps: Any = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
        model: str | None = None,
        settings: ModelSettings | None = None,
        instructions: Instructions | Sequence[Instructions] | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] = (),
        usage_limits: UsageLimits | None = None,
        session: Session | None = None,
    ) -> StreamedRun[OutputT]:
        """Run the agent with every answer streamed; iterate the events as they come.

        Takes the same arguments as `run`; the agent's (or this call's)
        `event_handler` also sees every event. Tools run between streamed
        turns exactly as in `run`.

        Example:
            >>> async with agent.run_stream("What time is it in Tokyo?") as stream:
            ...     async for event in stream:
            ...         if isinstance(event, TextDelta):
            ...             print(event.text, end="", flush=True)
            >>> stream.result.output
        """
        config = self._config_for(model, settings, instructions, tools, usage_limits)
        if session is not None:
            _one_history(message_history, session)
        state = _state.RunState(messages=self._start(prompt, message_history))
        handler = event_handler or self.event_handler
        return self._stream(config, state, deps, timeout, handler, session=session)

    def resume_stream(
        self,
        state: RunState,
        approvals: Mapping[str, Approval] | None = None,
        *,
        results: Mapping[str, Any] | None = None,
        deps: Any = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] = (),
    ) -> StreamedRun[OutputT]:
        """`resume`, streamed: the events of the rest of the run, as `run_stream` gives them.

        The decisions are checked here, before the stream starts (see `resume`).

        Example:
            >>> async with agent.resume_stream(paused.state, {call_id: True}) as stream:
            ...     async for event in stream: ...
        """
        config, finish_turn = self._resumption(state, approvals, results, tools)
        handler = event_handler or self.event_handler
        return self._stream(config, state, deps, timeout, handler, finish_turn)

    def _stream(
        self,
        config: RunConfig,
        state: RunState,
        deps: Any,
        timeout: float | None,
        handler: EventHandler | None,
        resume: Callable[[Run[Any]], Any] | None = None,
        session: Session | None = None,
    ) -> StreamedRun[OutputT]:
        # Streaming loads with the first streamed run, not with `Agent`.
        from agentkit._run.events import emit
        from agentkit._run.streamed_run import StreamedRun

        async def execute(send: EventHandler) -> RunResult[OutputT] | Paused:
            async def both(event: Any) -> None:
                await emit(handler, event)
                await emit(send, event)

            events = send if handler is None else both
            if session is None:
                return await self._run(  # type: ignore[return-value]
                    config,
                    state,
                    deps=deps,
                    timeout=timeout,
                    events=events,
                    streamed=True,
                    resume=resume,
                )
            from agentkit._run.session import run_in_session

            async def in_session(history: list[Message]) -> tuple[Any, Sequence[Message] | None]:
                # The stream's state holds the prompt already: the history goes before it.
                _history.check_history(history)
                state.messages[0:0] = history
                result = await self._run(
                    config, state, deps=deps, timeout=timeout, events=events, streamed=True
                )
                return result, result.messages if isinstance(result, _result.RunResult) else None

            return await run_in_session(session, in_session, lambda: state.messages)

        return StreamedRun(execute, state)

    def run_stream_sync(
        self,
        prompt: Prompt,
        *,
        message_history: History | None = None,
        deps: Any = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
        model: str | None = None,
        settings: ModelSettings | None = None,
        instructions: Instructions | Sequence[Instructions] | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] = (),
        usage_limits: UsageLimits | None = None,
        session: Session | None = None,
    ) -> Iterator[StreamEvent]:
        """`run_stream` for synchronous code: a plain iterator of the events.

        The run goes on in an event loop in a worker thread; leaving the loop
        early cancels it. The last event is `RunComplete` with the result.

        Example:
            >>> for event in agent.run_stream_sync("What time is it in Tokyo?"):
            ...     if isinstance(event, TextDelta):
            ...         print(event.text, end="", flush=True)
        """
        _refuse_in_event_loop("run_stream_sync", "async with agent.run_stream(...)")
        from agentkit._run.streamed_run import iterate_sync

        return iterate_sync(
            self.run_stream(
                prompt,
                message_history=message_history,
                deps=deps,
                timeout=timeout,
                event_handler=event_handler,
                model=model,
                settings=settings,
                instructions=instructions,
                tools=tools,
                usage_limits=usage_limits,
                session=session,
            )
        )

    def _config_for(
        self,
        model: str | None,
        settings: ModelSettings | None,
        instructions: Instructions | Sequence[Instructions] | None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]],
        usage_limits: UsageLimits | None,
    ) -> RunConfig:
        """The agent's configuration with one run's overrides, validated; the agent's
        own, untouched, when there are none."""
        config = self.config  # as it is now: a setting changed during the run waits for the next
        changes: dict[str, Any] = {}
        if model is not None:
            changes["model"] = model
        if settings is not None:
            changes["settings"] = _merged(config.settings, settings)
        if instructions is not None:
            changes["instructions"] = instructions
        extra = tuple(tools)
        if extra:
            changes["tools"] = (*config.tools.values(), *extra)
        if usage_limits is not None:
            changes["usage_limits"] = usage_limits
        return config.replace(**changes) if changes else config

    async def _run(
        self,
        config: RunConfig,
        state: RunState,
        *,
        deps: Any,
        timeout: float | None,
        events: EventHandler | None,
        streamed: bool,
        resume: Callable[[Run[Any]], Any] | None = None,
    ) -> RunResult[OutputT] | PauseT:
        """Run `state` on to its end or a pause, on the agent's client or a client of
        its own; `resume` first finishes the turn a paused state waits on."""
        if self.pauses is None and (config.gated or config.handoffs) and _may_pause(config):
            gated = sorted(
                {*config.gated, *(n for w in config.handoffs.values() for n in w.config().gated)}
            )
            raise UserError(
                f"tools {gated} may pause a run (they require approval or are external, here "
                "or in an agent this one hands runs to): make the agent with pauses=Paused, "
                "so that run() may return a Paused result"
            )
        limit = self.timeout if timeout is None else timeout
        observer = self.instrument or Agent.instrument_all
        if observer is not None:  # checked once per run: steps of a plain run are not wrapped
            return await self._observed(
                observer, config, state, deps, events, streamed, limit, resume
            )
        if self.client is not None:
            run: Run[OutputT] = _loop.Run(
                config,
                self.client,
                state,
                deps=deps,
                events=events,
                streamed=streamed,
                owner=self,
            )
            return await _finish(run, limit, resume)  # type: ignore[return-value]
        async with ChatClient() as client:
            run = _loop.Run(
                config, client, state, deps=deps, events=events, streamed=streamed, owner=self
            )
            return await _finish(run, limit, resume)  # type: ignore[return-value]

    async def _observed(
        self,
        observer: RunObserver,
        config: RunConfig,
        state: RunState,
        deps: Any,
        events: EventHandler | None,
        streamed: bool,
        limit: float | None,
        resume: Callable[[Run[Any]], Any] | None,
    ) -> RunResult[OutputT] | PauseT:
        """`_run`'s second half, for a run that `observer` watches."""
        resumed = resume is not None
        if self.client is not None:
            run: Run[OutputT] = _loop.Run(
                config, self.client, state, deps=deps, events=events, streamed=streamed, owner=self
            )
            async with observer.observe(run, resumed=resumed):
                return await _finish(run, limit, resume)  # type: ignore[return-value]
        async with ChatClient() as client:
            run = _loop.Run(
                config, client, state, deps=deps, events=events, streamed=streamed, owner=self
            )
            async with observer.observe(run, resumed=resumed):
                return await _finish(run, limit, resume)  # type: ignore[return-value]

    def _start(self, prompt: Prompt, history: History | None) -> list[Message]:
        messages = _history.to_messages(history or ())
        if not isinstance(history, _history.CheckedHistory):
            _history.check_history(messages)
        if isinstance(prompt, str):
            messages.append(_messages.UserMessage(content=prompt))
        else:
            try:
                parts = list(prompt)
                messages.append(_messages.UserMessage(content=parts))
            except Exception as exc:
                raise UserError(f"prompt must be text or content parts: {exc}") from None
            if not parts:
                raise UserError("prompt must hold at least one content part")
        return messages


def handoff(
    agent: Agent[T, Any],
    *,
    tool_name: str | None = None,
    description: str | None = None,
    input_filter: InputFilter | None = None,
) -> Handoff[T]:
    """A handoff to `agent`, with options; pass it in `Agent(handoffs=[...])`.

    Args:
        agent: The agent that takes the run over; it needs a `name`.
        tool_name: The tool the model calls; defaults to `transfer_to_<name>`.
        description: When the model should call it; defaults to a sentence
            naming the agent.
        input_filter: A function from the history so far to the history the
            agent receives (every tool call in it still answered), such as one
            that drops earlier tool calls. Default: the whole history.

    Example:
        >>> billing = Agent("gpt-4o-mini", name="billing", instructions="Answer billing questions.")
        >>> triage = Agent("gpt-4o-mini", handoffs=[handoff(billing, description="Invoices, refunds.")])
    """
    if not isinstance(agent, Agent):
        raise UserError(f"a handoff needs an Agent, got {agent!r}")
    if agent.name is None:
        raise UserError("an agent to hand off to needs a name: Agent(..., name='billing')")
    return Handoff(
        tool_name=tool_name or f"transfer_to_{agent.name}",
        description=description or f"Hand the conversation to the agent {agent.name!r}.",
        target_name=agent.name,
        config=lambda: agent.config,
        client=lambda: agent.client,
        owner=agent,
        input_filter=input_filter,
    )


def _as_handoff(target: Agent[Any, Any] | Handoff[Any]) -> Handoff[Any]:
    return target if isinstance(target, Handoff) else handoff(target)


def _may_pause(config: RunConfig) -> bool:
    """Whether a run of `config`, or of an agent it hands runs to, may pause."""
    return _rules.may_pause(config) or any(
        _rules.may_pause(way.config()) for way in config.handoffs.values()
    )


def _decisions(
    state: RunState,
    approvals: Mapping[str, Approval],
    results: Mapping[str, Any],
    config: RunConfig,
) -> tuple[set[str], dict[str, ToolOutcome]]:
    """The approved call ids, and the answers to the other pending calls; every
    pending call must be decided, and nothing else."""
    kinds = {p.tool_call_id: p for p in state.pending}
    unknown = [i for i in (*approvals, *results) if i not in kinds]
    if unknown:
        waiting = ", ".join(kinds) or "none"
        raise UserError(
            f"run {state.run_id} does not wait on call(s) {', '.join(unknown)} "
            f"(it waits on: {waiting})"
        )
    approved: set[str] = set()
    answers: dict[str, ToolOutcome] = {}
    missing: list[str] = []
    for call_id, pending in kinds.items():
        if pending.kind == "approval":
            if call_id in results:
                raise UserError(
                    f"call {call_id} to {pending.tool_name!r} needs an approval, not a result"
                )
            decision = approvals.get(call_id)
            if decision is None:
                missing.append(f"{call_id} ({pending.tool_name}: approve or reject)")
            elif decision is True:
                approved.add(call_id)
            elif decision is False or isinstance(decision, _result.Reject):
                reason = (
                    decision.reason
                    if isinstance(decision, _result.Reject)
                    else _result.Reject().reason
                )
                answers[call_id] = _tool_step.rejected(call_id, pending.tool_name, reason)
            else:
                raise UserError(
                    f"the decision on call {call_id} must be True, False or Reject(reason), "
                    f"got {decision!r}"
                )
        else:
            if call_id in approvals:
                raise UserError(
                    f"call {call_id} to the external tool {pending.tool_name!r} needs a "
                    "result (results={...}), not an approval"
                )
            if call_id not in results:
                missing.append(f"{call_id} ({pending.tool_name}: its result)")
                continue
            content = _external_content(pending.tool_name, results[call_id], config)
            answers[call_id] = _tool_step.ToolOutcome(
                _messages.ToolMessage(tool_call_id=call_id, content=content), pending.tool_name
            )
    if missing:
        raise UserError(f"run {state.run_id}: no decision for pending call(s) {', '.join(missing)}")
    return approved, answers


def _external_content(name: str, value: Any, config: RunConfig) -> str:
    """An external tool's result as tool-message content, as a tool's return value."""
    return _tool_step.limit_content(_to_content(name, value), config.max_tool_result_chars)


def _merged(base: ModelSettings, override: ModelSettings) -> ModelSettings:
    """`base` with the fields `override` sets (not None) replaced."""
    if not dataclasses.is_dataclass(override) or isinstance(override, type):
        raise UserError(f"settings must be a ModelSettings, got {type(override).__name__}")
    changes = {
        f.name: getattr(override, f.name)
        for f in dataclasses.fields(override)
        if getattr(override, f.name) is not None
    }
    return dataclasses.replace(base, **changes)


async def _finish(
    run: Run[OutputT], limit: float | None, resume: Callable[[Run[Any]], Any] | None = None
) -> RunResult[OutputT] | Paused:
    """`run` driven to its output or a pause, within `limit` seconds if one is set."""
    state = run.state
    if limit is None:
        # No cancel scope when there is no deadline: one less per run, on the hot path.
        if resume is not None:
            await resume(run)
        output = await run.run()
    else:
        with anyio.move_on_after(limit) as scope:
            if resume is not None:
                await resume(run)
            output = await run.run()
        if scope.cancelled_caught:
            raise RunTimeoutError(
                f"the run took longer than its timeout of {limit:g} s", messages=state.messages
            )
    if output is _loop.PAUSED:
        return _result.Paused.of(state, run.owner)
    return _result.RunResult(output, state.messages, state.usage, state.turns, run.owner)


def _one_history(message_history: History | None, session: Session) -> None:
    """Refuse a run given both a session and a history: the session holds the history."""
    if message_history is not None:
        raise UserError(
            f"run() got both message_history and session={session!r}: the session holds "
            "the history; pass one of them"
        )


def _refuse_in_event_loop(method: str, instead: str) -> None:
    """Raise the `UserError` for a blocking `method` called where an event loop runs."""
    if _in_event_loop():
        raise UserError(f"{method}() was called inside a running event loop; use `{instead}`")


def _in_event_loop() -> bool:
    """Whether an asyncio or trio event loop runs in this thread."""
    try:
        import asyncio

        asyncio.get_running_loop()
        return True
    except RuntimeError:
        pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
            return True
        except RuntimeError:
            pass
    return False
