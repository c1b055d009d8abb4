"""Soak: 500 agent runs, 50 at a time, against `fault_server.py` with about a third of
the requests hit by a transient fault and some runs cancelled at random points.

Every run must complete with a valid history or raise one of agentkit's typed
errors; none may hang (a deadline on the whole test); no connection may be left
busy in the pool or open on the server; every history, also those carried by
errors and by cancelled streamed runs, answers each tool call exactly once; and
every request body that reached the server validates against the spec. Retry
waits are recorded, not waited. The test prints a one-line summary.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import anyio
import httpx
import pytest

from agentkit import (
    Agent,
    AgentKitError,
    AgentRunError,
    ChatClient,
    tool,
)
from agentkit._run.history import check_history
from agentkit._wire.messages import Message
from tests.fault_server import Request, fault_server
from tests.openai_spec.validate import validate_request
from tests.reliability_helpers import answered_once, connections_in_use, eventually, record_sleeps

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

RUNS = 500
CONCURRENCY = 50
FAULT_RATE = 1 / 3
CANCEL_RATE = 0.1
DEADLINE = 100.0
READ_TIMEOUT = 1.0

TRANSIENT_JSON = ["429", "429-ms", "500", "502", "503", "reset", "truncated", "slow", "stall"]
TRANSIENT_SSE = [*TRANSIENT_JSON, "sse-empty", "sse-cut", "sse-reset"]
"""Faults a server or proxy really produces now and then. `sse-cut`, `sse-reset` and
`stall` break a stream after its first chunk reached the loop, so they end that run
with `APIConnectionError`; the others are retried."""


@tool
async def add(a: int, b: int) -> int:
    """Add two numbers."""
    await anyio.sleep(0.001)
    return a + b


@tool
def shout(text: str) -> str:
    """Upper-case a text (a sync tool: it runs in a worker thread)."""
    return text.upper()


# The conftest's stream test helpers leave the same trio warning on early exits.
@pytest.mark.filterwarnings(
    r"ignore:Async generator 'httpx\.:ResourceWarning",
    r"ignore:Async generator 'httpcore\.:ResourceWarning",
)
async def test_soak(
    anyio_backend: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(f"soak-{anyio_backend}")
    sleeps = record_sleeps(monkeypatch)

    def plan(request: Request) -> str | None:
        if rng.random() >= FAULT_RATE:
            return None
        return rng.choice(TRANSIENT_SSE if request.stream else TRANSIENT_JSON)

    outcomes: Counter[str] = Counter()
    unexpected: list[str] = []
    histories = 0
    without_history = 0  # runs of `agent.run` that ended with an APIError: no history to check

    async with fault_server(plan, slow_delay=READ_TIMEOUT + 0.1) as server:
        timeout = httpx.Timeout(READ_TIMEOUT, connect=2.0)
        client = ChatClient(server.base_url, api_key="sk-soak", timeout=timeout, max_retries=2)
        agent = Agent("soak-model", client=client, tools=[add, shout], max_turns=4)
        limiter = anyio.Semaphore(CONCURRENCY)

        def check(messages: list[Message]) -> None:
            nonlocal histories
            answered_once(messages)
            check_history(messages)
            histories += 1

        async def one(i: int) -> None:
            nonlocal without_history
            streamed = i % 3 == 0
            cancel_after = rng.uniform(0.0, 0.3) if rng.random() < CANCEL_RATE else None
            async with limiter:
                try:
                    if streamed:
                        await streamed_run(cancel_after)
                    else:
                        result = await agent.run(f"run {i}", timeout=cancel_after)
                        assert result.output == "Done after 2 tool answers.", result.output
                        check(result.messages)
                        outcomes["completed"] += 1
                except AgentRunError as exc:
                    if not streamed:  # a streamed run's history is checked below
                        check(exc.messages)
                    outcomes[type(exc).__name__] += 1
                except AgentKitError as exc:
                    outcomes[type(exc).__name__] += 1
                    if not streamed:
                        without_history += 1
                except Exception as exc:  # anything else is a bug
                    unexpected.append(f"run {i}: {type(exc).__name__}: {exc}")

        async def streamed_run(cancel_after: float | None) -> None:
            stream = agent.run_stream("streamed")
            try:
                with anyio.move_on_after(cancel_after if cancel_after is not None else 1e9):
                    async with stream:
                        async for _ in stream:
                            pass
                    assert stream.result.output == "Done after 2 tool answers."
                    outcomes["completed"] += 1
                    return
                outcomes["cancelled (stream)"] += 1
            finally:
                # Finished, failed or left early: the run's history holds.
                check(stream.state.messages)

        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                for i in range(RUNS):
                    tg.start_soon(one, i)

        assert connections_in_use(client) == []
        await client.aclose()
        await eventually(lambda: server.open_connections == 0, what="server connections")

    assert not unexpected, "\n".join(unexpected[:10])
    assert sum(outcomes.values()) == RUNS
    assert histories == RUNS - without_history, outcomes
    bodies = server.chat_bodies
    distinct = {json.dumps(body, sort_keys=True) for body in bodies}
    for text in distinct:
        validate_request(json.loads(text), forbid_unknown_keys=True)

    injected = sum(server.faults.values())
    rate = injected / len(bodies)
    assert 0.25 < rate < 0.42, rate
    assert outcomes["completed"] > RUNS // 2, outcomes
    failed = ", ".join(f"{k}={v}" for k, v in sorted(outcomes.items()) if k != "completed")
    with capsys.disabled():
        print(  # noqa: T201
            f"\nsoak[{anyio_backend}]: runs={RUNS} concurrency={CONCURRENCY} "
            f"requests={len(bodies)} faults={injected} ({rate:.0%}) retries={len(sleeps.delays)} "
            f"completed={outcomes['completed']} failed/cancelled: {failed}; "
            f"histories checked={histories}, distinct bodies validated={len(distinct)}"
        )
