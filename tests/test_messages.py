"""The wire models: request messages, tools, formats, responses, chunks, usage, errors."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from agentkit import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    CompletionTokensDetails,
    CustomToolCall,
    DeveloperMessage,
    ErrorResponse,
    FunctionCall,
    FunctionDefinition,
    ImagePart,
    ImageURL,
    JSONSchemaFormat,
    Model,
    NamedToolChoice,
    OtherPart,
    PromptTokensDetails,
    RefusalPart,
    ResponseFormatJSONObject,
    ResponseFormatJSONSchema,
    ResponseFormatText,
    SystemMessage,
    TextPart,
    ToolCall,
    ToolDefinition,
    ToolMessage,
    Usage,
    UserMessage,
)
from agentkit._wire.messages import MESSAGE_ADAPTER
from tests.openai_spec.validate import validate_message


def wire(model: Any) -> Any:
    return model.model_dump(mode="json", exclude_none=True, by_alias=True)


# --- request messages ------------------------------------------------------------------

MESSAGES: list[tuple[Any, dict[str, Any]]] = [
    (SystemMessage(content="Be brief."), {"role": "system", "content": "Be brief."}),
    (
        SystemMessage(content=[TextPart(text="a")], name="n"),
        {"role": "system", "content": [{"type": "text", "text": "a"}], "name": "n"},
    ),
    (DeveloperMessage(content="Use tools."), {"role": "developer", "content": "Use tools."}),
    (UserMessage(content="Hi"), {"role": "user", "content": "Hi"}),
    (
        UserMessage(
            content=[
                TextPart(text="What is this?"),
                ImagePart(image_url=ImageURL(url="https://x.test/a.jpg", detail="low")),
                ImagePart(image_url=ImageURL(url="data:image/png;base64,AAAA")),
            ]
        ),
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://x.test/a.jpg", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
    ),
    (AssistantMessage(content="Hello"), {"role": "assistant", "content": "Hello"}),
    (AssistantMessage(refusal="No."), {"role": "assistant", "refusal": "No."}),
    (
        AssistantMessage(
            tool_calls=[ToolCall(id="c1", function=FunctionCall(name="f", arguments="{}"))]
        ),
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
    ),
    (
        AssistantMessage(content=[TextPart(text="x"), RefusalPart(refusal="y")], name="bot"),
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "x"}, {"type": "refusal", "refusal": "y"}],
            "name": "bot",
        },
    ),
    (
        ToolMessage(tool_call_id="c1", content="42"),
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ),
    (
        ToolMessage(tool_call_id="c1", content=[TextPart(text="42")]),
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "42"}]},
    ),
]


@pytest.mark.parametrize(("model", "expected"), MESSAGES)
def test_message_wire_form(model: Any, expected: dict[str, Any]) -> None:
    assert wire(model) == expected
    validate_message(expected, forbid_unknown_keys=True)


@pytest.mark.parametrize(("model", "expected"), MESSAGES)
def test_message_from_dict_round_trip(model: Any, expected: dict[str, Any]) -> None:
    parsed = MESSAGE_ADAPTER.validate_python(expected)
    assert type(parsed) is type(model)
    assert parsed == model
    assert wire(parsed) == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "robot", "content": "x"},
        {"role": "tool", "content": "x"},
        {"role": "user"},
        {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "u", "detail": "4k"}}],
        },
        {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f"}}]},
    ],
)
def test_malformed_messages_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        MESSAGE_ADAPTER.validate_python(bad)


def test_unknown_content_parts_are_kept() -> None:
    part = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    message = MESSAGE_ADAPTER.validate_python({"role": "user", "content": [part]})
    assert isinstance(message, UserMessage)
    assert isinstance(message.content, list)
    assert isinstance(message.content[0], OtherPart)
    assert wire(message) == {"role": "user", "content": [part]}


def test_unknown_message_fields_are_kept() -> None:
    message = MESSAGE_ADAPTER.validate_python(
        {"role": "assistant", "content": "x", "reasoning_details": [{"type": "reasoning.text"}]}
    )
    assert message.model_extra == {"reasoning_details": [{"type": "reasoning.text"}]}
    assert wire(message) == {
        "role": "assistant",
        "content": "x",
        "reasoning_details": [{"type": "reasoning.text"}],
    }


def test_reasoning_is_a_field_under_either_name() -> None:
    for name in ("reasoning_content", "reasoning"):
        message = MESSAGE_ADAPTER.validate_python(
            {"role": "assistant", "content": "x", name: "thought"}
        )
        assert isinstance(message, AssistantMessage)
        assert message.model_extra == {}
        assert message.reasoning_text == "thought"
        assert wire(message) == {"role": "assistant", "content": "x", name: "thought"}
    assert AssistantMessage(content="x").reasoning_text is None
    assert wire(AssistantMessage(content="x")) == {"role": "assistant", "content": "x"}


def test_custom_tool_calls_parse_and_dump() -> None:
    raw = {
        "role": "assistant",
        "tool_calls": [
            {"id": "c1", "type": "custom", "custom": {"name": "math", "input": "4 + 4"}},
            {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        ],
    }
    message = MESSAGE_ADAPTER.validate_python(raw)
    assert isinstance(message, AssistantMessage)
    assert message.tool_calls is not None
    assert [type(c) for c in message.tool_calls] == [CustomToolCall, ToolCall]
    assert wire(message) == raw


def test_tool_call_type_defaults_to_function() -> None:
    call = ToolCall.model_validate({"id": "c", "function": {"name": "f", "arguments": "{}"}})
    assert call.type == "function"


# --- tools, tool choice and response formats ---------------------------------------------


def test_tool_definition() -> None:
    tool = ToolDefinition(
        function=FunctionDefinition(
            name="f", description="d", parameters={"type": "object", "x": None}, strict=True
        )
    )
    assert wire(tool) == {
        "type": "function",
        "function": {
            "name": "f",
            "description": "d",
            # None inside a JSON schema is data, not an unset field.
            "parameters": {"type": "object", "x": None},
            "strict": True,
        },
    }
    assert wire(ToolDefinition(function=FunctionDefinition(name="g"))) == {
        "type": "function",
        "function": {"name": "g"},
    }


def test_named_tool_choice() -> None:
    assert wire(NamedToolChoice.of("f")) == {"type": "function", "function": {"name": "f"}}
    parsed = NamedToolChoice.model_validate({"type": "function", "function": {"name": "f"}})
    assert parsed == NamedToolChoice.of("f")


SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (ResponseFormatText(), {"type": "text"}),
        (ResponseFormatJSONObject(), {"type": "json_object"}),
        (
            ResponseFormatJSONSchema(
                json_schema=JSONSchemaFormat(name="n", description="d", schema=SCHEMA, strict=True)
            ),
            {
                "type": "json_schema",
                "json_schema": {"name": "n", "description": "d", "schema": SCHEMA, "strict": True},
            },
        ),
        (
            ResponseFormatJSONSchema(json_schema=JSONSchemaFormat(name="n", schema_=SCHEMA)),
            {"type": "json_schema", "json_schema": {"name": "n", "schema": SCHEMA}},
        ),
    ],
)
def test_response_formats(model: Any, expected: dict[str, Any]) -> None:
    assert wire(model) == expected
    assert wire(type(model).model_validate(expected)) == expected


def test_json_schema_key_is_schema_on_the_wire() -> None:
    fmt = JSONSchemaFormat.model_validate({"name": "n", "schema": SCHEMA})
    assert fmt.schema_ == SCHEMA
    assert "schema" in fmt.model_dump(by_alias=True)
    assert "schema_" not in fmt.model_dump(by_alias=True)


# --- responses, chunks, usage, errors ----------------------------------------------------


def test_completion_keeps_unknown_fields_and_explicit_nulls() -> None:
    raw = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "hi",
                    "refusal": None,
                    "annotations": [{"type": "url_citation", "url_citation": {"url": "u"}}],
                    "audio": None,
                },
                "finish_reason": "stop",
                "logprobs": {"content": [{"token": "hi", "logprob": -0.1, "bytes": [104, 105]}]},
            }
        ],
        "usage": {
            "prompt_tokens": 1,
            "completion_tokens": 2,
            "total_tokens": 3,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "future_tokens": 5},
        },
        "system_fingerprint": None,
        "service_tier": "default",
        "brand_new": {"nested": [1, 2]},
    }
    completion = ChatCompletion.model_validate(raw)
    assert completion.model_dump(mode="json", exclude_unset=True) == raw
    assert completion.choices[0].message.model_extra == {
        "annotations": [{"type": "url_citation", "url_citation": {"url": "u"}}],
        "audio": None,
    }
    assert completion.model_extra == {"brand_new": {"nested": [1, 2]}}


def test_completion_with_an_unknown_finish_reason() -> None:
    raw = {
        "id": "x",
        "created": 1,
        "model": "m",
        "choices": [{"message": {"role": "assistant", "content": "x"}, "finish_reason": "eos"}],
    }
    assert ChatCompletion.model_validate(raw).choices[0].finish_reason == "eos"


def test_chunk_defaults_and_round_trip() -> None:
    raw = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": ""},
                        }
                    ]
                },
                "finish_reason": None,
            }
        ],
        "obfuscation": "abc",
    }
    chunk = ChatCompletionChunk.model_validate(raw)
    assert chunk.model_dump(mode="json", exclude_unset=True) == raw
    bare = ChatCompletionChunk.model_validate({"id": "c", "created": 1, "model": "m"})
    assert bare.choices == []
    assert bare.model_dump(mode="json", exclude_unset=True) == {
        "id": "c",
        "created": 1,
        "model": "m",
    }


def test_usage_sum() -> None:
    a = Usage(
        prompt_tokens=10,
        completion_tokens=5,
        total_tokens=15,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=4),
    )
    b = Usage(
        prompt_tokens=1,
        completion_tokens=2,
        total_tokens=3,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=1, audio_tokens=2),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=7),
    )
    total = a + b
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens) == (11, 7, 18)
    assert total.prompt_tokens_details == PromptTokensDetails(cached_tokens=5, audio_tokens=2)
    assert total.completion_tokens_details == CompletionTokensDetails(reasoning_tokens=7)
    assert (Usage() + Usage()) == Usage()


def test_usage_sum_with_a_breakdown_of_zeros() -> None:
    # Adding zeros keeps the breakdown as it is, except that a field one side lacks
    # and the other has as 0 becomes 0, as in any other sum.
    zeros = PromptTokensDetails(cached_tokens=0, audio_tokens=0)
    a = Usage(total_tokens=1, prompt_tokens_details=PromptTokensDetails(cached_tokens=3))
    b = Usage(total_tokens=2, prompt_tokens_details=zeros)
    assert (a + b).prompt_tokens_details == PromptTokensDetails(cached_tokens=3, audio_tokens=0)
    c = Usage(
        total_tokens=1, prompt_tokens_details=PromptTokensDetails(cached_tokens=3, audio_tokens=1)
    )
    assert (c + b).prompt_tokens_details == PromptTokensDetails(cached_tokens=3, audio_tokens=1)
    assert (b + b).prompt_tokens_details == zeros
    only_none = Usage(total_tokens=1, prompt_tokens_details=PromptTokensDetails())
    assert (c + only_none).prompt_tokens_details == c.prompt_tokens_details


def test_error_response() -> None:
    raw = {"error": {"message": "m", "type": "t", "param": None, "code": "c"}}
    parsed = ErrorResponse.model_validate(raw)
    assert parsed.error.message == "m"
    assert parsed.model_dump(mode="json", exclude_unset=True) == raw
    numeric = ErrorResponse.model_validate({"error": {"message": "m", "code": 429}})
    assert numeric.error.code == 429


def test_model() -> None:
    model = Model.model_validate({"id": "llama3", "object": "model", "owned_by": "me"})
    assert (model.id, model.created, model.owned_by) == ("llama3", None, "me")
