"""The request fields `ChatClient.create` and `ChatClient.stream` accept, for type checkers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import httpx

if TYPE_CHECKING:
    from agentkit._wire.messages import ResponseFormat, ToolChoice, ToolDefinition

__all__ = ["PARAM_NAMES", "CompletionParams"]


class CompletionParams(TypedDict, total=False):
    """Optional fields of a Chat Completions request.

    A field left out, or given as None, is not sent. Models are serialised to
    their wire form; tools may be `ToolDefinition`s, dicts in wire form, or
    any object with a `.definition` (such as an agentkit `Tool`).
    """

    temperature: float | None
    top_p: float | None
    n: int | None
    stream: bool | None
    stream_options: Mapping[str, Any] | None
    stop: str | Sequence[str] | None
    max_tokens: int | None
    max_completion_tokens: int | None
    presence_penalty: float | None
    frequency_penalty: float | None
    logit_bias: Mapping[str, int] | None
    logprobs: bool | None
    top_logprobs: int | None
    user: str | None
    tools: Sequence[ToolDefinition | Mapping[str, Any] | Any] | None
    tool_choice: ToolChoice | Mapping[str, Any] | None
    parallel_tool_calls: bool | None
    response_format: ResponseFormat | Mapping[str, Any] | None
    seed: int | None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None
    service_tier: str | None
    store: bool | None
    metadata: Mapping[str, str] | None
    modalities: Sequence[str] | None
    prediction: Mapping[str, Any] | None
    verbosity: Literal["low", "medium", "high"] | None
    prompt_cache_key: str | None
    safety_identifier: str | None
    extra_body: Mapping[str, Any] | None
    """Provider-specific fields, merged into the body last."""
    extra_headers: Mapping[str, str] | None
    """Headers for this request only."""
    timeout: float | httpx.Timeout | None
    """Timeout for this request only."""


PARAM_NAMES = frozenset(CompletionParams.__optional_keys__) - {
    "extra_body",
    "extra_headers",
    "timeout",
}
