"""`RunContext`: what a tool may learn about the run that called it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic

from typing_extensions import TypeVar

from agentkit._lazy import on_first_use

if TYPE_CHECKING:
    from agentkit._wire import responses as _responses
    from agentkit._wire.messages import Message
    from agentkit._wire.responses import Usage
else:
    _responses = on_first_use(globals(), "_responses", "agentkit._wire.responses")

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
    usage: Usage = field(default_factory=lambda: _responses.Usage())
    """Tokens used by the run so far."""
    tool_call_id: str | None = None
    """The id of the tool call being answered, when there is one."""
    run_id: str | None = None
    """The id of the run (`RunState.run_id`): the same across a pause and its resume."""
    idempotency_key: str | None = None
    """For a tool call, `{run_id}:{turn}:{index}:{tool_call_id}`: the same however
    often the call is attempted (a resumed or replayed run), different for every other
    call; pass it to a payment or mail API that deduplicates on a key."""
    event_handler: Callable[[Any], Any] | None = field(default=None, repr=False)
    """The run's event handler, if it has one: a tool that runs an agent of its own
    passes it on, so that the sub-run's events are seen with the run's."""
    _spent: list[Usage] = field(default_factory=list, init=False, repr=False, compare=False)

    def add_usage(self, usage: Usage) -> None:
        """Count tokens the tool spent (a sub-agent's requests, say) in the run's usage.

        They are added to the run's usage once the call has ended.
        """
        self._spent.append(usage)

    @property
    def added_usage(self) -> Usage | None:
        """The tokens given to `add_usage` during this call, summed; None if none were."""
        if not self._spent:
            return None
        total = self._spent[0]
        for usage in self._spent[1:]:
            total = total + usage
        return total
