"""`UsageLimits`: budgets a run may not exceed, checked around every request."""

from __future__ import annotations

from dataclasses import dataclass

from agentkit._exceptions import UsageLimitExceeded, UserError
from agentkit._run.state import RunState

__all__ = ["UsageLimits"]


@dataclass(frozen=True)
class UsageLimits:
    """Budgets for one run, summed over all its requests; None is no limit.

    Checked before each request where the next one can be predicted (the number
    of requests; tokens, since a request's prompt is at least as long as the
    one before it), before a turn's tool calls run, and after each response.
    A run that would go past one ends with `UsageLimitExceeded`, whose history
    answers every tool call.

    Example:
        >>> result = await agent.run("...", usage_limits=UsageLimits(total_tokens=20_000))
    """

    requests: int | None = None
    """Model requests."""
    input_tokens: int | None = None
    """Prompt tokens."""
    output_tokens: int | None = None
    """Completion tokens."""
    total_tokens: int | None = None
    """Prompt and completion tokens."""
    tool_calls: int | None = None
    """Tool calls run."""

    def __post_init__(self) -> None:
        for name in ("requests", "input_tokens", "output_tokens", "total_tokens", "tool_calls"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise UserError(f"UsageLimits.{name} must be an integer >= 0, got {value!r}")

    def check_before_request(self, state: RunState, last_prompt_tokens: int) -> None:
        """Raise if the next request would go past a limit; `last_prompt_tokens` is the
        prompt of the last request, the least the next one will have."""
        usage = state.usage
        if self.requests is not None and state.turns + 1 > self.requests:
            self._exceeded(state, f"the next request would exceed requests={self.requests}")
        # The next prompt holds at least the last one: its tokens are the least it adds.
        if self.input_tokens is not None and usage.prompt_tokens + last_prompt_tokens > (
            self.input_tokens
        ):
            self._exceeded(
                state,
                f"the next request would exceed input_tokens={self.input_tokens} "
                f"({usage.prompt_tokens} used, the last prompt had {last_prompt_tokens})",
            )
        if self.total_tokens is not None and usage.total_tokens + last_prompt_tokens > (
            self.total_tokens
        ):
            self._exceeded(
                state,
                f"the next request would exceed total_tokens={self.total_tokens} "
                f"({usage.total_tokens} used, the last prompt had {last_prompt_tokens})",
            )

    def check_tokens(self, state: RunState) -> None:
        """Raise if the tokens used so far are past a limit."""
        usage = state.usage
        for name, used in (
            ("input_tokens", usage.prompt_tokens),
            ("output_tokens", usage.completion_tokens),
            ("total_tokens", usage.total_tokens),
        ):
            limit = getattr(self, name)
            if limit is not None and used > limit:
                self._exceeded(
                    state, f"the run used {used} {name.replace('_', ' ')}, over {name}={limit}"
                )

    def check_tool_calls(self, state: RunState, count: int) -> None:
        """Raise if running `count` more tool calls would go past `tool_calls`."""
        if self.tool_calls is not None and state.tool_calls + count > self.tool_calls:
            self._exceeded(
                state,
                f"running {count} more tool call(s) would exceed tool_calls={self.tool_calls} "
                f"({state.tool_calls} run)",
            )

    @staticmethod
    def _exceeded(state: RunState, reason: str) -> None:
        raise UsageLimitExceeded(reason, messages=state.messages, usage=state.usage)
