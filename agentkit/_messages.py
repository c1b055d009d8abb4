"""Pydantic models of the Chat Completions wire format.

Request messages, tool definitions, responses, stream chunks, usage and error
bodies. Every model keeps the fields a server adds that are not modelled here
(`system_fingerprint`, `annotations`, `obfuscation`, …) in `model_extra`, so
nothing is lost on a round trip.

Two dumps matter:

- `m.model_dump(mode="json", exclude_none=True)` is the wire form of a message
  or any other model built in Python: fields left unset are not sent.
- `m.model_dump(mode="json", exclude_unset=True)` of a parsed response gives
  back exactly the JSON it was parsed from, explicit `null`s included.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter
from pydantic_core import to_json

__all__ = [
    "AnyToolCall",
    "AssistantMessage",
    "ChatCompletion",
    "ChatCompletionChunk",
    "Choice",
    "ChoiceDelta",
    "ChunkChoice",
    "CompletionTokensDetails",
    "ContentPart",
    "CustomCall",
    "CustomToolCall",
    "DeveloperMessage",
    "ErrorObject",
    "ErrorResponse",
    "FinishReason",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionDefinition",
    "ImagePart",
    "ImageURL",
    "JSONSchemaFormat",
    "Message",
    "Model",
    "ModelList",
    "NamedToolChoice",
    "OtherPart",
    "OtherToolCall",
    "PromptTokensDetails",
    "RefusalPart",
    "ResponseFormat",
    "ResponseFormatJSONObject",
    "ResponseFormatJSONSchema",
    "ResponseFormatText",
    "SystemMessage",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoice",
    "ToolDefinition",
    "ToolMessage",
    "Usage",
    "UserMessage",
    "MESSAGE_ADAPTER",
]


class WireModel(BaseModel):
    """Base of every wire model: unknown fields are kept, never rejected."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --- content parts ---------------------------------------------------------------


class TextPart(WireModel):
    """A text content part: `{"type": "text", "text": ...}`."""

    type: Literal["text"] = "text"
    text: str


class ImageURL(WireModel):
    """The image of an `image_url` part: an `https:` or `data:` URL."""

    url: str
    detail: Literal["auto", "low", "high"] | None = None
    """How closely the model looks at the image."""


class ImagePart(WireModel):
    """An image content part: `{"type": "image_url", "image_url": {"url", "detail"?}}`."""

    type: Literal["image_url"] = "image_url"
    image_url: ImageURL


class RefusalPart(WireModel):
    """A refusal content part of an assistant message."""

    type: Literal["refusal"] = "refusal"
    refusal: str


class OtherPart(WireModel):
    """A content part of a type not modelled here (`input_audio`, `file`, …), kept as is."""

    type: str


def _part_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ("text", "image_url", "refusal") else "other"


ContentPart = Annotated[
    Annotated[TextPart, Tag("text")]
    | Annotated[ImagePart, Tag("image_url")]
    | Annotated[RefusalPart, Tag("refusal")]
    | Annotated[OtherPart, Tag("other")],
    Discriminator(_part_tag),
]
"""One content part; its `type` picks the model."""


# --- tool calls --------------------------------------------------------------------


class FunctionCall(WireModel):
    """The function a tool call names, with its arguments as a JSON string."""

    name: str
    arguments: str


class ToolCall(WireModel):
    """A function tool call made by the model."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall

    @property
    def tool_name(self) -> str:
        """The name of the tool called."""
        return self.function.name

    @property
    def tool_input(self) -> str:
        """The arguments, as the JSON text the model sent."""
        return self.function.arguments


class CustomCall(WireModel):
    """The tool and free-form input of a custom tool call."""

    name: str
    input: str


class CustomToolCall(WireModel):
    """A call of a custom (free-form input) tool."""

    id: str
    type: Literal["custom"] = "custom"
    custom: CustomCall

    @property
    def tool_name(self) -> str:
        """The name of the tool called."""
        return self.custom.name

    @property
    def tool_input(self) -> str:
        """The free-form input the model sent."""
        return self.custom.input


class OtherToolCall(WireModel):
    """A tool call of a type not modelled here, kept as the server sent it."""

    id: str
    type: str

    @property
    def tool_name(self) -> str:
        """The `name` inside the call's payload, if it has one."""
        payload = (self.model_extra or {}).get(self.type)
        name = payload.get("name") if isinstance(payload, dict) else None
        return name if isinstance(name, str) else f"<{self.type}>"

    @property
    def tool_input(self) -> str:
        """The call's payload as JSON text."""
        return to_json((self.model_extra or {}).get(self.type)).decode()


