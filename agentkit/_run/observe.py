"""`RunObserver`: what an integration that watches runs (tracing) needs of the run.

An observer is given each run before it starts and wraps it: it may replace the
run's two steps (`model_step`, `tool_step`) on that one `Run` object with
wrappers of its own, and its context manager spans the whole run. Nothing here
is consulted per step: an agent without an observer pays one `is None` check per
run, and the steps it runs are the plain methods.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agentkit._run.loop import Run

__all__ = ["RunObserver"]


class RunObserver(Protocol):
    """Something that watches runs, such as `agentkit.otel.Instrumentation`."""

    def observe(self, run: Run[Any], *, resumed: bool) -> AbstractAsyncContextManager[None]:
        """A context manager spanning `run`, entered before its first step.

        Args:
            run: The run about to start; the observer may wrap its steps.
            resumed: The run goes on from a paused state (`Agent.resume`).
        """
        ...
