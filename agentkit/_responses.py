"""Pydantic models of what a Chat Completions server sends back: completions, stream
chunks, usage, errors and the model list. Unknown fields are kept, as in `_messages`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agentkit._messages import AssistantMessage, WireModel

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "CompletionTokensDetails",
    "ErrorObject",
    "ErrorResponse",
    "FinishReason",
    "FunctionCallDelta",
    "Model",
    "ModelList",
    "PromptTokensDetails",
    "ToolCallDelta",
    "Usage",
]


# --- responses ---------------------------------------------------------------------

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
"""The finish reasons OpenAI sends; other servers may send other strings."""


class PromptTokensDetails(WireModel):
    """Breakdown of the prompt tokens."""

    cached_tokens: int | None = None
    audio_tokens: int | None = None


class CompletionTokensDetails(WireModel):
    """Breakdown of the completion tokens."""

    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(WireModel):
    """Token counts of one request, or summed over several with `+`.

    Example:
        >>> total = Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)
        >>> (total + total).total_tokens
        30
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None

    def __add__(self, other: Usage) -> Usage:
        if not (
            self.prompt_tokens
            or self.completion_tokens
            or self.total_tokens
            or self.prompt_tokens_details
            or self.completion_tokens_details
            or self.model_extra
        ):
            return other  # nothing plus x is x: a run's first turn
        # One validation of one dict: summed every turn, this is several times
        # cheaper than building each details model on its own.
        return Usage.model_validate(
            {
                "prompt_tokens": self.prompt_tokens + other.prompt_tokens,
                "completion_tokens": self.completion_tokens + other.completion_tokens,
                "total_tokens": self.total_tokens + other.total_tokens,
                "prompt_tokens_details": _add_details(
                    self.prompt_tokens_details, other.prompt_tokens_details
                ),
                "completion_tokens_details": _add_details(
                    self.completion_tokens_details, other.completion_tokens_details
                ),
            }
        )


def _add_details(a: WireModel | None, b: WireModel | None) -> Any:
    """The sum of two token breakdowns of one kind, field by field; None + x is x."""
    if a is None or b is None:
        return a if b is None else b
    summed: dict[str, int] = {}
    for field, x in a.__dict__.items():  # the declared fields, not the extra ones
        y = getattr(b, field)
        if x is not None or y is not None:
            summed[field] = (x or 0) + (y or 0)
    return summed


class Choice(WireModel):
    """One answer of a `ChatCompletion`."""

    index: int = 0
    message: AssistantMessage
    finish_reason: str | None = None
    """Why the model stopped: see `FinishReason` for OpenAI's values."""
    logprobs: dict[str, Any] | None = None


class ChatCompletion(WireModel):
    """A non-streaming response of `POST /chat/completions`."""

    id: str
    object: str = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


# --- stream chunks -----------------------------------------------------------------


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
    content: str | None = None
    refusal: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(WireModel):
    """One choice of a stream chunk."""

    index: int = 0
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
    finish_reason: str | None = None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(WireModel):
    """One `data:` event of a streamed response.

    The last chunk of a stream with `stream_options.include_usage` has empty
    `choices` and the `usage` of the whole request.
    """

    id: str
    object: str = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None


# --- errors and models -------------------------------------------------------------


class ErrorObject(WireModel):
    """The `error` of an error body."""

    message: str
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(WireModel):
    """An error body: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorObject


class Model(WireModel):
    """A model the server offers (`GET /models`)."""

    id: str
    object: str = "model"
    created: int | None = None
    owned_by: str | None = None


class ModelList(WireModel):
    """The body of `GET /models`."""

    object: str = "list"
    data: list[Model]
