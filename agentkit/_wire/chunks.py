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
    "PlainChunk",
    "ToolCallDelta",
    "as_plain",
    "plain_chunk",
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


# --- plain chunks: the common shape, without building models ---------------------------

PlainChunk = dict[str, Any]
"""A chunk as a dict with `ChatCompletionChunk`'s shape, for a streamed run's assembler.

Either the chunk's own parsed JSON, when `plain_chunk` found that the model would
take it exactly as it is, or `as_plain` of the validated model. Every field the
model declares is read with `.get()`: absent and null mean the same. `usage` is
None or a validated `Usage`.
"""

_NONE = type(None)


def plain_chunk(value: Any) -> PlainChunk | None:
    """`value`, a chunk's parsed JSON, when `ChatCompletionChunk` would take it unchanged;
    else None, and the caller validates it with the model.

    Building the five nested models of a tool-call delta costs several times what
    parsing its JSON does, for every one of the dozens of chunks of an answer.
    The rule: a JSON object whose every field that the models declare, at every
    level, is absent or holds exactly the type the model takes as it is: `id` and
    `model` strings; `created` and each `index` an int (not a bool); `choices`
    a list of objects, each with `delta` an object; `object`, `finish_reason`,
    `role`, `content`, `refusal`, `reasoning_content`, `reasoning`, and a tool
    call's `id`, `type` and `function.name` / `function.arguments` strings (or
    null where the model allows null); `logprobs` an object or null; no
    `usage`. Unknown fields pass, as the models keep them. Anything else (a
    value the model would convert or reject, content parts, usage) returns None,
    so that the model normalizes it or raises its own error: both ways give the
    same chunk, and a malformed one the same error.
    """
    if type(value) is not dict:
        return None
    if type(value.get("id")) is not str or type(value.get("model")) is not str:
        return None
    if value.get("usage") is not None or type(value.get("created", 0)) is not int:
        return None
    if type(value.get("object", "")) is not str:
        return None
    for key in ("system_fingerprint", "service_tier"):
        if type(value.get(key)) not in (str, _NONE):
            return None
    choices = value.get("choices", ())
    if type(choices) is not list and choices != ():
        return None
    for choice in choices:
        if (
            type(choice) is not dict
            or type(choice.get("index", 0)) is not int
            or type(choice.get("finish_reason")) not in (str, _NONE)
            or type(choice.get("logprobs")) not in (dict, _NONE)
        ):
            return None
        delta = choice.get("delta")
        if type(delta) is not dict:
            return None
        for key in ("role", "content", "refusal", "reasoning_content", "reasoning"):
            if type(delta.get(key)) not in (str, _NONE):
                return None
        calls = delta.get("tool_calls")
        if calls is None:
            continue
        if type(calls) is not list:
            return None
        for call in calls:
            if (
                type(call) is not dict
                or type(call.get("index")) not in (int, _NONE)
                or type(call.get("id")) not in (str, _NONE)
                or type(call.get("type")) not in (str, _NONE)
            ):
                return None
            function = call.get("function")
            if function is None:
                continue
            if (
                type(function) is not dict
                or type(function.get("name")) not in (str, _NONE)
                or type(function.get("arguments")) not in (str, _NONE)
            ):
                return None
    return value


def as_plain(chunk: ChatCompletionChunk) -> PlainChunk:
    """A validated chunk as a `PlainChunk` (unknown fields included, `usage` kept as is)."""
    plain = chunk.model_dump()
    plain["usage"] = chunk.usage
    return plain
