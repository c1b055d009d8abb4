"""Pydantic models of the chunks of a streamed completion (`stream=True`).

Apart from `_responses` so that a program that never streams does not build them.
"""

# Annotations stay objects (no `from __future__ import annotations`): as strings,
# pydantic would have to compile each one when the model classes are built at import.
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from agentkit._wire.messages import WireModel
from agentkit._wire.responses import Created, ResponseId, Usage

__all__ = [
    "ChatCompletionChunk",
    "ChoiceDelta",
    "ChunkChoice",
    "FunctionCallDelta",
    "ToolCallDelta",
]


class FunctionCallDelta(WireModel):
    """A piece of a streamed function call."""

    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(WireModel):
    """A piece of a streamed tool call; `index` says which call it belongs to."""

    index: int | None = None
    id: str | None = None
    type: str | None = None
    function: FunctionCallDelta | None = None


class ChoiceDelta(WireModel):
    """What one chunk adds to a choice."""

    role: str | None = None
    content: str | list[dict[str, Any]] | None = None
    """A piece of the text; Mistral's reasoning models send their reasoning as
    content parts (`{"type": "thinking", "thinking": [...]}`) before it."""
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    reasoning_content: str | None = None
    """A piece of the reasoning (DeepSeek, Z.ai, Qwen, vLLM)."""
    reasoning: str | None = None
    """A piece of the reasoning (OpenRouter, Groq, Ollama, Cerebras)."""


class ChunkChoice(WireModel):
    """One choice of a stream chunk."""

    index: int = 0
    delta: Annotated[
        ChoiceDelta,
        # `"delta": null` on a finish chunk (some servers) adds nothing.
        BeforeValidator(lambda value: {} if value is None else value),
    ] = Field(default_factory=ChoiceDelta)
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(WireModel):
    """One `data:` event of a streamed response.

    The last chunk of a stream with `stream_options.include_usage` has empty
    `choices` and the `usage` of the whole request.
    """

    id: ResponseId
    object: str = "chat.completion.chunk"
    created: Created = 0
    model: ResponseId
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
