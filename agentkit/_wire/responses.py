"""Pydantic models of a completion as a Chat Completions server sends it back, and its
usage. Unknown fields are kept, as in `_messages`.

Stream chunks are in `_chunks`, the model list and error bodies in `_other_bodies`:
each loads when first used, so that a program pays for the models it uses."""

# Annotations stay objects (no `from __future__ import annotations`): as strings,
# pydantic would have to compile each one when the model classes are built at import.
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator

from agentkit._wire.messages import AssistantMessage, WireModel

__all__ = [
    "ChatCompletion",
    "Choice",
    "CompletionTokensDetails",
    "FinishReason",
    "PromptTokensDetails",
    "Usage",
]


# --- responses ---------------------------------------------------------------------


# Some servers send null for the fields that only identify a response, or leave out
# `created` (Azure's first chunk has `id: ""` and `created: 0`); nothing depends on them.
ResponseId = Annotated[str, BeforeValidator(lambda value: "" if value is None else value)]
Created = Annotated[int, BeforeValidator(lambda value: 0 if value is None else value)]

FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
"""The finish reasons OpenAI sends; other servers may send other strings."""


Count = Annotated[int, BeforeValidator(lambda value: 0 if value is None else value)]
"""A token count; null (sent by some servers for a count they do not keep) is 0."""


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

    prompt_tokens: Count = 0
    completion_tokens: Count = 0
    total_tokens: Count = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None

    def __add__(self, other: "Usage") -> "Usage":
        if (
            not (self.prompt_tokens or self.completion_tokens or self.total_tokens)
            and self.prompt_tokens_details is None
            and self.completion_tokens_details is None
            and not self.model_extra
        ):
            return other  # nothing plus x is x: a run's first turn
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            prompt_tokens_details=_add_details(
                self.prompt_tokens_details, other.prompt_tokens_details
            ),
            completion_tokens_details=_add_details(
                self.completion_tokens_details, other.completion_tokens_details
            ),
        )


def _add_details(a: WireModel | None, b: WireModel | None) -> Any:
    """The sum of two token breakdowns of one kind, field by field; None + x is x."""
    if a is None or b is None:
        return a if b is None else b
    mine, theirs = vars(a), vars(b)  # the declared fields; extra ones are kept apart
    if not any(theirs.values()) and None not in mine.values():
        # x + zeros is x (the usual case: most breakdowns are all zeros), and the
        # model is taken as it is rather than validated again.
        return a
    return {
        field: (x or 0) + (theirs.get(field) or 0)
        for field, x in mine.items()
        if x is not None or theirs.get(field) is not None
    }


class Choice(WireModel):
    """One answer of a `ChatCompletion`."""

    index: int = 0
    message: AssistantMessage
    finish_reason: str | None = None
    """Why the model stopped: see `FinishReason` for OpenAI's values."""
    logprobs: dict[str, Any] | None = None


class ChatCompletion(WireModel):
    """A non-streaming response of `POST /chat/completions`."""

    id: ResponseId
    object: str = "chat.completion"
    created: Created = 0
    model: ResponseId
    choices: list[Choice]
    usage: Usage | None = None
    system_fingerprint: str | None = None
    service_tier: str | None = None
