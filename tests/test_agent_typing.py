"""What a type checker infers for agents with handoffs: `result.output` keeps the
agent's output type when every target has the same one, and is the union of the
types otherwise (checked with mypy's `assert_type`, which fails on any mismatch)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

PROGRAM = textwrap.dedent(
    """
    from typing import Any

    from pydantic import BaseModel
    from typing_extensions import Never, assert_type

    from agentkit import Agent, Paused, RunResult, handoff


    class Refund(BaseModel):
        amount: float


    class Ticket(BaseModel):
        number: int


    billing = Agent("m", name="billing", output_type=Refund)
    support = Agent("m", name="support", output_type=Ticket)
    chat = Agent("m", name="chat")
    assert_type(billing, Agent[Refund, Never])
    assert_type(chat, Agent[str, Never])

    # Same output type as the agent's own: unchanged.
    assert_type(Agent("m", handoffs=[chat]), Agent[str, Never])
    assert_type(Agent("m", handoffs=[handoff(chat), handoff(chat, tool_name="again")]), Agent[str, Never])

    # One target, or several of one type, in a list: the union with the agent's own.
    triage = Agent("m", handoffs=[billing])
    assert_type(triage, Agent[str | Refund, Never])
    assert_type(Agent("m", handoffs=[handoff(billing, tool_name="refund")]), Agent[str | Refund, Never])
    assert_type(Agent("m", output_type=int, handoffs=[billing, billing]), Agent[int | Refund, Never])

    # Targets of different types, in a tuple: each type kept.
    desk = Agent("m", handoffs=(billing, support))
    assert_type(desk, Agent[str | Refund | Ticket, Never])
    assert_type(
        Agent("m", output_type=int, handoffs=(billing, handoff(support), chat)),
        Agent[int | Refund | Ticket | str, Never],
    )

    # Pausing agents keep their second parameter.
    assert_type(Agent("m", handoffs=(billing,), pauses=Paused), Agent[str | Refund, Paused])

    # A list of targets of different types (or of agents and handoff() values
    # together): mypy joins its items into `object`, so the output is Any.
    assert_type(Agent("m", handoffs=[billing, support]), Agent[Any, Never])
    assert_type(Agent("m", handoffs=[chat, handoff(chat)]), Agent[Any, Never])

    # The result follows the agent's type.
    def answer(agent: Agent[str | Refund | Ticket, Never]) -> None:
        result = agent.run_sync("hi")
        assert_type(result, RunResult[str | Refund | Ticket])

    # Options are still checked.
    Agent("m", handoffs=[billing], max_turns="many")  # E: wrong type
    """
)


def test_result_output_is_the_union_of_the_handoff_targets_types(tmp_path: Path) -> None:
    program = tmp_path / "handoff_types.py"
    program.write_text(PROGRAM)
    out, err, _ = mypy_api.run(
        ["--strict", "--no-error-summary", "--cache-dir", str(tmp_path / "cache"), str(program)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    # Exactly one error: the deliberate one.
    wrong = next(i for i, line in enumerate(PROGRAM.splitlines(), 1) if 'max_turns="many"' in line)
    assert len(errors) == 1, out + err
    assert errors[0].startswith(f"{program}:{wrong}:") and "call-overload" in errors[0], out
