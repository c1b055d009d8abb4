"""The history check: linear in the size of the history, and made once per run."""

from __future__ import annotations

import gc
import time
from typing import Any

import pytest

from agentkit import Agent, UserError
from agentkit._run import history as history_module
from agentkit._run.history import CheckedHistory, check_history
from agentkit._wire.messages import MESSAGE_ADAPTER, Message
from agentkit.testing import FunctionModel


def answered_calls(calls: int) -> list[Message]:
    """A user message, an assistant message with `calls` tool calls, and their answers."""
    wire: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    wire.append(
        {
            "role": "assistant",
            "tool_calls": [
                {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                for i in range(calls)
            ],
        }
    )
    wire += [{"role": "tool", "tool_call_id": f"c{i}", "content": "ok"} for i in range(calls)]
    return [MESSAGE_ADAPTER.validate_python(m) for m in wire]


def best_time(fn: Any, repeat: int = 3) -> float:
    """The best of a few timings of `fn`, the garbage collector paused: its pauses depend
    on everything the test process holds, not on the work measured."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - started)
        finally:
            gc.enable()
    return best


def test_the_check_grows_linearly() -> None:
    small, large = answered_calls(8_000), answered_calls(128_000)
    t_small = best_time(lambda: check_history(small))
    t_large = best_time(lambda: check_history(large))
    # 16 times the calls: about 16 times the time; a quadratic check takes ~256 times.
    print(  # noqa: T201
        f"check_history: {t_small * 1e3:.2f} ms at 8k calls, {t_large * 1e3:.2f} ms at 128k"
    )
    assert t_large / t_small < 48, (t_small, t_large)


def test_the_errors_name_the_message_at_any_size() -> None:
    messages = answered_calls(1_000)
    with pytest.raises(UserError, match=r"message_history\[1\]: tool call 'c999' has no tool"):
        check_history(messages[:-1])
    swapped = [*messages[:-2], messages[-1], messages[-2]]
    with pytest.raises(UserError, match=r"message_history\[1000\]: expected the answer to tool"):
        check_history(swapped)
    with pytest.raises(UserError, match=r"message_history\[1002\]: tool message for 'c999'"):
        check_history([*messages, messages[-1]])


def test_a_run_checks_its_history_once_and_not_a_checked_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[int] = []
    real = history_module.check_history

    def counting(messages: Any) -> None:
        checked.append(len(messages))
        real(messages)

    monkeypatch.setattr(history_module, "check_history", counting)
    agent = Agent("m", client=FunctionModel(lambda request: "done"))
    history = answered_calls(10)
    agent.run_sync("next?", message_history=history)
    assert checked == [12]
    agent.run_sync("next?", message_history=CheckedHistory(history))
    assert checked == [12]
