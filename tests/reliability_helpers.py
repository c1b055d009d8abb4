"""Helpers shared by the reliability, soak, fuzz and secrets tests."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import agentkit._client.client
from agentkit import ChatClient
from agentkit._wire.messages import AssistantMessage, Message, ToolMessage


class Sleeps:
    """Stands in for `agentkit._client.client._sleep`: records each retry delay, waits none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await anyio.lowlevel.checkpoint()


def record_sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    sleeps = Sleeps()
    monkeypatch.setattr(agentkit._client.client, "_sleep", sleeps)
    return sleeps


def connections_in_use(client: ChatClient) -> list[Any]:
    """The pooled connections of `client` that are busy with a request (should be none)."""
    pool = client._http._transport._pool  # type: ignore[attr-defined]
    busy = [c for c in pool.connections if not c.is_idle() and not c.is_closed()]
    return busy + list(pool._requests)


def answered_once(messages: Sequence[Message]) -> None:
    """Assert that every assistant tool call is answered by exactly one tool message,
    right after its assistant message and in call order, and no tool message is stray."""
    expected: list[str] = []
    seen: Counter[str] = Counter()
    for i, message in enumerate(messages):
        if isinstance(message, ToolMessage):
            assert expected, f"messages[{i}]: a tool message that answers no call"
            assert message.tool_call_id == expected.pop(0), f"messages[{i}]: out of order"
            seen[message.tool_call_id] += 1
            continue
        assert not expected, f"messages[{i}]: calls {expected} were never answered"
        if isinstance(message, AssistantMessage) and message.tool_calls:
            expected = [call.id for call in message.tool_calls]
    assert not expected, f"calls {expected} were never answered"
    calls = [
        call.id
        for m in messages
        if isinstance(m, AssistantMessage) and m.tool_calls
        for call in m.tool_calls
    ]
    assert sum(seen.values()) == len(calls)


async def eventually(predicate: Callable[[], bool], timeout: float = 2.0, what: str = "") -> None:
    """Wait until `predicate()` holds, polling; fail after `timeout` seconds."""
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await anyio.sleep(0.01)
    assert predicate(), f"still not true after {timeout:g} s: {what}"