def _call_tag(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    if kind is None or kind == "function":
        return "function"
    return "custom" if kind == "custom" else "other"


AnyToolCall = Annotated[
    Annotated[ToolCall, Tag("function")]
    | Annotated[CustomToolCall, Tag("custom")]
    | Annotated[OtherToolCall, Tag("other")],
    Discriminator(_call_tag),
]
"""Any tool call; its `type` picks the model. Each has `.id`, `.tool_name` and `.tool_input`."""


# --- request messages --------------------------------------------------------------


class SystemMessage(WireModel):
    """Instructions from the application (`role: "system"`)."""

    role: Literal["system"] = "system"
    content: str | list[TextPart]
    name: str | None = None


class DeveloperMessage(WireModel):
    """Instructions from the developer (`role: "developer"`), replacing system on newer models."""

    role: Literal["developer"] = "developer"
    content: str | list[TextPart]
    name: str | None = None


class UserMessage(WireModel):
    """A message from the user: text, or content parts such as text and images.

    Example:
        >>> UserMessage(content=[TextPart(text="What is this?"),
        ...                      ImagePart(image_url=ImageURL(url="https://example.com/a.png"))])
        UserMessage(...)
    """

    role: Literal["user"] = "user"
    content: str | list[ContentPart]
    name: str | None = None


class AssistantMessage(WireModel):
    """A message from the model: text, a refusal, tool calls, or several of these.

    The same model is used for `choices[].message` in responses, so an answer
    can be appended to the history as it is.
    """

    role: Literal["assistant"] = "assistant"
    content: str | list[ContentPart] | None = None
    refusal: str | None = None
    tool_calls: list[AnyToolCall] | None = None
    name: str | None = None


class ToolMessage(WireModel):
    """The result of one tool call, answering the call with the same `tool_call_id`."""

    role: Literal["tool"] = "tool"
    tool_call_id: str
    content: str | list[TextPart]


Message = Annotated[
    SystemMessage | DeveloperMessage | UserMessage | AssistantMessage | ToolMessage,
    Field(discriminator="role"),
]
"""Any request message; its `role` picks the model."""

MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)
"""Validates one message from a dict (`MESSAGE_ADAPTER.validate_python(...)`)."""


# --- tools, tool choice and response format ---------------------------------------


class FunctionDefinition(WireModel):
    """A function the model may call: a name, a description and a JSON schema."""

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolDefinition(WireModel):
    """The wire form of a tool: `{"type": "function", "function": {...}}`."""

    type: Literal["function"] = "function"
    function: FunctionDefinition


class _ToolChoiceFunction(WireModel):
    name: str


class NamedToolChoice(WireModel):
    """Forces a call of one function: `{"type": "function", "function": {"name": ...}}`."""

    type: Literal["function"] = "function"
    function: _ToolChoiceFunction

    @classmethod
    def of(cls, name: str) -> NamedToolChoice:
        """The tool choice that forces a call of the function `name`."""
        return cls(function=_ToolChoiceFunction(name=name))


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice
"""`"auto"`, `"none"`, `"required"`, or a named function."""


class ResponseFormatText(WireModel):
    """Plain text output (the default)."""

    type: Literal["text"] = "text"


class ResponseFormatJSONObject(WireModel):
    """Any JSON object as output."""

    type: Literal["json_object"] = "json_object"


class JSONSchemaFormat(WireModel):
    """The schema the output must follow, with a name for it."""

    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormatJSONSchema(WireModel):
    """Output that follows a JSON schema (OpenAI structured outputs)."""

    type: Literal["json_schema"] = "json_schema"
    json_schema: JSONSchemaFormat


ResponseFormat = Annotated[
    ResponseFormatText | ResponseFormatJSONObject | ResponseFormatJSONSchema,
    Field(discriminator="type"),
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
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            prompt_tokens_details=_add_details(
                PromptTokensDetails, self.prompt_tokens_details, other.prompt_tokens_details
            ),
            completion_tokens_details=_add_details(
                CompletionTokensDetails,
                self.completion_tokens_details,
                other.completion_tokens_details,
            ),
        )


def _add_details(cls: type[Any], a: WireModel | None, b: WireModel | None) -> Any:
    if a is None or b is None:
        return a if b is None else b
    summed: dict[str, int] = {}
    for field in cls.model_fields:
        x, y = getattr(a, field), getattr(b, field)
        if x is not None or y is not None:
            summed[field] = (x or 0) + (y or 0)
    return cls(**summed)


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
