"""Refunds that wait for a person's yes: a run pauses, its state is stored as JSON,
and the run resumes later (here, in the same process) with the decisions.

    python examples/approval.py          # decisions by a rule: refunds up to 100 EUR
    python examples/approval.py --ask    # decide each refund at the prompt, without pausing

It runs offline on a scripted model; set OPENAI_API_KEY (and OPENAI_BASE_URL for
another endpoint) to run it against a real model.
"""

from __future__ import annotations

import os
import sys

from agentkit import (
    Agent,
    ChatClient,
    ChatModel,
    Paused,
    PendingCall,
    Reject,
    RunContext,
    RunResult,
    RunState,
    tool,
)
from agentkit.testing import ScriptedModel, tool_calls

LIMIT = 100


@tool(requires_approval=True)
def refund(ctx: RunContext[None], order: str, amount: int) -> str:
    """Refund an order.

    Args:
        order: The order id, such as "A-1".
        amount: The amount in euros.
    """
    # A payment API that deduplicates on a key sees the same key if the call is retried.
    return f"refunded {amount} EUR on {order} (key {ctx.idempotency_key})"


def client() -> ChatModel:
    if os.environ.get("OPENAI_API_KEY"):
        return ChatClient()
    return ScriptedModel(
        [
            tool_calls(
                ("refund", {"order": "A-1", "amount": 40}),
                ("refund", {"order": "B-2", "amount": 900}),
            ),
            "A-1 is refunded; B-2 needs a manager's approval.",
        ]
    )


def decide(call: PendingCall) -> bool | Reject:
    """The rule a back office might apply: small refunds pass, large ones do not."""
    if call.arguments["amount"] <= LIMIT:
        return True
    return Reject(f"refunds above {LIMIT} EUR need a manager")


def ask(ctx: RunContext[None], call: PendingCall) -> bool | Reject:
    answer = input(f"{call.tool_name}({call.arguments})? [y/N] ")
    return True if answer.strip().lower() == "y" else Reject("the operator said no")


PROMPT = "Refund 40 EUR on order A-1 and 900 EUR on order B-2."


def main() -> None:
    if "--ask" in sys.argv:
        asking = Agent("gpt-4o-mini", client=client(), tools=[refund], approval_handler=ask)
        print(asking.run_sync(PROMPT).output)
        return
    agent = Agent("gpt-4o-mini", client=client(), tools=[refund], pauses=Paused)
    result: RunResult[str] | Paused = agent.run_sync(PROMPT)
    while isinstance(result, Paused):
        for call in result.pending:
            print(f"waiting: {call.tool_name} {call.arguments}")
        stored = result.state.model_dump_json()  # a database row, a queue message, ...
        state = RunState.model_validate_json(stored)
        result = agent.resume_sync(state, {c.tool_call_id: decide(c) for c in result.pending})
    print(result.output)


if __name__ == "__main__":
    main()
