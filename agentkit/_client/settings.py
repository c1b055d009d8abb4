"""`ModelSettings`: the sampling fields an agent sends with every request."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, NoReturn, get_args

from agentkit._exceptions import UserError

__all__ = ["ModelSettings"]

ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]

# The ranges of OpenAI's API reference, which every OpenAI-compatible server follows.
_NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}


@dataclass(frozen=True)
class ModelSettings:
    """Sampling and limit fields sent with each request of a run; None is not sent.

    Each value is checked when the settings are made: a wrong type or a value
    out of the API's range raises `UserError` naming the field, instead of a
    400 from the server in the middle of a run.

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
    reasoning_effort: ReasoningEffort | None = None
    service_tier: str | None = None
    extra_body: Mapping[str, Any] | None = field(default=None)
    """Provider-specific request fields, merged into the body last: DeepSeek's
    `{"thinking": {"type": "enabled"}}`, vLLM's
    `{"chat_template_kwargs": {"enable_thinking": False}}`, …"""

    def __post_init__(self) -> None:
        for name, (low, high) in _NUMBER_RANGES.items():
            value = getattr(self, name)
            if value is not None and not (_is_number(value) and low <= value <= high):
                _refuse(name, value, f"a number from {low:g} to {high:g}")
        for name in ("max_tokens", "max_completion_tokens"):
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and value >= 1):
                _refuse(name, value, "a positive integer (tokens)")
        if self.seed is not None and not _is_int(self.seed):
            _refuse("seed", self.seed, "an integer")
        self._check_stop()
        if self.logit_bias is not None and not (
            isinstance(self.logit_bias, Mapping)
            and all(
                isinstance(token, (str, int)) and _is_int(bias) and -100 <= bias <= 100
                for token, bias in self.logit_bias.items()
            )
        ):
            _refuse(
                "logit_bias", self.logit_bias, "a dict of token id to an integer from -100 to 100"
            )
        for name in ("user", "service_tier"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                _refuse(name, value, "a string")
        efforts = get_args(ReasoningEffort)
        if self.reasoning_effort is not None and self.reasoning_effort not in efforts:
            _refuse("reasoning_effort", self.reasoning_effort, " or ".join(map(repr, efforts)))
        if self.extra_body is not None and not isinstance(self.extra_body, Mapping):
            _refuse("extra_body", self.extra_body, "a dict of request fields")

    def _check_stop(self) -> None:
        stop: Any = self.stop
        if stop is None or isinstance(stop, str):
            return
        if isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
            # A list is accepted as written and kept as a tuple: the settings are frozen.
            object.__setattr__(self, "stop", tuple(stop))
            return
        _refuse("stop", stop, "a string or a list of strings")

    def to_params(self) -> dict[str, Any]:
        """The fields that are set, as request parameters."""
        params: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                params[f.name] = list(value) if isinstance(value, tuple) else value
        return params


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse(name: str, value: object, expected: str) -> NoReturn:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:79] + "…"
    raise UserError(
        f"ModelSettings({name}=...) must be {expected}, got {shown} ({type(value).__name__})"
    )
