"""The errors of durable runs."""

from __future__ import annotations

from agentkit._exceptions import AgentKitError, AgentRunError, UserError

__all__ = ["DurableEngineError", "DurableRunError", "ReplayMismatchError"]


class ReplayMismatchError(AgentRunError):
    """A recovered run's agent is not the agent that recorded it: the request of a
    turn differs from the one recorded (the instructions, tools, model or output
    type changed). Nothing was sent to the model; `.messages` is the history
    replayed up to that turn."""


class DurableRunError(UserError):
    """A durable run cannot be started as asked (deps that cannot be stored, trio,
    streaming, an agent that may pause), or a run id is unknown."""


class DurableEngineError(AgentKitError):
    """A durable run failed outside the agent loop, so it has no `RunResult` or
    agentkit error to give back: the `deps` factory or the engine itself raised,
    or the engine gave up recovering the run (a process that crashed on it too
    many times). The message names the run and the original error."""
