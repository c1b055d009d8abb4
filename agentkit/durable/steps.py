"""`DurableRun`: the agent loop with its two steps recorded by a durable engine, and
`run_step`: a step run from its JSON payload, wherever the engine runs steps.

Everything between the steps is the loop's own deterministic code, run again on
replay; the steps themselves return their recorded results. A step is handed to
the engine as data (the agent's name, the run id, the turn, the history or the
call), so that an engine may run it in another process than the loop. A model
step records a digest of its request, and a replayed run whose request differs
stops with `ReplayMismatchError` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Container
from contextvars import ContextVar
from typing import Any, TypeVar

from agentkit._client.model import ChatModel
from agentkit._exceptions import AgentKitError
from agentkit._run.config import RunConfig
from agentkit._run.events import EventHandler
from agentkit._run.loop import Run
from agentkit._run.state import ModelResponse, RunState
from agentkit._run.tool_step import AnyCall, ToolOutcome
from agentkit._tools.tool import Tool
from agentkit._wire.messages import AssistantMessage, NamedToolChoice
from agentkit.durable import codec
from agentkit.durable.engine import JSON, DurableEngine
from agentkit.durable.errors import ReplayMismatchError

__all__ = ["DurableRun", "StepContext", "run_step"]

OutputT = TypeVar("OutputT")

live_calls: ContextVar[set[str] | None] = ContextVar("agentkit_durable_live_calls", default=None)
"""The calls whose tool step ran in this task (not replayed), when the engine runs
steps in the workflow's own task: a handoff made by a replayed call does not emit
its event again."""


class DurableRun(Run[OutputT]):
    """A `Run` whose model requests and tool calls are steps of `engine`.

    Args:
        config: The agent's configuration.
        client: Where model requests go (used only by plain tools' handoffs).
        state: The run's state; its `run_id` is the durable run's id.
        engine: Records the steps.
        agent: The name the durable agent is registered under: the step handler
            finds it by that name.
        deps: What the tools receive as `ctx.deps`.
        stored_deps: The run's stored JSON deps (without a deps factory), handed to
            the steps with their payload.
        events: Called with each event of the loop itself (handoffs); the steps'
            events come from the process that runs them.
        plain_tools: Tools whose calls are not steps: they run again on replay.
        verify_replay: Compare each replayed request's digest with the recorded one.
        owner: The agent, reported as `RunResult.last_agent`.
    """

    def __init__(
        self,
        config: RunConfig,
        client: ChatModel,
        state: RunState,
        *,
        engine: DurableEngine,
        agent: str,
        deps: Any,
        stored_deps: JSON = None,
        events: EventHandler | None,
        plain_tools: Container[str] = (),
        verify_replay: bool = True,
        owner: Any = None,
    ) -> None:
        super().__init__(_unlimited(config), client, state, deps=deps, events=events, owner=owner)
        self.engine = engine
        self.agent = agent
        self.stored_deps = stored_deps
        self.plain_tools = plain_tools
        self.verify_replay = verify_replay
        self._limiter: Any = None
        self._set_limit(config.tool_concurrency)
        self._live: set[str] = set()
        live_calls.set(self._live)

    def _set_limit(self, limit: int | None) -> None:
        # The loop's own limiter is anyio's, which may not run in a workflow sandbox:
        # the engine's semaphore takes its place, around each tool step.
        self._limiter = None if limit is None else self.engine.semaphore(limit)

    def _payload(self, **fields: JSON) -> dict[str, JSON]:
        state = self.state
        payload: dict[str, JSON] = {
            "agent": self.agent,
            "owner": state.agent,
            "run_id": state.run_id,
            "turns": state.turns,
            "deps": self.stored_deps,
            **fields,
        }
        return payload

    async def model_step(self, *, tool_choice: str | NamedToolChoice) -> ModelResponse:
        """The model request of this turn as a step named `model:{turn}`, its request's
        digest checked against the recorded one on replay."""
        config, state = self.config, self.state
        turn = state.turns + 1
        params = self.request_params(tool_choice)
        messages = await self._request_messages() if config.instructions else state.messages
        expected = codec.digest(config.model, messages, params)
        payload = self._payload(
            messages=codec.dump_messages(state.messages),
            usage=state.usage.model_dump(mode="json", exclude_none=True),
            tool_choice=tool_choice
            if isinstance(tool_choice, str)
            else tool_choice.model_dump(mode="json", exclude_none=True),
            digest=expected,
        )
        data = await self.engine.step(f"model:{turn}", "model", payload)
        if self.verify_replay and data["digest"] != expected:
            raise ReplayMismatchError(
                f"turn {turn} of durable run {state.run_id!r}: the model request differs "
                "from the recorded one: the agent changed (instructions, tools, model, "
                "settings or output type) since the run started, so its recorded answers "
                "no longer fit; nothing was sent to the model. Let runs finish before "
                "changing an agent, or register the changed agent under a new name",
                messages=state.messages,
            )
        if "error" in data:
            raise codec.decode_error(data["error"])
        return codec.decode_response(data)

    async def tool_step(self, call: AnyCall) -> ToolOutcome:
        """One tool call as a step named `tool:{turn}:{index}:{name}`, unless its tool
        is one of `plain_tools`."""
        if call.tool_name in self.plain_tools:
            return await super().tool_step(call)
        if self._limiter is None:
            return await self._tool_step(call)
        async with self._limiter:
            return await self._tool_step(call)

    async def _tool_step(self, call: AnyCall) -> ToolOutcome:
        state = self.state
        index = _position(state, call.id)
        tool = self.config.tools.get(call.tool_name)
        # The history travels only to a tool that may read it (`ctx.messages`).
        takes_context = tool is None or type(tool) is not Tool or tool.takes_context
        payload = self._payload(
            call=call.model_dump(mode="json", exclude_none=True),
            index=index,
            messages=codec.dump_messages(state.messages) if takes_context else None,
            usage=state.usage.model_dump(mode="json", exclude_none=True),
        )
        # No await before this call: the engine reserves the step's position here, in
        # call order, however the turn's calls then interleave.
        data = await self.engine.step(
            f"tool:{state.turns}:{index}:{call.tool_name}", "tool", payload
        )
        return codec.decode_outcome(data)

    async def _hand_off(self, call: AnyCall) -> None:
        if self.events is None or call.id in self._live:
            await super()._hand_off(call)
        else:
            events, self.events = self.events, None  # replayed: its event was seen already
            try:
                await super()._hand_off(call)
            finally:
                self.events = events
        self._set_limit(self.config.tool_concurrency)
        self.config = _unlimited(self.config)


class StepContext:
    """What `run_step` needs of the process it runs in, for one registered agent.

    Args:
        agent: The agent.
        client: Where its model requests go, in this process.
        deps: A function `run_id -> deps`, or None for the run's stored JSON deps.
        events: Called with the events of each step run here.
    """

    def __init__(
        self, agent: Any, client: ChatModel, deps: Any, events: EventHandler | None
    ) -> None:
        self.agent = agent
        self.client = client
        self.deps = deps
        self.events = events


async def run_step(kind: str, payload: dict[str, JSON], context: StepContext) -> JSON:
    """Run one step (`kind` "model" or "tool") from its JSON payload, as `DurableRun`
    made it, and return its JSON result."""
    run_id: str = payload["run_id"]
    config, client, owner = _current(context, payload.get("owner"))
    state = RunState(messages=codec.load_messages(payload.get("messages") or []), run_id=run_id)
    state.turns = payload["turns"]
    state.agent = payload.get("owner")
    if payload.get("usage"):
        from agentkit._wire.responses import Usage

        state.usage = Usage.model_validate(payload["usage"])
    deps = context.deps(run_id) if context.deps is not None else payload.get("deps")
    run: Run[Any] = Run(config, client, state, deps=deps, events=context.events, owner=owner)
    if kind == "model":
        choice = payload["tool_choice"]
        if not isinstance(choice, str):
            choice = NamedToolChoice.model_validate(choice)
        try:
            response = await run.model_step(tool_choice=choice)
        except AgentKitError as exc:  # stored as data: the run ends with it on replay too
            return {"digest": payload["digest"], "error": codec.encode_error(exc)}
        return {"digest": payload["digest"], **codec.encode_response(response)}
    if kind == "tool":
        holder = AssistantMessage.model_validate(
            {"role": "assistant", "tool_calls": [payload["call"]]}
        )
        call = holder.tool_calls[0]  # type: ignore[index]
        live = live_calls.get()
        if live is not None:
            live.add(call.id)
        return codec.encode_outcome(await run.tool_step(call))
    raise ValueError(f"unknown durable step kind {kind!r}")


def _current(context: StepContext, owner: str | None) -> tuple[RunConfig, ChatModel, Any]:
    """The configuration, client and agent that answer now: the durable agent's, or,
    after a handoff, those of the agent named `owner` it (or a later one) handed to."""
    agent = context.agent
    if owner is None:
        return agent.config, context.client, agent
    seen: set[int] = set()
    frontier = [(agent.config, context.client)]
    while frontier:
        config, client = frontier.pop()
        if id(config) in seen:
            continue
        seen.add(id(config))
        for way in config.handoffs.values():
            target = way.config()
            target_client = way.client() or client
            if way.target_name == owner:
                return target, target_client, way.owner
            frontier.append((target, target_client))
    raise ValueError(f"durable step: no agent named {owner!r} is reachable by handoffs")


def _unlimited(config: RunConfig) -> RunConfig:
    """`config` without its `tool_concurrency`: `DurableRun` limits the tool steps
    itself, with the engine's semaphore."""
    if config.tool_concurrency is None:
        return config
    return config.replace(tool_concurrency=None)


def _position(state: RunState, tool_call_id: str) -> int:
    """The position of a call among the calls of the last assistant message (the turn
    being answered): the `{index}` of its step name."""
    for message in reversed(state.messages):
        if isinstance(message, AssistantMessage):
            for i, call in enumerate(message.tool_calls or ()):
                if call.id == tool_call_id:
                    return i
            break
    return 0
