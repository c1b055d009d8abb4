"""Pydantic models of the Chat Completions wire format: what a client sends.

Request messages and their content parts, tool calls, tool definitions,
`tool_choice` and `response_format`; what the server sends back is in
`_responses`. Every model keeps the fields a server adds that are not modelled here
(`system_fingerprint`, `annotations`, `obfuscation`, …) in `model_extra`, so
nothing is lost on a round trip.

Two dumps matter:

- `m.model_dump(mode="json", exclude_none=True)` is the wire form of a message
  or any other model built in Python: fields left unset are not sent.
- `m.model_dump(mode="json", exclude_unset=True)` of a parsed response gives
  back exactly the JSON it was parsed from, explicit `null`s included.
"""

# Annotations stay objects (no `from __future__ import annotations`): as strings,
# pydantic would have to compile each one when the model classes are built at import.
import functools
import hashlib
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
)
from pydantic_core import to_json

__all__ = [
    "AnyToolCall",
    "AssistantMessage",
    "ContentPart",
    "CustomCall",
    "CustomToolCall",
    "DeveloperMessage",
    "FunctionCall",
    "FunctionDefinition",
    "ImagePart",
    "ImageURL",
    "JSONSchemaFormat",
    "Message",
    "NamedToolChoice",
    "OtherPart",
    "OtherToolCall",
    "RefusalPart",
    "ResponseFormat",
    "ResponseFormatJSONObject",
    "ResponseFormatJSONSchema",
    "ResponseFormatText",
    "SystemMessage",
    "TextPart",
    "ToolCall",
    "ToolChoice",
    "ToolDefinition",
    "ToolMessage",
    "UserMessage",
    "MESSAGE_ADAPTER",
    "generated_call_id",
]


class WireModel(BaseModel):
    """Base of every wire model: unknown fields are kept, never rejected."""

    # Validators are built on first use, not at import: most programs use a few models.
    model_config = ConfigDict(extra="allow", populate_by_name=True, defer_build=True)


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


def _no_id(value: Any) -> Any:
    return "" if value is None else value


CallId = Annotated[str, BeforeValidator(_no_id)]
"""A tool call's id: some servers send none, or null (Gemini and Snowflake send
`""`); such a call gets one when its message goes back into the history."""


class ToolCall(WireModel):
    """A function tool call made by the model."""

    id: CallId = ""
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

    id: CallId = ""
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

    id: CallId = ""
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


def generated_call_id(position: int, name: str, arguments: str, context: str = "") -> str:
    """An id for a tool call that came without one (Gemini's and Snowflake's
    OpenAI-compatible endpoints send `"id": ""`).

    Derived from the call rather than random, so that the streamed and the plain
    form of one answer give the same history.

    Args:
        position: The call's position in its assistant message.
        name: The tool's name.
        arguments: The arguments as sent.
        context: The message's text and reasoning, which tell apart the same call
            made again in a later turn.
    """
    seed = f"{position}\0{name}\0{arguments}\0{context}".encode()
    return f"call_{hashlib.sha256(seed).hexdigest()[:24]}"


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
    """A message from the model: text, a refusal, tool calls, or several of these,
    and the reasoning that led to them when the provider returns it.

    The same model is used for `choices[].message` in responses, so an answer
    can be appended to the history as it is.
    """

    role: Literal["assistant"] = "assistant"
    content: str | list[ContentPart] | None = None
    refusal: str | None = None
    tool_calls: list[AnyToolCall] | None = None
    name: str | None = None
    reasoning_content: str | None = None
    """The model's reasoning, as DeepSeek, Z.ai, Qwen and vLLM name it. Not part of
    the answer; sent back with the message because DeepSeek requires it."""
    reasoning: str | None = None
    """The model's reasoning, as OpenRouter, Groq, Ollama and Cerebras name it. Kept
    here but not sent back: Groq rejects a message that has it."""

    @property
    def reasoning_text(self) -> str | None:
        """The reasoning under whichever name the provider used, or in `thinking`
        content parts (Mistral); None when there is none."""
        if self.reasoning_content or self.reasoning:
            return self.reasoning_content or self.reasoning
        if isinstance(self.content, list):
            texts = [
                piece.get("text", "")
                for part in self.content
                if isinstance(part, OtherPart) and part.type == "thinking"
                for piece in (part.model_extra or {}).get("thinking") or ()
                if isinstance(piece, dict)
            ]
            return "".join(texts) or None
        return None


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

MESSAGE_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message, config=ConfigDict(defer_build=True))
"""Validates one message from a dict (`MESSAGE_ADAPTER.validate_python(...)`)."""


_MESSAGE_TYPES = frozenset(
    {SystemMessage, DeveloperMessage, UserMessage, AssistantMessage, ToolMessage}
)


@functools.cache
def _message_list() -> TypeAdapter[Any]:
    # Built on first use: a program that never sends a request does not pay for it.
    return TypeAdapter(list[Message])


def wire_messages(messages: Sequence[BaseModel]) -> list[dict[str, Any]]:
    """Message models in wire form: fields that are None are left out, and so is an
    assistant message's `reasoning`.

    `reasoning` stays on the message for the caller but is not sent: Groq, which
    returns it, rejects a request that has it ("property 'reasoning' is
    unsupported"), and no provider needs it back. `reasoning_content` is sent:
    DeepSeek rejects a tool loop's follow-up without it.
    """
    if all(type(message) in _MESSAGE_TYPES for message in messages):
        # One call for the whole list: cheaper than one dump per message; straight to
        # the serializer, without `dump_python`'s layer of Python for every request.
        dumped: list[dict[str, Any]] = _message_list().serializer.to_python(
            messages, mode="json", exclude_none=True, by_alias=True
        )
    else:
        # A subclass, or a model of the caller's own, is dumped by its own serializer.
        dumped = [m.model_dump(mode="json", exclude_none=True, by_alias=True) for m in messages]
    for message in dumped:
        if "reasoning" in message and message.get("role") == "assistant":
            del message["reasoning"]
    return dumped


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
    def of(cls, name: str) -> "NamedToolChoice":
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
