"""A support desk of three agents: triage hands billing questions to a billing agent,
which asks a translator agent for help, validates its answer, and keeps to a budget.

    python examples/support_desk.py

It runs offline on scripted models; set OPENAI_API_KEY (and OPENAI_BASE_URL for
another endpoint) to run it against a real model, with a second endpoint to
fall back on when the first is down (BACKUP_BASE_URL, optional).
"""

from __future__ import annotations

import datetime as dt
import os

from pydantic import BaseModel

from agentkit import (
    Agent,
    ChatClient,
    ChatModel,
    FallbackModel,
    HandedOff,
    ModelRetry,
    RunContext,
    UsageLimits,
    handoff,
    tool,
)
from agentkit.testing import FunctionModel, ModelRequest, Reply, ScriptedModel, call


class Invoice(BaseModel):
    number: str
    amount: float
    due: dt.date


INVOICES = {"A-1": Invoice(number="A-1", amount=12.5, due=dt.date(2031, 1, 31))}


@tool
def find_invoice(number: str) -> str:
    """Look an invoice up.

    Args:
        number: The invoice number, such as "A-1".
    """
    invoice = INVOICES.get(number)
    if invoice is None:
        raise ModelRetry(f"no invoice {number!r}; known: {', '.join(INVOICES)}")
    return invoice.model_dump_json()


def customer(ctx: RunContext[dict[str, str]]) -> str:
    """Instructions computed for each request from the run's dependencies."""
    return f"The customer is {ctx.deps['name']}; answer in {ctx.deps['language']}."


def models() -> tuple[ChatModel, ChatModel, ChatModel]:
    """The models of triage, billing and translator: real ones when a key is set."""
    if os.environ.get("OPENAI_API_KEY"):
        primary = ChatClient()
        backup = os.environ.get("BACKUP_BASE_URL")
        client: ChatModel = (
            primary if not backup else FallbackModel([primary, ChatClient(base_url=backup)])
        )
        return client, client, client

    def billing(request: ModelRequest) -> Reply:
        last = request.messages[-1]
        if last.role == "tool" and "Bonjour" in str(last.content):
            return '{"number": "A-1", "amount": 12.5, "due": "2031-01-31"}'
        if last.role == "tool" and "A-1" in str(last.content):
            return call("translator", input="Say hello to the customer")
        return call("find_invoice", number="A-1")

    return (
        ScriptedModel([call("transfer_to_billing")]),
        FunctionModel(billing),
        ScriptedModel(["Bonjour"]),
    )


def main() -> None:
    triage_model, billing_model, translator_model = models()
    translator = Agent(
        "gpt-4o-mini",
        client=translator_model,
        name="translator",
        instructions="Translate to French.",
    )
    billing = Agent(
        "gpt-4o-mini",
        client=billing_model,
        name="billing",
        instructions=["You answer billing questions with the invoice.", customer],
        tools=[find_invoice, translator.as_tool(description="Translates a sentence to French.")],
        output_type=Invoice,
        usage_limits=UsageLimits(requests=6, total_tokens=20_000),
    )

    @billing.output_validator
    def not_overdue(ctx: RunContext[dict[str, str]], invoice: Invoice) -> Invoice:
        if invoice.due < dt.date(2026, 1, 1):
            raise ModelRetry("that invoice is closed; look up the open one")
        return invoice

    triage = Agent(
        "gpt-4o-mini",
        client=triage_model,
        instructions="Send billing questions to billing.",
        handoffs=[handoff(billing, description="Invoices, payments and refunds.")],
    )
    result = triage.run_sync(
        "How much is invoice A-1?",
        deps={"name": "Ada", "language": "French"},
        event_handler=lambda e: (
            print(f"-> handed to {e.agent}") if isinstance(e, HandedOff) else None
        ),
    )
    assert result.last_agent is billing
    match result.output:  # typed `str | Invoice`: triage answers text, billing invoices
        case Invoice() as invoice:
            print(f"{invoice.number}: {invoice.amount:.2f}, due {invoice.due:%d %B %Y}")
        case text:
            print(text)
    print(f"{result.turns} model requests, {result.usage.total_tokens} tokens in all")


if __name__ == "__main__":
    main()
