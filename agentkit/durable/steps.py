"""`DurableRun`: the agent loop with its two steps recorded by a durable engine.

Everything between the steps is the loop's own deterministic code, run again on
replay; the steps themselves return their recorded results. A model step records
a digest of its request, and a replayed run whose request differs stops with
`ReplayMismatchError` before anything is sent.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any, TypeVar

from agentkit._client.model import ChatModel
from agentkit._exceptions import AgentKitError
from agentkit._run.config import RunConfig
from agentkit._run.events import EventHandler
from agentkit._run.loop import Run
from agentkit._run.state import ModelResponse, RunState
from agentkit._run.tool_step import AnyCall, ToolOutcome
from agentkit._wire.messages import AssistantMessage, NamedToolChoice
from agentkit.durable import codec
from agentkit.durable.engine import DurableEngine
from agentkit.durable.errors import ReplayMismatchError

__all__ = ["DurableRun"]

OutputT = TypeVar("OutputT")


class DurableRun(Run[OutputT]):
    """A `Run` whose model requests and tool calls are steps of `engine`.

    Args:
        config: The agent's configuration.
        client: Where model requests go.
        state: The run's state; its `run_id` is the durable run's id.
        engine: Records the steps.
        deps: What the tools receive as `ctx.deps`.
        events: Called with each event of a step, in the process that runs the step.
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
        deps: Any,
        events: EventHandler | None,
        plain_tools: Container[str] = (),
        verify_replay: bool = True,
        owner: Any = None,
    ) -> None:
        super().__init__(config, client, state, deps=deps, events=events, owner=owner)
        self.engine = engine
        self.plain_tools = plain_tools
        self.verify_replay = verify_replay
        # Calls whose tool step ran in this process (not replayed): a handoff made by
        # a replayed call does not emit its event again.
        self._live: set[str] = set()

    async def model_step(self, *, tool_choice: str | NamedToolChoice) -> ModelResponse:
        """The model request of this turn as a step named `model:{turn}`, its request's
        digest checked against the recorded one on replay."""
        config, state = self.config, self.state
        turn = state.turns + 1
        params = self.request_params(tool_choice)
        messages = await self._request_messages() if config.instructions else state.messages
        expected = codec.digest(config.model, messages, params)

        async def request() -> dict[str, Any]:
            try:
                response = await Run.model_step(self, tool_choice=tool_choice)
            except AgentKitError as exc:  # stored as data: the run ends with it on replay too
                return {"digest": expected, "error": codec.encode_error(exc)}
            return {"digest": expected, **codec.encode_response(response)}

        data = await self.engine.step(f"model:{turn}", request)
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
        index = _position(self.state, call.id)

        async def run_call() -> dict[str, Any]:
            self._live.add(call.id)
            return codec.encode_outcome(await Run.tool_step(self, call))

        # Called before any await: the engine reserves the step's position here, in
        # call order, however the turn's calls then interleave.
        data = await self.engine.step(f"tool:{self.state.turns}:{index}:{call.tool_name}", run_call)
        return codec.decode_outcome(data)

    async def _hand_off(self, call: AnyCall) -> None:
        if self.events is None or call.id in self._live:
            await super()._hand_off(call)
            return
        events, self.events = self.events, None  # replayed: its event was seen already
        try:
            await super()._hand_off(call)
        finally:
            self.events = events


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
