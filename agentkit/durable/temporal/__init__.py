"""`TemporalEngine`: durable runs on Temporal (`pip install "agentkit[temporal]"`).

agentkit provides the workflow (`agentkit.run`) and the activities (`agentkit.model`
for each model request, `agentkit.tool` for each tool call, every tool by default):
the agent loop runs in the workflow, in Temporal's sandbox, and each step is an
activity that heartbeats while it runs, so a dead worker's step is retried after
the heartbeat timeout. `DurableAgent` works on it as on `DBOSEngine`.

```python
engine = TemporalEngine("127.0.0.1:7233", task_queue="agents")
support = DurableAgent(agent, name="support", engine=engine)

async with engine:  # a worker in this process; or `engine.worker()` elsewhere
    result = await support.run("Where is my order?", run_id="ticket-4711")
```

`run_in_workflow` runs a durable agent inside a workflow of your own.
"""

from agentkit.durable.temporal.engine import (
    RUN_WORKFLOW,
    AgentRunWorkflow,
    TemporalEngine,
    run_in_workflow,
)

__all__ = ["RUN_WORKFLOW", "AgentRunWorkflow", "TemporalEngine", "run_in_workflow"]
