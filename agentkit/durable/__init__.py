"""Durable runs: agents whose runs survive the process that started them.

Needs the `durable` extra (`pip install "agentkit[durable]"`: DBOS Transact), or
the `temporal` extra for `TemporalEngine` (`pip install "agentkit[temporal]"`).

```python
from agentkit.durable import DBOSEngine, DurableAgent

engine = DBOSEngine("sqlite:///agentkit.sqlite")  # or "postgresql://…" to scale out
support = DurableAgent(agent, name="support", engine=engine, deps=make_deps)

async with engine:  # launches, and recovers this process's unfinished runs
    result = await support.run("Where is my order?", run_id="ticket-4711")
```

Every model request and every tool call of a durable run is a step whose result
is recorded as JSON. After a crash, the next process with the same executor id
replays the run: recorded steps return their results without running, and the
step that was in flight runs again (steps are at-least-once; tools guard their
side effects with `ctx.idempotency_key`). See `docs/durable.md`.
"""

from typing import TYPE_CHECKING, Any

from agentkit.durable.agent import DurableAgent, RunHandle
from agentkit.durable.dbos import DBOSEngine
from agentkit.durable.engine import DurableEngine
from agentkit.durable.errors import DurableEngineError, DurableRunError, ReplayMismatchError

__all__ = [
    "DBOSEngine",
    "DurableAgent",
    "DurableEngine",
    "DurableEngineError",
    "DurableRunError",
    "ReplayMismatchError",
    "RunHandle",
    "TemporalEngine",
]

if TYPE_CHECKING:
    from agentkit.durable.temporal import TemporalEngine


def __getattr__(name: str) -> Any:
    # temporalio loads only for a program that uses Temporal (the `temporal` extra).
    if name == "TemporalEngine":
        from agentkit.durable.temporal import TemporalEngine

        return TemporalEngine
    raise AttributeError(f"module 'agentkit.durable' has no attribute {name!r}")
