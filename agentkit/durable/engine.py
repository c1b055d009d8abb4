"""`DurableEngine`: what `DurableAgent` needs of a durable-execution engine.

An engine runs a registered function (a *workflow*) under a run id, records the
result of each *step* the function takes, and after a crash runs the function
again from the start, handing back the recorded step results instead of running
those steps again. Inputs, step results and outputs are plain JSON values, so an
engine can store them as JSON. `DBOSEngine` (in `agentkit.durable.dbos`) is one;
a Temporal engine can implement the same protocol.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["DurableEngine", "JSON", "Workflow"]

JSON = Any
"""A JSON value: dict, list, str, int, float, bool or None."""

Workflow = Callable[[dict[str, JSON]], Awaitable[dict[str, JSON]]]
"""The body of a durable run: plain JSON input in, plain JSON output out."""


class DurableEngine(Protocol):
    """A durable-execution engine, as `DurableAgent` uses it."""

    def register(self, name: str, workflow: Workflow) -> None:
        """Register the body of the runs called `name`; before the engine starts."""
        ...

    async def step(self, name: str, function: Callable[[], Awaitable[JSON]]) -> JSON:
        """Run `function` as the next step of the current run and record its JSON
        result; on replay, return the recorded result without calling it.

        The step's position is reserved when this is called, before its first
        await, so steps started together in a fixed order replay in that order.
        `function` is a closure over the live run, so it runs in the process that
        runs the workflow: an engine whose steps run in other processes (Temporal
        activities) needs the step handed over as data instead, which this
        protocol does not do yet.
        """
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
