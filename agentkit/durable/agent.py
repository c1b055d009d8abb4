"""`DurableAgent`: an agent whose runs survive the process that started them."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from contextvars import ContextVar
from typing import Any, Generic, NoReturn

import sniffio
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python
from typing_extensions import TypeVar

from agentkit._agent import Agent, History, Prompt
from agentkit._client.client import ChatClient
from agentkit._exceptions import AgentKitError, OutputValidationError, RunTimeoutError
from agentkit._run.events import EventHandler
from agentkit._run.result import RunResult
from agentkit._run.state import RunState
from agentkit._wire.messages import Message
from agentkit._wire.responses import Usage
from agentkit.durable import codec
from agentkit.durable.engine import JSON, DurableEngine
from agentkit.durable.errors import DurableRunError
from agentkit.durable.steps import DurableRun, StepContext, run_step

_local: ContextVar[tuple[str, Any, Any] | None] = ContextVar("agentkit_durable_run", default=None)
"""(run id, client, deps) of the run this task drives, for its steps when the engine
runs them in the workflow's own task (DBOS)."""

__all__ = ["DurableAgent", "RunHandle"]

OutputT = TypeVar("OutputT", default=str)


class RunHandle(Generic[OutputT]):
    """A durable run started in the background.

    Attributes:
        run_id: The run's id: `DurableAgent.result(run_id)` re-attaches to it later,
            from this process or another.
    """

    def __init__(self, agent: DurableAgent[OutputT], run_id: str) -> None:
        self.run_id = run_id
        self._agent = agent

    async def result(self) -> RunResult[OutputT]:
        """Wait for the run to end; its result, or the error it ended with."""
        return await self._agent.result(self.run_id)

    async def status(self) -> str | None:
        """The engine's status of the run ("PENDING", "ENQUEUED", "SUCCESS", …)."""
        return await self._agent.engine.status(self.run_id)

    def __repr__(self) -> str:
        return f"RunHandle({self.run_id!r})"


