"""`DurableEngine`: what `DurableAgent` needs of a durable-execution engine.

An engine runs a registered function (a *workflow*) under a run id, records the
result of each *step* the function takes, and after a crash runs the function
again from the start, handing back the recorded step results instead of running
those steps again. Inputs, step results and outputs are plain JSON values, so an
engine can store them as JSON.

A step is handed to the engine as data (its kind and a JSON payload), not as a
closure over the live run, and run by the `StepHandler` registered with the
workflow: so an engine may run it in another process than the workflow's
(Temporal's activities) as well as in the same one (DBOS's steps). The handler
rebuilds what it needs from the payload (the agent from the registry, deps from
the factory). `DBOSEngine` (in `agentkit.durable.dbos`) and `TemporalEngine`
(in `agentkit.durable.temporal`) implement it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol, TypeVar

__all__ = ["JSON", "DurableEngine", "StepHandler", "StepKind", "Workflow"]

T = TypeVar("T")

JSON = Any
"""A JSON value: dict, list, str, int, float, bool or None."""

Workflow = Callable[[dict[str, JSON]], Awaitable[dict[str, JSON]]]
"""The body of a durable run: plain JSON input in, plain JSON output out."""

StepKind = Literal["model", "tool"]
"""What a step does: one model request, or one tool call."""

StepHandler = Callable[[StepKind, dict[str, JSON]], Awaitable[JSON]]
"""Runs one step from its kind and JSON payload, in whichever process the engine
runs steps in, and returns its JSON result."""


class DurableEngine(Protocol):
    """A durable-execution engine, as `DurableAgent` uses it."""

    steps_in_workflow: bool
    """Whether steps run in the workflow's own task (DBOS), rather than in other
    tasks or processes (Temporal's activities): then the run's client and event
    handler are the steps' too."""

    def register(self, name: str, workflow: Workflow, *, steps: StepHandler) -> None:
        """Register the body of the runs called `name`, and the handler that runs
        their steps; before the engine starts."""
        ...

    async def step(self, name: str, kind: StepKind, payload: dict[str, JSON]) -> JSON:
        """Run the next step of the current run (of the registered agent
        `payload["agent"]`) through its handler and record its JSON result; on
        replay, return the recorded result without running it.

        `name` identifies the step in the engine's history (`model:3`,
        `tool:2:0:lookup`). The step's position is reserved when this is called,
        before its first await, so steps started together in a fixed order replay
        in that order.
        """
        ...

    def semaphore(self, limit: int) -> AbstractAsyncContextManager[Any]:
        """A semaphore of `limit` slots, safe to use in a workflow (`tool_concurrency`);
        used as `async with`."""
        ...

    async def within(self, deadline: float, body: Callable[[], Awaitable[T]]) -> T:
        """Run `body()` in the workflow until `deadline` (seconds since the epoch, by
        the engine's clock): the run's timeout.

        Raises:
            TimeoutError: The time ran out; `body` was cancelled.
        """
        ...

    async def started(self) -> float:
        """When the current run first ran (seconds since the epoch): recorded, so the
        same value again on replay and after recovery."""
        ...

    async def start(
        self, name: str, run_id: str, inputs: dict[str, JSON], *, queue: str | None = None
    ) -> None:
        """Start run `run_id` of `name` in the background, or attach to it if it exists
        (running, finished or being recovered): never a second run under one id."""
        ...

    async def result(self, run_id: str) -> dict[str, JSON]:
        """Wait for run `run_id` to end and return its output."""
        ...

    async def inputs(self, run_id: str) -> dict[str, JSON] | None:
        """The input run `run_id` was started with; None if there is no such run."""
        ...

    async def status(self, run_id: str) -> str | None:
        """The engine's status of run `run_id` (such as "PENDING", "SUCCESS"); None if
        there is no such run."""
        ...
