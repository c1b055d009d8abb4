"""Runs that pause and resume: run ids and idempotency keys, approval, external tools."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from pydantic import BaseModel, Field

from agentkit import (
    Agent,
    Message,
    Paused,
    PendingCall,
    Reject,
    RunComplete,
    RunContext,
    RunPaused,
    RunResult,
    RunState,
    TextDelta,
    Tool,
    ToolCallPending,
    ToolExecutionError,
    ToolResultError,
    UserError,
    tool,
)
from agentkit._run.result import PENDING_ANSWER
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


# --- approval and resume ---------------------------------------------------------------

refunds: list[int] = []


@tool(requires_approval=True)
def refund(amount: int) -> str:
    """Refund a payment.

    Args:
        amount: In euros.
    """
    refunds.append(amount)
    return f"refunded {amount}"


@tool
def balance() -> int:
    """The account's balance."""
    return 100


def wire(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json", exclude_none=True) for m in messages]


def pausing(script: Sequence[Any], **options: Any) -> Agent[str, Paused]:
    return Agent(
        "m", client=ScriptedModel(script), tools=[refund, balance], pauses=Paused, **options
    )


async def test_a_gated_call_pauses_the_run_and_resume_runs_it() -> None:
    refunds.clear()
    script = [call("refund", amount=30), "Refunded."]
    agent = pausing(script)
    paused = await agent.run("Refund 30")
    assert isinstance(paused, Paused)
    (pending,) = paused.pending
    call_id = script[0].tool_calls[0].id
    assert (pending.tool_call_id, pending.tool_name, pending.arguments) == (
        call_id,
        "refund",
        {"amount": 30},
    )
    assert pending.kind == "approval" and refunds == []
    assert paused.state.pending == paused.pending and paused.turns == 1
    assert_history_valid(paused.messages)
    assert paused.messages[-1].content == PENDING_ANSWER  # type: ignore[union-attr]
    result = await agent.resume(paused.state, {call_id: True})
    assert isinstance(result, RunResult)
    assert result.output == "Refunded." and refunds == [30]
    assert_history_valid(result.messages)
    # The same conversation without a pause has the same history.
    plain = Agent("m", client=ScriptedModel(script), tools=[refund.function, balance])
    assert wire((await plain.run("Refund 30")).messages) == wire(result.messages)


async def test_a_rejected_call_is_answered_with_the_reason() -> None:
    refunds.clear()
    script = [call("refund", amount=500), "I could not refund it."]
    model = ScriptedModel(script)
    agent = Agent("m", client=model, tools=[refund], pauses=Paused)
    paused = await agent.run("Refund 500")
    assert isinstance(paused, Paused)
    call_id = paused.pending[0].tool_call_id
    result = await agent.resume(paused.state, {call_id: Reject("above the 100 EUR limit")})
    assert isinstance(result, RunResult) and refunds == []
    answer = model.requests[1]["messages"][-1]
    assert answer["role"] == "tool" and answer["tool_call_id"] == call_id
    assert "rejected: above the 100 EUR limit" in answer["content"]
    assert_history_valid(result.messages)
    # False rejects with a default reason.
    agent = pausing([call("refund", amount=5), "ok"])
    paused = await agent.run("Refund 5")
    assert isinstance(paused, Paused)
    result = await agent.resume(paused.state, {paused.pending[0].tool_call_id: False})
    assert isinstance(result, RunResult) and refunds == []
    assert "rejected" in str(result.messages[2].content)


async def test_unguarded_calls_of_the_turn_run_before_the_pause_and_keep_their_order() -> None:
    refunds.clear()
    script = [
        tool_calls(("balance", {}), ("refund", {"amount": 1}), ("refund", {"amount": 2})),
        "Done.",
    ]
    agent = pausing(script)
    paused = await agent.run("Check and refund")
    assert isinstance(paused, Paused)
    assert [p.arguments["amount"] for p in paused.pending] == [1, 2]
    assert [a.content for a in paused.state.answered] == ["100"]
    assert_history_valid(paused.messages)
    assert [m.content for m in paused.messages[-3:]] == ["100", PENDING_ANSWER, PENDING_ANSWER]  # type: ignore[union-attr]
    first, second = (p.tool_call_id for p in paused.pending)
    result = await agent.resume(paused.state, {first: True, second: Reject("no")})
    assert isinstance(result, RunResult) and refunds == [1]
    assert_history_valid(result.messages)
    contents = [m.content for m in result.messages[2:5]]  # type: ignore[union-attr]
    assert contents[:2] == ["100", "refunded 1"] and "rejected: no" in str(contents[2])
    assert result.messages[1] == script[0]


async def test_a_function_decides_per_call() -> None:
    paid: list[int] = []

    def above_limit(ctx: RunContext[None], call: PendingCall) -> bool:
        return call.arguments["amount"] > 100

    @tool(requires_approval=above_limit)
    async def pay(amount: int) -> str:
        """Pay."""
        paid.append(amount)
        return "paid"

    script = [tool_calls(("pay", {"amount": 50}), ("pay", {"amount": 500})), "ok"]
    agent = Agent("m", client=ScriptedModel(script), tools=[pay], pauses=Paused)
    paused = await agent.run("pay")
    assert isinstance(paused, Paused) and paused.pending[0].arguments == {"amount": 500}
    assert paid == [50]
    result = await agent.resume(paused.state, {paused.pending[0].tool_call_id: True})
    assert isinstance(result, RunResult) and paid == [50, 500]
    assert_history_valid(result.messages)


async def test_bad_arguments_to_a_gated_tool_go_back_to_the_model_without_a_pause() -> None:
    refunds.clear()
    agent = pausing([call("refund", amount="lots"), "sorry"])
    result = await agent.run("Refund")
    assert isinstance(result, RunResult) and refunds == []
    assert "invalid arguments" in str(result.messages[2].content)


async def test_an_agent_with_gated_tools_must_be_made_to_pause() -> None:
    agent = Agent("m", client=ScriptedModel(["hi"]), tools=[refund])
    with pytest.raises(UserError, match=r"pauses=Paused"):
        await agent.run("hi")


async def test_a_run_can_pause_again_after_a_resume() -> None:
    script = [call("refund", amount=1), call("refund", amount=2), "ok"]
    agent = pausing(script)
    paused = await agent.run("two refunds")
    assert isinstance(paused, Paused)
    run_id, step = paused.state.run_id, paused.state.step
    again = await agent.resume(paused.state, {paused.pending[0].tool_call_id: True})
    assert isinstance(again, Paused) and again.pending[0].arguments == {"amount": 2}
    assert again.state.run_id == run_id and again.state.step > step
    assert_history_valid(again.messages)
    result = await agent.resume(again.state, {again.pending[0].tool_call_id: True})
    assert isinstance(result, RunResult) and result.turns == 3


async def test_resuming_twice_or_with_wrong_decisions_is_refused() -> None:
    agent = pausing([call("refund", amount=1), "ok"])
    paused = await agent.run("refund")
    assert isinstance(paused, Paused)
    call_id = paused.pending[0].tool_call_id
    with pytest.raises(UserError, match=rf"no decision for pending call\(s\) {call_id}"):
        await agent.resume(paused.state, {})
    with pytest.raises(UserError, match=r"does not wait on call\(s\) call_nope"):
        await agent.resume(paused.state, {call_id: True, "call_nope": True})
    with pytest.raises(UserError, match="needs an approval, not a result"):
        await agent.resume(paused.state, results={call_id: "x"})
    await agent.resume(paused.state, {call_id: True})
    with pytest.raises(UserError, match=r"is not paused.*resumed already"):
        await agent.resume(paused.state, {call_id: True})


async def test_resuming_with_an_agent_whose_tool_changed_is_a_clear_error() -> None:
    script = [call("refund", amount=1), "ok"]
    paused = await pausing(script).run("refund")
    assert isinstance(paused, Paused)
    call_id = paused.pending[0].tool_call_id
    state = RunState.model_validate_json(paused.state.model_dump_json())

    @tool(name="refund", requires_approval=True)
    def refund_v2(amount: int, currency: str) -> str:
        """Refund, now in any currency."""
        return "ok"

    changed = Agent("m", client=ScriptedModel(["ok"]), tools=[refund_v2], pauses=Paused)
    with pytest.raises(UserError, match=rf"call {call_id} is to tool 'refund'.*no longer fit"):
        await changed.resume(state, {call_id: True})
    gone = Agent("m", client=ScriptedModel(["ok"]), tools=[balance], pauses=Paused)
    with pytest.raises(UserError, match="has no tool of that name"):
        await gone.resume(state, {call_id: True})
    # A rejected call needs no tool: the changed agent can still refuse it.
    result = await gone.resume(state, {call_id: Reject("gone")})
    assert isinstance(result, RunResult)
    assert_history_valid(result.messages)


_CHILD = """
import sys
from agentkit import Agent, Paused, RunState, tool
from agentkit.testing import ScriptedModel

@tool(requires_approval=True)
def refund(amount: int) -> str:
    \"\"\"Refund a payment.\"\"\"
    return f"refunded {amount} in another process"

state = RunState.model_validate_json(sys.stdin.read())
agent = Agent("m", client=ScriptedModel(["Refunded."]), tools=[refund], pauses=Paused)
result = agent.resume_sync(state, {state.pending[0].tool_call_id: True})
print(RunState(messages=result.messages).model_dump_json())
"""


async def test_a_paused_state_resumes_in_another_process_from_its_json() -> None:
    paused = await pausing([call("refund", amount=7)]).run("Refund 7")
    assert isinstance(paused, Paused)
    done = await anyio.run_process(
        [sys.executable, "-c", _CHILD], input=paused.state.model_dump_json().encode(), check=True
    )
    messages = RunState.model_validate_json(done.stdout).messages
    assert_history_valid(messages)
    assert messages[:2] == paused.state.messages
    assert messages[2].content == "refunded 7 in another process"  # type: ignore[union-attr]
    assert messages[3].content == "Refunded."  # type: ignore[union-attr]


# --- external tools --------------------------------------------------------------------


class Location(BaseModel):
    """The user's location, as their browser reports it."""

    precision: int = Field(3, ge=0, description="Decimals of the coordinates.")
    reason: str


locate = Tool.external("get_location", Location)


def test_an_external_tool_has_the_schema_of_its_model() -> None:
    function = locate.definition["function"]
    assert function["name"] == "get_location"
    assert function["description"] == "The user's location, as their browser reports it."
    assert function["parameters"]["required"] == ["reason"]
    assert function["parameters"]["properties"]["precision"]["minimum"] == 0
    assert locate.is_external and not refund.is_external


async def test_an_external_call_pauses_and_its_result_comes_with_resume() -> None:
    script = [tool_calls(("get_location", {"reason": "weather"}), ("balance", {})), "Sunny."]
    model = ScriptedModel(script)
    agent = Agent("m", client=model, tools=[locate, balance], pauses=Paused)
    paused = await agent.run("Weather here?")
    assert isinstance(paused, Paused)
    (pending,) = paused.pending
    assert pending.kind == "external"
    assert pending.arguments == {"precision": 3, "reason": "weather"}
    assert_history_valid(paused.messages)
    call_id = pending.tool_call_id
    with pytest.raises(UserError, match="needs a result"):
        await agent.resume(paused.state, {call_id: True})
    with pytest.raises(ToolResultError):
        await agent.resume(paused.state, results={call_id: object()})
    state = RunState.model_validate_json(paused.state.model_dump_json())
    result = await agent.resume(state, results={call_id: {"lat": 48.85, "lon": 2.35}})
    assert isinstance(result, RunResult) and result.output == "Sunny."
    assert_history_valid(result.messages)
    assert [m["content"] for m in model.requests[1]["messages"][-2:]] == [
        '{"lat":48.85,"lon":2.35}',
        "100",
    ]


async def test_bad_arguments_to_an_external_tool_go_back_to_the_model() -> None:
    agent = Agent(
        "m", client=ScriptedModel([call("get_location", precision=-1), "ok"]), tools=[locate]
    )
    agent.pauses = Paused
    result = await agent.run("where?")
    assert isinstance(result, RunResult)
    assert "invalid arguments for tool 'get_location'" in str(result.messages[2].content)


# --- approval in the process -----------------------------------------------------------


async def test_an_approval_handler_decides_on_the_spot_and_the_history_matches_a_resume() -> None:
    refunds.clear()
    script = [
        tool_calls(("refund", {"amount": 5}), ("balance", {}), ("refund", {"amount": 900})),
        "Done.",
    ]
    asked: list[tuple[str | None, int]] = []

    async def ask(ctx: RunContext[None], call: PendingCall) -> bool | Reject:
        asked.append((ctx.tool_call_id, call.arguments["amount"]))
        return True if call.arguments["amount"] < 100 else Reject("too much")

    agent = Agent("m", client=ScriptedModel(script), tools=[refund, balance], approval_handler=ask)
    result = await agent.run("Refunds")  # no pauses=Paused needed: nothing can pause
    assert result.output == "Done." and refunds == [5]
    first, _, third = (c.id for c in script[0].tool_calls)  # type: ignore[union-attr]
    assert asked == [(first, 5), (third, 900)]
    assert_history_valid(result.messages)
    # The same decisions through a pause and a resume give the same history.
    refunds.clear()
    paused = await pausing(script).run("Refunds")
    assert isinstance(paused, Paused)
    resumed = await pausing(script[1:]).resume(
        paused.state, {first: True, third: Reject("too much")}
    )
    assert isinstance(resumed, RunResult) and refunds == [5]
    assert wire(resumed.messages) == wire(result.messages)


async def test_an_approval_handler_may_answer_false_and_must_answer_a_decision() -> None:
    refunds.clear()
    agent = Agent(
        "m",
        client=ScriptedModel([call("refund", amount=1), "no"]),
        tools=[refund],
        approval_handler=lambda ctx, call: False,
    )
    result = await agent.run("refund")
    assert refunds == [] and "did not approve" in str(result.messages[2].content)
    agent.approval_handler = lambda ctx, call: "yes"
    agent.client = ScriptedModel([call("refund", amount=1), "no"])
    with pytest.raises(UserError, match=r"returned 'yes' for call call_\w+; return True"):
        await agent.run("refund")
    with pytest.raises(UserError, match="approval_handler must be a function"):
        agent.approval_handler = "yes"  # type: ignore[assignment]


async def test_an_external_tool_still_needs_pauses_with_an_approval_handler() -> None:
    agent = Agent("m", client=ScriptedModel(["hi"]), tools=[locate], approval_handler=print)
    with pytest.raises(UserError, match=r"\['get_location'\] may pause a run"):
        await agent.run("hi")


# --- streaming -------------------------------------------------------------------------


async def test_a_streamed_run_ends_paused_and_resume_stream_continues_it() -> None:
    refunds.clear()
    script = [tool_calls(("refund", {"amount": 3}), ("balance", {})), "Refunded 3."]
    agent = pausing(script)
    handled: list[Any] = []
    async with agent.run_stream("Refund 3", event_handler=handled.append) as stream:
        events = [event async for event in stream]
    pending = [e for e in events if isinstance(e, ToolCallPending)]
    assert [(e.tool_name, e.arguments, e.kind) for e in pending] == [
        ("refund", {"amount": 3}, "approval")
    ]
    assert any(isinstance(e, ToolCallPending) for e in handled)
    last = events[-1]
    assert isinstance(last, RunPaused) and stream.paused is last.paused and stream.result is None
    assert_history_valid(last.paused.messages)
    state = RunState.model_validate_json(last.paused.state.model_dump_json())
    async with agent.resume_stream(state, {pending[0].tool_call_id: True}) as resumed:
        events = [event async for event in resumed]
    assert isinstance(events[-1], RunComplete) and refunds == [3]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Refunded 3."
    assert resumed.result is not None and resumed.result.output == "Refunded 3."
    assert_history_valid(resumed.result.messages)
    plain = Agent("m", client=ScriptedModel(script), tools=[refund.function, balance])
    assert wire((await plain.run("Refund 3")).messages) == wire(resumed.result.messages)


def test_a_sync_stream_ends_paused_too() -> None:
    agent = pausing([call("refund", amount=4), "ok"])
    events = list(agent.run_stream_sync("Refund 4"))
    assert isinstance(events[-2], ToolCallPending) and isinstance(events[-1], RunPaused)
    paused = events[-1].paused
    result = agent.resume_sync(paused.state, {paused.pending[0].tool_call_id: True})
    assert isinstance(result, RunResult) and result.output == "ok"


# --- tool outcomes are plain data ------------------------------------------------------


async def test_a_tool_outcome_holds_no_live_exception_and_the_error_is_rebuilt() -> None:
    from agentkit._run import rules
    from agentkit._run.config import RunConfig
    from agentkit._run.tool_step import RebuiltToolError, run_tool_call

    @tool
    def broken() -> str:
        """Fails."""
        raise ValueError("disk full")

    tools = {"broken": broken}
    raised: dict[str, BaseException] = {}
    message = call("broken")
    (made,) = message.tool_calls or ()
    outcome = await run_tool_call(made, tools, None, turn=1, events=None, raised=raised)
    values = [getattr(outcome, name) for name in type(outcome).__slots__]
    assert not any(isinstance(v, BaseException) for v in values)
    assert (outcome.exception_type, outcome.exception_text) == ("ValueError", "disk full")
    assert isinstance(raised[made.id], ValueError)
    config = RunConfig.build(model="m", tools=[broken], tool_errors="raise")
    state = RunState(messages=[])
    with pytest.raises(ToolExecutionError) as live:
        rules.check_outcomes(config, state, [outcome], raised)
    assert live.value.__cause__ is raised[made.id]
    # Without the live exception (a step result loaded from storage), it is rebuilt.
    with pytest.raises(ToolExecutionError, match="raised ValueError: disk full") as again:
        rules.check_outcomes(config, state, [outcome])
    cause = again.value.__cause__
    assert isinstance(cause, RebuiltToolError) and type(cause).__name__ == "ValueError"


async def test_a_tool_that_raises_before_a_pause_ends_the_run_with_every_call_answered() -> None:
    @tool
    def broken() -> str:
        """Fails."""
        raise ValueError("disk full")

    script = [tool_calls(("broken", {}), ("refund", {"amount": 1})), "never"]
    agent = Agent(
        "m",
        client=ScriptedModel(script),
        tools=[broken, refund],
        pauses=Paused,
        tool_errors="raise",
    )
    with pytest.raises(ToolExecutionError) as info:
        await agent.run("go")
    assert isinstance(info.value.__cause__, ValueError)
    assert_history_valid(info.value.messages)


async def test_an_approved_call_keeps_its_idempotency_key_across_the_pause() -> None:
    keys: list[str | None] = []

    @tool(requires_approval=True)
    def send_mail(ctx: RunContext[None], to: str) -> str:
        """Send a mail."""
        keys.append(ctx.idempotency_key)
        return "sent"

    script = [tool_calls(("balance", {}), ("send_mail", {"to": "ada@example.com"})), "Sent."]
    agent = Agent("m", client=ScriptedModel(script), tools=[balance, send_mail], pauses=Paused)
    paused = await agent.run("mail Ada")
    assert isinstance(paused, Paused)
    state = RunState.model_validate_json(paused.state.model_dump_json())
    call_id = paused.pending[0].tool_call_id
    result = await agent.resume(state, {call_id: True})
    assert isinstance(result, RunResult)
    assert keys == [f"{state.run_id}:1:1:{call_id}"]


async def test_an_agent_that_hands_runs_to_a_pausing_agent_must_be_made_to_pause() -> None:
    billing = Agent("m", name="billing", tools=[refund], pauses=Paused)
    triage = Agent("m", client=ScriptedModel(["hi"]), handoffs=[billing])
    with pytest.raises(UserError, match=r"tools \['refund'\] may pause a run"):
        await triage.run("refund please")
    triage.pauses = Paused
    assert (await triage.run("hi")).output == "hi"  # type: ignore[union-attr]


async def test_parallel_calls_run_at_once_around_the_pause_and_after_the_resume() -> None:
    running = 0
    most = 0

    async def overlap() -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await anyio.sleep(0.01)
        running -= 1

    @tool
    async def lookup(key: str) -> str:
        """Look up."""
        await overlap()
        return key

    @tool(requires_approval=True)
    async def write(key: str) -> str:
        """Write."""
        await overlap()
        return f"wrote {key}"

    script = [
        tool_calls(
            ("write", {"key": "a"}),
            ("lookup", {"key": "b"}),
            ("write", {"key": "c"}),
            ("lookup", {"key": "d"}),
        ),
        "ok",
    ]
    agent = Agent("m", client=ScriptedModel(script), tools=[lookup, write], pauses=Paused)
    paused = await agent.run("go")
    assert isinstance(paused, Paused) and most == 2
    assert [a.content for a in paused.state.answered] == ["b", "d"]
    most = 0
    result = await agent.resume(paused.state, {p.tool_call_id: True for p in paused.pending})
    assert isinstance(result, RunResult) and most == 2
    assert [m.content for m in result.messages[2:6]] == ["wrote a", "b", "wrote c", "d"]  # type: ignore[union-attr]
    assert_history_valid(result.messages)


def test_the_approval_example_runs_offline() -> None:
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["PYTHONPATH"] = str(root)
    done = subprocess.run(
        [sys.executable, str(root / "examples" / "approval.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "waiting: refund {'order': 'A-1', 'amount': 40}",
        "waiting: refund {'order': 'B-2', 'amount': 900}",
        "A-1 is refunded; B-2 needs a manager's approval.",
    ]