class DurableAgent(Generic[OutputT]):
    """An `Agent` whose runs are durable: every model request and every tool call is a
    step recorded by `engine`, so a run that was cut off (a crash, a deploy, kill -9)
    goes on where it stopped when a process of the same app starts the engine again:
    recorded steps are not repeated, and the step that was in flight runs again.

    Make it at import time (before `async with engine`), once per process, under a
    name that is the same in every process of the app.

    Args:
        agent: The agent to run. Its configuration is read at each run's start and on
            recovery, so an agent changed between the two is noticed (see
            `ReplayMismatchError`).
        name: The name runs are stored under; unique within the app.
        engine: The durable engine, such as `DBOSEngine`.
        deps: A function `run_id -> deps` that builds the tools' `ctx.deps` in
            whichever process runs (or recovers) the run. Without one, a run's
            `deps` must be JSON values, stored with the run.
        plain_tools: Names of tools whose calls are not recorded and run again on
            replay: cheap tools without side effects that give the same answer when
            called again (a computation, a lookup of data that does not change).
            With `verify_replay`, a plain call that answers otherwise on replay stops
            the run with `ReplayMismatchError` at the next turn. Every other tool
            call is a step.
        event_handler: Called with each event, in the process that runs the step;
            a replayed step emits nothing. Defaults to the agent's handler.
        verify_replay: Check, for each recorded model request a recovered run
            replays, that the request it would send now is the recorded one, and
            stop with `ReplayMismatchError` when not. Turn it off only for an agent
            whose requests change by themselves (instructions with the time in them).

    Raises:
        DurableRunError: The agent may pause (tools that require approval or are
            external), which a durable run does not support yet.
    """

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        name: str,
        engine: DurableEngine,
        deps: Callable[[str], Any] | None = None,
        plain_tools: Collection[str] = (),
        event_handler: EventHandler | None = None,
        verify_replay: bool = True,
    ) -> None:
        if agent.pauses is not None or agent.config.gated:
            raise DurableRunError(
                f"durable agent {name!r}: tools {sorted(agent.config.gated)} may pause a run, "
                "which durable runs do not support; run this agent with Agent.run and "
                "store its Paused state instead"
            )
        unknown = sorted(set(plain_tools) - set(agent.config.tools))
        if unknown:
            raise DurableRunError(
                f"durable agent {name!r}: plain_tools names tools the agent does not have: "
                f"{unknown}; its tools are {sorted(agent.config.tools)}"
            )
        self.agent = agent
        self.name = name
        self.engine = engine
        self.deps_factory = deps
        self.plain_tools = frozenset(plain_tools)
        self.event_handler = event_handler
        self.verify_replay = verify_replay
        engine.register(name, self._workflow, steps=self.run_step)

    def __repr__(self) -> str:
        return f"DurableAgent({self.name!r}, engine={self.engine!r})"

    async def run(
        self,
        prompt: Prompt,
        *,
        run_id: str | None = None,
        message_history: History | None = None,
        deps: Any = None,
        timeout: float | None = None,
    ) -> RunResult[OutputT]:
        """Run the agent durably and wait for its result.

        Idempotent on `run_id`: a run already started under it (running, being
        recovered or finished) is not started again; its result is returned (a
        finished run's without a single model request). The same id with another
        prompt, history or deps is refused.

        Args:
            prompt: The user's message.
            run_id: The run's id, your key for it (a ticket number, say); a random
                one when None. Tools see it as `ctx.run_id`.
            message_history: An earlier conversation to continue.
            deps: JSON values for `ctx.deps`, stored with the run; only without a
                `deps` factory.
            timeout: Seconds for the whole run, counted from when it starts running
                (not while it waits on a queue) and across restarts: a deadline
                recorded with the run. Overrides the agent's `timeout`.

        Raises:
            AgentRunError: The run ended without an answer, the same class as it
                was raised in the process that ran it; `.messages` is the history.
            DurableRunError: The run cannot be durable as asked (see `start`).
        """
        handle = await self.start(
            prompt, run_id=run_id, message_history=message_history, deps=deps, timeout=timeout
        )
        return await handle.result()

    async def start(
        self,
        prompt: Prompt,
        *,
        run_id: str | None = None,
        message_history: History | None = None,
        deps: Any = None,
        timeout: float | None = None,
        queue: str | None = None,
    ) -> RunHandle[OutputT]:
        """Start a durable run in the background; `await handle.result()` for its end.

        Takes the arguments of `run`, and `queue`: put the run on that queue for a
        worker (`DBOSEngine.worker`) rather than running it in this process.

        Raises:
            DurableRunError: Not running on asyncio; `deps` that are not JSON values,
                or `deps` given besides a `deps` factory; `run_id` names a run started
                with another prompt, history or deps.
            UserError: A history that breaks the tool-call invariant, or an empty prompt.
        """
        _require_asyncio("start")
        inputs = self.inputs(prompt, message_history=message_history, deps=deps, timeout=timeout)
        run_id = run_id or inputs["run_id"]
        inputs["run_id"] = run_id
        stored = await self.engine.inputs(run_id)
        if stored is None:
            await self.engine.start(self.name, run_id, inputs, queue=queue)
        elif (stored.get("messages"), stored.get("deps")) != (inputs["messages"], inputs["deps"]):
            raise DurableRunError(
                f"durable agent {self.name!r}: run {run_id!r} was started with another "
                "prompt, history or deps; a run id names one request: use a new run id, "
                "or result(run_id) for the existing run"
            )
        # An existing run with the same input: attach to it, start nothing.
        return RunHandle(self, run_id)

    def inputs(
        self,
        prompt: Prompt,
        *,
        message_history: History | None = None,
        deps: Any = None,
        timeout: float | None = None,
    ) -> dict[str, JSON]:
        """The stored input of a run: plain JSON, checked here rather than on recovery."""
        state = self.agent.start_state(prompt, message_history)  # checks the history and prompt
        if deps is not None:
            if self.deps_factory is not None:
                raise DurableRunError(
                    f"durable agent {self.name!r} builds deps with its factory; "
                    "do not pass deps to a run as well"
                )
            deps = _json_deps(self.name, deps)
        limit = self.agent.timeout if timeout is None else timeout
        return {
            "run_id": state.run_id,
            "messages": codec.dump_messages(state.messages),
            "deps": deps,
            "timeout": limit,
        }

    async def result(self, run_id: str) -> RunResult[OutputT]:
        """Wait for run `run_id` to end (in this process or any other) and return its
        result; re-attaches to a run after a restart.

        A structured output is validated against the agent's `output_type` again.

        Raises:
            AgentRunError: The run ended without an answer (the same class).
            DurableRunError: There is no run `run_id`.
        """
        _require_asyncio("result")
        if await self.engine.status(run_id) is None:
            raise DurableRunError(f"durable agent {self.name!r} has no run {run_id!r}")
        return self._result_from(run_id, await self.engine.result(run_id))

    def _result_from(self, run_id: str, data: dict[str, JSON]) -> RunResult[OutputT]:
        """The `RunResult` of a run's stored output, or the error it ended with."""
        if "error" in data:
            raise codec.decode_error(data["error"])
        messages = codec.load_messages(data["messages"])
        output = self._output(run_id, data["output"], messages)
        usage = Usage.model_validate(data["usage"])
        return RunResult(output, messages, usage, data["turns"], self.agent)

    def run_stream(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Refused: a stream's reader does not survive a crash. Use `event_handler`.

        Raises:
            DurableRunError: Always.
        """
        raise DurableRunError(
            f"durable agent {self.name!r}: run_stream is not supported in a durable run "
            "(its reader would not survive a restart); use run() or start() and pass "
            "event_handler= to DurableAgent to see each step as it happens"
        )

    def _output(self, run_id: str, value: Any, messages: list[Message]) -> OutputT:
        spec = self.agent.config.output_spec
        if spec.is_text:
            return value  # type: ignore[no-any-return]
        try:
            return TypeAdapter(spec.output_type).validate_python(value)  # type: ignore[no-any-return]
        except ValidationError as exc:
            raise OutputValidationError(
                f"durable run {run_id!r}: its stored output does not match the agent's "
                f"output_type {getattr(spec.output_type, '__name__', spec.output_type)}: "
                f"{exc.error_count()} error(s)",
                messages=messages,
                errors=str(exc),
            ) from None

    async def _workflow(self, inputs: dict[str, JSON]) -> dict[str, JSON]:
        """The body of a durable run: replayed from the start on recovery."""
        run_id: str = inputs["run_id"]
        agent = self.agent
        state = RunState(messages=codec.load_messages(inputs["messages"]), run_id=run_id)
        deps = self.deps_factory(run_id) if self.deps_factory is not None else inputs["deps"]
        try:
            if not self.engine.steps_in_workflow:
                output = await self._drive(agent.client, state, deps, inputs)
            elif agent.client is not None:
                output = await self._in_task(agent.client, state, deps, inputs)
            else:
                async with ChatClient() as client:
                    output = await self._in_task(client, state, deps, inputs)
        except AgentKitError as exc:
            return {"error": codec.encode_error(exc)}
        return {
            "output": to_jsonable_python(output),
            "messages": codec.dump_messages(state.messages),
            "usage": state.usage.model_dump(mode="json", exclude_none=True),
            "turns": state.turns,
        }

    async def _in_task(
        self, client: Any, state: RunState, deps: Any, inputs: dict[str, JSON]
    ) -> Any:
        """`_drive`, with the run's client and deps there for its steps, which the engine
        runs in this task: the deps factory runs once per run, not once per step."""
        token = _local.set((state.run_id, client, deps))
        try:
            return await self._drive(client, state, deps, inputs)
        finally:
            _local.reset(token)

    async def run_step(self, kind: str, payload: dict[str, JSON]) -> JSON:
        """Run one step of one of this agent's runs from its JSON payload (the engine's
        step handler). In the run's own task (DBOS) it uses the run's client and deps;
        elsewhere (a Temporal activity) the agent's client or a new one for the step,
        and deps from the factory."""
        events = self.event_handler or self.agent.event_handler
        local = _local.get()
        if local is not None and local[0] == payload["run_id"]:
            _, client, deps = local
            return await run_step(
                kind, payload, StepContext(self.agent, client, lambda _: deps, events)
            )
        if self.agent.client is not None:
            return await run_step(
                kind, payload, StepContext(self.agent, self.agent.client, self.deps_factory, events)
            )
        async with ChatClient() as new:
            return await run_step(
                kind, payload, StepContext(self.agent, new, self.deps_factory, events)
            )

    async def _drive(self, client: Any, state: RunState, deps: Any, inputs: dict[str, JSON]) -> Any:
        events = self.event_handler or self.agent.event_handler
        run: DurableRun[Any] = DurableRun(
            self.agent.config,
            client,
            state,
            engine=self.engine,
            agent=self.name,
            deps=deps,
            stored_deps=None if self.deps_factory is not None else inputs["deps"],
            events=events if self.engine.steps_in_workflow else None,
            plain_tools=self.plain_tools,
            verify_replay=self.verify_replay,
            owner=self.agent,
        )
        limit = inputs.get("timeout")
        if limit is None:
            return await run.run()
        # The start time is recorded when the run first runs (not when it was
        # enqueued), so a recovered run has what was left of its time, not all of it.
        started = await self.engine.started()
        try:
            return await self.engine.within(started + limit, run.run)
        except TimeoutError:
            raise RunTimeoutError(
                f"the run took longer than its timeout of {inputs['timeout']:g} s "
                "(counted from its start, across restarts)",
                messages=state.messages,
            ) from None


def _json_deps(name: str, deps: Any) -> Any:
    """`deps` as the JSON values stored with a run, or a clear refusal."""
    try:
        loaded = json.loads(json.dumps(deps))
    except (TypeError, ValueError) as exc:
        raise DurableRunError(
            f"durable agent {name!r}: deps of type {type(deps).__name__} cannot be stored "
            f"with the run ({exc}); pass JSON values, or give DurableAgent a deps factory "
            "(deps=lambda run_id: ...) that builds them in the process that runs the run"
        ) from None
    if loaded != deps:
        raise DurableRunError(
            f"durable agent {name!r}: deps of type {type(deps).__name__} do not survive "
            "JSON unchanged (tuples, non-string keys…); pass plain JSON values or a deps "
            "factory"
        )
    return loaded


def _require_asyncio(method: str) -> None:
    try:
        library = sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        library = None
    if library != "asyncio":
        raise DurableRunError(
            f"DurableAgent.{method}() needs asyncio (the durable engine runs on it), "
            f"not {library or 'no event loop'}: run it with asyncio.run or "
            "anyio.run(..., backend='asyncio')"
        )
