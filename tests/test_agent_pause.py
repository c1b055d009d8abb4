"""Runs that pause and resume: run ids and idempotency keys, approval, external tools."""

from __future__ import annotations

import pytest

from agentkit import Agent, RunContext, RunState, tool
from agentkit.testing import ScriptedModel, call, tool_calls
from tests.chat_server import assert_history_valid

pytestmark = pytest.mark.anyio


# --- the seams: start_state, run id, step counter, idempotency keys ----------------------


async def test_start_state_makes_the_state_a_run_starts_from() -> None:
    agent = Agent("m", client=ScriptedModel(["hi"]))
    state = agent.start_state("Hello", [{"role": "user", "content": "Before"}])
    assert [m.content for m in state.messages] == ["Before", "Hello"]  # type: ignore[union-attr]
    assert len(state.run_id) == 32 and state.step == 0
    assert agent.start_state("x").run_id != state.run_id
    again = RunState.model_validate_json(state.model_dump_json())
    assert again.run_id == state.run_id


async def test_tools_get_the_run_id_and_an_idempotency_key_per_call() -> None:
    seen: list[tuple[str | None, str | None]] = []

    @tool
    def pay(ctx: RunContext[None], amount: int) -> str:
        """Pay."""
        seen.append((ctx.run_id, ctx.idempotency_key))
        return "paid"

    model = ScriptedModel(
        [tool_calls(("pay", {"amount": 1}), ("pay", {"amount": 2})), call("pay", amount=3), "ok"]
    )
    agent = Agent("m", client=model, tools=[pay])
    state = agent.start_state("Pay")
    result = await agent.run("Pay")
    assert_history_valid(result.messages)
    run_ids = {r for r, _ in seen}
    assert len(run_ids) == 1 and None not in run_ids
    (run_id,) = run_ids
    ids = [c.id for m in result.messages for c in (getattr(m, "tool_calls", None) or ())]
    keys = [k for _, k in seen]
    assert sorted(keys) == sorted(  # type: ignore[type-var]
        [f"{run_id}:1:0:{ids[0]}", f"{run_id}:1:1:{ids[1]}", f"{run_id}:2:0:{ids[2]}"]
    )
    assert state.run_id != run_id
