"""`Agent`: a model, instructions and tools, run as a loop until the model answers."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal

import anyio
from typing_extensions import TypeVar

from agentkit._client.client import ChatClient
from agentkit._client.encode import WireList, dump_wire
from agentkit._client.model import ChatModel
from agentkit._exceptions import RunTimeoutError, UserError
from agentkit._run.history import check_history, to_messages
from agentkit._run.loop import Run
from agentkit._run.result import RunResult
from agentkit._run.state import RunState
from agentkit._tools.output import OutputSpec
from agentkit._tools.tool import Tool, tools_by_name
from agentkit._wire.messages import (
    ContentPart,
    Message,
    NamedToolChoice,
    SystemMessage,
    UserMessage,
)

if TYPE_CHECKING:
    from agentkit._run.events import EventHandler, StreamEvent
    from agentkit._run.streamed_run import StreamedRun
    from agentkit._wire.settings import ModelSettings

__all__ = ["DEFAULT_MAX_TOOL_RESULT_CHARS", "Agent"]

DEFAULT_MAX_TOOL_RESULT_CHARS = 100_000
"""Characters of one tool message sent to the model unless an agent says otherwise."""

OutputT = TypeVar("OutputT", default=str)

Prompt = str | Sequence[ContentPart]


class Agent(Generic[OutputT]):
    """A model with instructions and tools, run as a loop until it answers.

    An agent holds configuration only, so one agent can serve many concurrent
    runs; each run keeps its own state.

    Args:
        model: The model name sent with each request.
        client: A `ChatClient`, or any object with the same `create` method
            (such as `agentkit.testing.FunctionModel`). Default: each run makes a
            `ChatClient` from the environment and closes it at the end; pass
            one client to share its connection pool between runs.
        instructions: The system message that starts a new conversation.
        tools: `Tool`s, or plain functions to be made into tools.
        tool_choice: `"auto"`, `"none"`, `"required"`, or the name of a tool.
        max_turns: The most model requests one run may make.
        output_type: `str` for text, or a type (a pydantic model, say) the final
            answer must validate against; it is requested with a strict JSON schema.
        settings: Sampling fields sent with every request.
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
        timeout: Seconds a whole run may take before `RunTimeoutError`. The
            run ends on time even while a sync tool blocks in its worker
            thread: the call is answered as cancelled and the thread, which
            cannot be interrupted, is left to finish in the background.
            None (the default): no limit on the run, which may rightly take
            hours of tool calls; each request to the model is still bounded
            by its `ChatClient`'s `attempt_timeout` (600 s by default).
        event_handler: Called with each `RunEvent`; see `agentkit.RunEvent`.

    Example:
        >>> agent = Agent("gpt-4o-mini", instructions="Be brief.", tools=[get_current_time])
        >>> result = agent.run_sync("What time is it in Tokyo?")
        >>> print(result.output)
    """

    def __init__(
        self,
        model: str,
        *,
        client: ChatModel | None = None,
        instructions: str | None = None,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] = (),
        tool_choice: str = "auto",
        max_turns: int = 10,
        output_type: type[OutputT] = str,  # type: ignore[assignment]  # OutputT defaults to str
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
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise UserError(f"model must be a non-empty model name, got {model!r}")
        self.model = model
        self.client = client
        self.instructions = instructions
        self.tools: Mapping[str, Tool[..., Any]] = tools_by_name(tools)
        self.tool_definitions = WireList(dump_wire(t.definition) for t in self.tools.values())
        self.tool_choice: str | NamedToolChoice = _tool_choice(tool_choice, self.tools)
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
        if timeout is not None and not timeout > 0:
            raise UserError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.max_turns = max_turns
        self.output: OutputSpec[OutputT] = OutputSpec(output_type)
        if settings is None:
            from agentkit._wire.settings import ModelSettings  # loads with the first agent

            settings = ModelSettings()
        self.settings = settings
        self.parallel_tool_calls = parallel_tool_calls
        self.max_tool_retries = max_tool_retries
        self.output_retries = output_retries
        self.tool_errors = tool_errors
        self.repeated_tool_calls = repeated_tool_calls
        self.repeat_limit = repeat_limit
        self.on_max_turns = on_max_turns
        self.reset_tool_choice = reset_tool_choice
        self.tool_concurrency = tool_concurrency
        self.max_tool_result_chars = max_tool_result_chars
        self.timeout = timeout
        self.event_handler = event_handler
        params = self.settings.to_params()
        if self.output.response_format is not None:
            params["response_format"] = self.output.response_format
        self.request_params: Mapping[str, Any] = params

    def __repr__(self) -> str:
        return f"Agent(model={self.model!r}, tools={list(self.tools)!r})"

    async def run(
        self,
        prompt: Prompt,
        *,
        message_history: Sequence[Message | Mapping[str, Any]] | None = None,
        deps: Any = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
    ) -> RunResult[OutputT]:
        """Run the agent until the model gives a final answer.

        Args:
            prompt: The user's message: text, or content parts (text and images).
            message_history: An earlier conversation to continue, such as
                `RunResult.messages` of a previous run.
            deps: Anything the tools need; they receive it as `ctx.deps`.
            timeout: Seconds for the whole run; overrides the agent's `timeout`.
            event_handler: Called with each event; overrides the agent's handler.

        Raises:
            AgentRunError: The run ended without an answer (a subclass says why);
                its `.messages` is the history so far.
            APIError: A request failed after the client's retries.
            UserError: Bad arguments, history or tool results.
        """
        handler = event_handler or self.event_handler
        return await self._execute(prompt, message_history, deps, timeout, handler, stream=False)

    def run_stream(
        self,
        prompt: Prompt,
        *,
        message_history: Sequence[Message | Mapping[str, Any]] | None = None,
        deps: Any = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
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
        # Streaming loads with the first streamed run, not with `Agent`.
        from agentkit._run.events import emit
        from agentkit._run.streamed_run import StreamedRun

        handler = event_handler or self.event_handler

        streamed: StreamedRun[OutputT]

        async def execute(send: EventHandler) -> RunResult[OutputT]:
            async def forward(event: Any) -> None:
                await emit(handler, event)
                await emit(send, event)

            return await self._execute(
                prompt,
                message_history,
                deps,
                timeout,
                send if handler is None else forward,
                stream=True,
                state=streamed.state,
            )

        streamed = StreamedRun(execute, RunState(messages=self._start(prompt, message_history)))
        return streamed

    def run_stream_sync(
        self,
        prompt: Prompt,
        *,
        message_history: Sequence[Message | Mapping[str, Any]] | None = None,
        deps: Any = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
    ) -> Iterator[StreamEvent]:
        """`run_stream` for synchronous code: a plain iterator of the events.

        The run goes on in an event loop in a worker thread; leaving the loop
        early cancels it. The last event is `RunComplete` with the result.

        Example:
            >>> for event in agent.run_stream_sync("What time is it in Tokyo?"):
            ...     if isinstance(event, TextDelta):
            ...         print(event.text, end="", flush=True)
        """
        if _in_event_loop():
            raise UserError(
                "run_stream_sync() was called inside a running event loop; "
                "use `async with agent.run_stream(...)`"
            )
        from agentkit._run.streamed_run import iterate_sync

        return iterate_sync(
            self.run_stream(
                prompt,
                message_history=message_history,
                deps=deps,
                timeout=timeout,
                event_handler=event_handler,
            )
        )

    async def _execute(
        self,
        prompt: Prompt,
        message_history: Sequence[Message | Mapping[str, Any]] | None,
        deps: Any,
        timeout: float | None,
        events: EventHandler | None,
        *,
        stream: bool,
        state: RunState | None = None,
    ) -> RunResult[OutputT]:
        if state is None:
            state = RunState(messages=self._start(prompt, message_history))
        limit = self.timeout if timeout is None else timeout
        if self.client is not None:
            return await self._drive(self.client, state, limit, deps, events, stream)
        async with ChatClient() as client:
            return await self._drive(client, state, limit, deps, events, stream)

    async def _drive(
        self,
        client: ChatModel,
        state: RunState,
        limit: float | None,
        deps: Any,
        events: EventHandler | None,
        stream: bool,
    ) -> RunResult[OutputT]:
        run = Run(self, client, state, deps=deps, events=events, stream=stream)
        output: Any = None
        if limit is None:
            # No cancel scope when there is no deadline: one less per run, on the hot path.
            output = await run.run()
        else:
            with anyio.move_on_after(limit) as scope:
                output = await run.run()
            if scope.cancelled_caught:
                raise RunTimeoutError(
                    f"the run took longer than its timeout of {limit:g} s",
                    messages=state.messages,
                )
        return RunResult(output, state.messages, state.usage, state.turns)

    def run_sync(
        self,
        prompt: Prompt,
        *,
        message_history: Sequence[Message | Mapping[str, Any]] | None = None,
        deps: Any = None,
        timeout: float | None = None,
        event_handler: EventHandler | None = None,
    ) -> RunResult[OutputT]:
        """`run`, from synchronous code: starts an event loop for the run.

        Raises:
            UserError: Called where an event loop is already running; use
                `await agent.run(...)` there instead.
        """
        if _in_event_loop():
            raise UserError(
                "run_sync() was called inside a running event loop; use `await agent.run(...)`"
            )
        call = functools.partial(
            self.run,
            prompt,
            message_history=message_history,
            deps=deps,
            timeout=timeout,
            event_handler=event_handler,
        )
        return anyio.run(call)

    def _start(
        self, prompt: Prompt, history: Sequence[Message | Mapping[str, Any]] | None
    ) -> list[Message]:
        messages = to_messages(history or ())
        check_history(messages)
        if self.instructions is not None and not (
            messages and messages[0].role in ("system", "developer")
        ):
            messages.insert(0, SystemMessage(content=self.instructions))
        if isinstance(prompt, str):
            messages.append(UserMessage(content=prompt))
        else:
            try:
                parts = list(prompt)
                messages.append(UserMessage(content=parts))
            except Exception as exc:
                raise UserError(f"prompt must be text or content parts: {exc}") from None
            if not parts:
                raise UserError("prompt must hold at least one content part")
        return messages


def _tool_choice(choice: Any, tools: Mapping[str, Tool[..., Any]]) -> str | NamedToolChoice:
    if choice in ("auto", "none", "required"):
        if choice == "required" and not tools:
            raise UserError('tool_choice="required" needs at least one tool')
        return str(choice)
    if isinstance(choice, str):
        if choice not in tools:
            known = ", ".join(tools) or "none"
            raise UserError(f"tool_choice {choice!r} is not a tool of this agent (tools: {known})")
        return NamedToolChoice.of(choice)
    raise UserError(f'tool_choice must be "auto", "none", "required" or a tool name: {choice!r}')


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


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
