"""`RunContext`: what a tool may learn about the run that called it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic

from typing_extensions import TypeVar

from agentkit._wire.messages import Message
from agentkit._wire.responses import Usage

__all__ = ["RunContext"]

DepsT = TypeVar("DepsT", default=None)


@dataclass(frozen=True, kw_only=True)
class RunContext(Generic[DepsT]):
    """The run a tool call belongs to, injected into tools that ask for it.

    A tool asks for it with a first parameter annotated `RunContext[...]` (or
    bare `RunContext`); that parameter is left out of the tool's schema and
    the agent loop passes the context in. It is immutable: the loop makes a
    new one for every tool call (`dataclasses.replace(ctx, tool_call_id=...)`).

    Example:
        >>> @tool
        ... async def balance(ctx: RunContext[Bank], account: str) -> int:
        ...     return await ctx.deps.balance(account)
    """

    deps: DepsT
    """The dependencies the run was started with (a database, an HTTP client, …)."""
    messages: Sequence[Message] = ()
    """The conversation so far, including the assistant message that made the call."""
    usage: Usage = field(default_factory=Usage)
    """Tokens used by the run so far."""
    tool_call_id: str | None = None
    """The id of the tool call being answered, when there is one."""
