"""The errors of durable runs."""

from __future__ import annotations

from agentkit._exceptions import AgentRunError, UserError

__all__ = ["DurableRunError", "ReplayMismatchError"]


class ReplayMismatchError(AgentRunError):
    """A recovered run's agent is not the agent that recorded it: the request of a
    turn differs from the one recorded (the instructions, tools, model or output
    type changed). Nothing was sent to the model; `.messages` is the history
    replayed up to that turn."""


class DurableRunError(UserError):
    """A durable run cannot be started as asked (deps that cannot be stored, trio,
    streaming, an agent that may pause), or a run id is unknown."""
