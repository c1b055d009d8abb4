"""`ModelSettings`: the sampling fields an agent sends with every request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

__all__ = ["ModelSettings"]


@dataclass(frozen=True)
class ModelSettings:
    """Sampling and limit fields sent with each request of a run; None is not sent.

    Example:
        >>> Agent("gpt-4o-mini", settings=ModelSettings(temperature=0.2, max_tokens=500))
    """

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    stop: str | tuple[str, ...] | None = None
    logit_bias: Mapping[str, int] | None = None
    user: str | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = (
        None
    )
    service_tier: str | None = None
    extra_body: Mapping[str, Any] | None = field(default=None)
    """Provider-specific request fields, merged into the body last: DeepSeek's
    `{"thinking": {"type": "enabled"}}`, vLLM's
    `{"chat_template_kwargs": {"enable_thinking": False}}`, …"""

    def to_params(self) -> dict[str, Any]:
        """The fields that are set, as request parameters."""
        params: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                params[f.name] = list(value) if isinstance(value, tuple) else value
        return params
