"""Real recorded exchanges: every body parses and dumps back unchanged, and replaying
each recorded request through the client sends a valid body and gets the same answer."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from agentkit import APIStatusError, ChatCompletion, ChatCompletionChunk, ErrorResponse
from agentkit._client.errors import status_error
from agentkit._wire.messages import MESSAGE_ADAPTER
from agentkit._wire.params import PARAM_NAMES
from tests.openai_spec.validate import validate_request
from tests.test_client import BASE, RECORDINGS_PATH, make

RECORDINGS: list[dict[str, Any]] = json.loads(RECORDINGS_PATH.read_text(encoding="utf-8"))
IDS = [f"{e['file'][:60]}#{e['index']}" for e in RECORDINGS]
JSON_BODIES = [e for e in RECORDINGS if e["response_json"] is not None]
JSON_IDS = [f"{e['file'][:60]}#{e['index']}" for e in JSON_BODIES]
STREAMS = [e for e in RECORDINGS if e["chunk_texts"]]
STREAM_IDS = [f"{e['file'][:60]}#{e['index']}" for e in STREAMS]

# Hop-by-hop and encoding headers describe the recorded transfer, not the replayed one.
_DROP_HEADERS = {"content-encoding", "content-length", "transfer-encoding", "connection"}


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def test_the_recordings_cover_the_interesting_cases() -> None:
    assert len(RECORDINGS) == 20
    assert {e["status"] for e in RECORDINGS} >= {200, 400, 401, 404}
    assert len(STREAMS) >= 5
    text = json.dumps(RECORDINGS)
    for field in ("system_fingerprint", "service_tier", "annotations", "obfuscation", "logprobs"):
        assert f'\\"{field}\\"' in text or f'"{field}"' in text, field
    assert '\\"type\\": \\"custom\\"' in text or '"type": "custom"' in text


@pytest.mark.parametrize("entry", JSON_BODIES, ids=JSON_IDS)
def test_response_parses_and_dumps_back_unchanged(entry: dict[str, Any]) -> None:
    raw = entry["response_json"]
    model = ErrorResponse if "error" in raw else ChatCompletion
    parsed = model.model_validate_json(entry["response_text"])
    assert parsed.model_dump(mode="json", exclude_unset=True) == raw
    # And from already-parsed JSON, as a caller with a dict would do.
    assert model.model_validate(raw).model_dump(mode="json", exclude_unset=True) == raw


@pytest.mark.parametrize("entry", STREAMS, ids=STREAM_IDS)
def test_chunks_parse_and_dump_back_unchanged(entry: dict[str, Any]) -> None:
    for text in entry["chunk_texts"]:
        chunk = ChatCompletionChunk.model_validate_json(text)
        assert chunk.model_dump(mode="json", exclude_unset=True) == json.loads(text)


def test_unmodelled_fields_survive() -> None:
    custom = next(e for e in RECORDINGS if "custom_tool_call" in e["file"])
    completion = ChatCompletion.model_validate(custom["response_json"])
    calls = completion.choices[0].message.tool_calls
    assert calls is not None and calls[0].type == "custom"
    message = completion.choices[0].message
    assert "annotations" in (message.model_extra or {})
    moderation = next(e for e in STREAMS if "moderation" in e["file"])
    chunks = [ChatCompletionChunk.model_validate_json(t) for t in moderation["chunk_texts"]]
    assert any("moderation" in (c.model_extra or {}) for c in chunks)
    assert all("obfuscation" in (c.model_extra or {}) for c in chunks)


@pytest.mark.parametrize("entry", RECORDINGS, ids=IDS)
def test_request_messages_parse_and_dump_back(entry: dict[str, Any]) -> None:
    for raw in entry["request_json"]["messages"]:
        message = MESSAGE_ADAPTER.validate_python(raw)
        dumped = message.model_dump(mode="json", exclude_none=True, by_alias=True)
        assert dumped == without_nulls(raw)


@pytest.mark.parametrize("entry", RECORDINGS, ids=IDS)
def test_recorded_requests_are_valid(entry: dict[str, Any]) -> None:
    validate_request(entry["request_json"], forbid_unknown_keys=True)


def split_request(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The recorded body as `create`/`stream` keyword arguments and `extra_body`."""
    params: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("model", "messages") or (key == "stream" and value):
            continue
        (params if key in PARAM_NAMES else extra)[key] = value
    return params, extra


def recorded_response(entry: dict[str, Any], request: httpx.Request) -> httpx.Response:
    headers = [
        (name, value)
        for name, values in entry["response_headers"].items()
        if name.lower() not in _DROP_HEADERS
        for value in values
    ]
    content = entry["response_text"].encode()
    return httpx.Response(entry["status"], headers=headers, content=content, request=request)


@pytest.mark.anyio
@pytest.mark.parametrize("entry", RECORDINGS, ids=IDS)
async def test_replay_through_the_client(entry: dict[str, Any]) -> None:
    request = entry["request_json"]
    params, extra = split_request(request)
    with respx.mock(base_url=BASE) as api:
        route = api.post("/chat/completions").mock(
            side_effect=lambda request: recorded_response(entry, request)
        )
        async with make(max_retries=0) as client:
            call: dict[str, Any] = dict(
                model=request["model"], messages=request["messages"], **params
            )
            if extra:
                call["extra_body"] = extra
            if request.get("stream"):
                if entry["status"] != 200:
                    with pytest.raises(APIStatusError) as info:
                        async with client.stream(**call):
                            pass
                    error: APIStatusError | None = info.value
                else:
                    error = None
                    async with client.stream(**call) as stream:
                        got = [c.model_dump(mode="json", exclude_unset=True) async for c in stream]
                    assert got == [json.loads(t) for t in entry["chunk_texts"]]
            elif entry["status"] != 200:
                with pytest.raises(APIStatusError) as info:
                    await client.create(**call)
                error = info.value
            else:
                error = None
                reply = await client.create(**call)
                assert reply.model_dump(mode="json", exclude_unset=True) == entry["response_json"]
    sent = json.loads(route.calls.last.request.content)
    # The client sends exactly what was recorded, less the nulls inside messages.
    assert sent == {**request, "messages": without_nulls(request["messages"])}
    validate_request(sent, forbid_unknown_keys=True)
    if error is not None:
        response = recorded_response(entry, route.calls.last.request)
        expected = status_error(response, entry["response_json"])
        assert type(error) is type(expected)
        assert error.status_code == entry["status"]
        assert error.body == entry["response_json"]
        assert error.code == entry["response_json"]["error"]["code"]
        assert error.request_id == entry["response_headers"].get("x-request-id", [None])[0]
