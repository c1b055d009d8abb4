"""Recorded traffic of OpenAI-compatible providers (`providers/exchanges.json`, with
the provenance of each exchange in `providers/README.md`): every body parses through
`ChatClient.create`/`stream`, every answer with tool calls goes round an `Agent` to a
well-formed follow-up request, and the plain and the streamed form of each answer
give the same history."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from agentkit import (
    Agent,
    APIStatusError,
    AssistantMessage,
    BadRequestError,
    ChatClient,
    RateLimitError,
    ReasoningDelta,
    Tool,
)
from agentkit._wire.params import PARAM_NAMES
from tests.openai_spec.validate import validate_request

BASE = "https://provider.test/v1"
CORPUS_PATH = Path(__file__).parent / "providers" / "exchanges.json"
CORPUS: list[dict[str, Any]] = json.loads(CORPUS_PATH.read_text(encoding="utf-8"))
BY_ID = {e["id"]: e for e in CORPUS}

# Exchanges that end in an error, and the error each must raise.
ERRORS: dict[str, type[APIStatusError]] = {
    "openrouter:test_openrouter_stream_error#0": BadRequestError,  # error in a 200 chunk
    "openrouter:test_openrouter_errors_raised#0": RateLimitError,
    "groq:test_tool_use_failed_error#0": BadRequestError,
    "groq:test_tool_use_failed_error_streaming#0": BadRequestError,  # `event: error`
}


def ids(entries: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in entries]


def is_stream(entry: dict[str, Any]) -> bool:
    return entry["request"].get("stream") is True


def sse_datas(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, without `[DONE]`."""
    datas: list[str] = []
    for event in text.replace("\r\n", "\n").split("\n\n"):
        lines = [ln[5:].removeprefix(" ") for ln in event.split("\n") if ln.startswith("data:")]
        if lines and "\n".join(lines) != "[DONE]":
            datas.append("\n".join(lines))
    return datas


def response_of(entry: dict[str, Any], request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        entry["status"],
        headers=entry["response_headers"],
        content=entry["response_text"].encode(),
        request=request,
    )


def completion_of(entry: dict[str, Any]) -> dict[str, Any] | None:
    """The recorded answer as a plain completion: the body itself, or the chunks of a
    stream put together by a reference merge written here, independent of agentkit."""
    if not is_stream(entry):
        body: dict[str, Any] = json.loads(entry["response_text"])
        return body if body.get("choices") else None
    chunks = [json.loads(d) for d in sse_datas(entry["response_text"])]
    message: dict[str, Any] = {"role": "assistant"}
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    parts: list[dict[str, Any]] = []  # content as parts, when a server sends parts

    def add_part(kind: str, text: str) -> None:
        if parts and parts[-1]["type"] == kind:
            if kind == "text":
                parts[-1]["text"] += text
            else:
                parts[-1]["thinking"][0]["text"] += text
        elif kind == "text":
            parts.append({"type": "text", "text": text})
        else:
            parts.append({"type": "thinking", "thinking": [{"type": "text", "text": text}]})

    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            content = delta.get("content")
            if isinstance(content, list):
                if not parts and message.get("content"):
                    add_part("text", message["content"])
                for part in content:
                    if part["type"] == "text":
                        add_part("text", part["text"])
                    else:
                        add_part("thinking", "".join(p["text"] for p in part["thinking"]))
            elif isinstance(content, str) and parts and content:
                add_part("text", content)
            for key in ("content", "refusal", "reasoning_content", "reasoning"):
                if isinstance(delta.get(key), str):
                    message[key] = message.get(key, "") + delta[key]
            for n, call_delta in enumerate(delta.get("tool_calls") or []):
                call = calls.setdefault(
                    call_delta.get("index", n),
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                call["id"] = call["id"] or call_delta.get("id") or ""
                function = call_delta.get("function") or {}
                call["function"]["name"] = call["function"]["name"] or function.get("name") or ""
                call["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason") is not None:
                finish = choice["finish_reason"]
    if parts:
        message["content"] = parts
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    first = chunks[0]
    return {
        "id": first.get("id", ""),
        "object": "chat.completion",
        "created": first.get("created", 0),
        "model": first.get("model", ""),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
    }


def stream_of(completion: dict[str, Any]) -> str:
    """A completion as the SSE body a server would stream for it: role, reasoning and
    text in pieces, each tool call opened with its id and name and its arguments in
    two pieces, then the finish reason."""
    choice = completion["choices"][0]
    message = choice["message"]
    head = {k: completion[k] for k in ("id", "created", "model")}
    chunks: list[dict[str, Any]] = []

    def add(delta: dict[str, Any], finish: str | None = None) -> None:
        chunks.append(
            {
                **head,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    add({"role": "assistant"})
    for key in ("reasoning_content", "reasoning", "content", "refusal"):
        value = message.get(key)
        if isinstance(value, str):
            cut = len(value) // 2
            add({key: value[:cut]})
            add({key: value[cut:]})
        elif key == "content" and isinstance(value, list):
            # Mistral streams thinking as parts and the text as strings.
            for part in value:
                add({"content": part["text"] if part["type"] == "text" else [part]})
    for index, call in enumerate(message.get("tool_calls") or []):
        function = call["function"]
        add(
            {
                "tool_calls": [
                    {
                        "index": index,
                        **({"id": call["id"]} if "id" in call else {}),
                        "type": "function",
                        "function": {"name": function["name"], "arguments": ""},
                    }
                ]
            }
        )
        cut = len(function["arguments"]) // 2
        for piece in (function["arguments"][:cut], function["arguments"][cut:]):
            add({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    add({}, choice.get("finish_reason") or "stop")
    return "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"


# A synthetic final answer, to end a run after the recorded tool calls.
FINAL = {
    "id": "synthetic-final",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "done"}, "finish_reason": "stop"}
    ],
}


def final_response(stream: bool, request: httpx.Request) -> httpx.Response:
    if stream:
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=stream_of(FINAL).encode(),
            request=request,
        )
    return httpx.Response(200, json=FINAL, request=request)


def recorded_calls(entry: dict[str, Any]) -> list[dict[str, Any]]:
    completion = completion_of(entry)
    if completion is None or not completion["choices"]:
        return []
    calls: list[dict[str, Any]] = completion["choices"][0]["message"].get("tool_calls") or []
    return calls


def tools_for(names: list[str]) -> list[Tool[..., Any]]:
    def answer() -> str:
        return "ok"

    return [Tool.from_function(answer, name=name) for name in dict.fromkeys(names) if name]


OK = [e for e in CORPUS if e["id"] not in ERRORS]
WITH_CALLS = [e for e in OK if recorded_calls(e)]
ANSWERS = [e for e in OK if completion_of(e) is not None]


def test_the_corpus_covers_the_providers_and_the_quirks() -> None:
    assert len(CORPUS) >= 30
    assert len({e["provider"] for e in CORPUS}) >= 10
    assert any(is_stream(e) for e in WITH_CALLS)  # streamed tool calls
    for entry in CORPUS:
        source = entry["source"]
        # A file at a commit of a repository, or an issue thread that pastes the stream.
        assert source["repository"]
        assert (source.get("path") and len(source["commit"]) == 40) or source.get("url")
        assert "authorization" not in json.dumps(entry).lower()
    text = json.dumps(CORPUS)
    for quirk in (
        '\\"id\\": \\"\\"',
        "reasoning_content",
        '\\"reasoning\\"',
        "audio",
        "event: error",
    ):
        assert quirk in text, quirk
    # Real streams that end without data: [DONE] after their finish_reason.
    assert [e["id"] for e in OK if is_stream(e) and "[DONE]" not in e["response_text"]]


@pytest.mark.anyio
async def test_a_real_stream_without_done_ends_normally() -> None:
    entry = BY_ID["llama.cpp:ik_llama.cpp-issue-467-observed"]
    assert "[DONE]" not in entry["response_text"]
    chunks = await stream_chunks(entry, entry["response_text"])
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, None, "length"]


# --- every exchange through the client -------------------------------------------------


def replayed(entry: dict[str, Any]) -> dict[str, Any]:
    """The recorded request, or only its model and messages when the rest does not
    follow the spec (some recorders sent provider-specific tools)."""
    body = {k: v for k, v in entry["request"].items() if v is not None}
    try:
        validate_request(body)
    except Exception:
        body = {k: body[k] for k in ("model", "messages", "stream") if k in body}
        try:
            validate_request(body)
        except Exception:
            body["messages"] = [{"role": "user", "content": "hi"}]
    return body


def split_request(body: dict[str, Any]) -> dict[str, Any]:
    """The recorded body as `create`/`stream` keyword arguments, provider fields in
    `extra_body`."""
    call: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in body.items():
        if key == "stream":
            continue
        (call if key in PARAM_NAMES or key in ("model", "messages") else extra)[key] = value
    if extra:
        call["extra_body"] = extra
    return call


@pytest.mark.anyio
@pytest.mark.allow_unknown_request_keys  # provider fields such as `thinking`
@pytest.mark.parametrize("entry", CORPUS, ids=ids(CORPUS))
async def test_exchange_through_the_client(entry: dict[str, Any]) -> None:
    error = ERRORS.get(entry["id"])
    with respx.mock(base_url=BASE) as api:
        route = api.post("/chat/completions").mock(side_effect=lambda r: response_of(entry, r))
        async with ChatClient(BASE, api_key="sk-test", max_retries=0) as client:
            request = replayed(entry)
            call = split_request(request)
            if is_stream(entry):
                got: list[dict[str, Any]] = []
                if error is not None:
                    with pytest.raises(error) as info:
                        async with client.stream(**call) as stream:
                            got.extend(
                                [
                                    c.model_dump(mode="json", exclude_unset=True)
                                    async for c in stream
                                ]
                            )
                    assert info.value.status_code in (400, 429)
                else:
                    async with client.stream(**call) as stream:
                        got = [c.model_dump(mode="json", exclude_unset=True) async for c in stream]
                    assert got == [json.loads(d) for d in sse_datas(entry["response_text"])]
            elif error is not None:
                with pytest.raises(error):
                    await client.create(**call)
            else:
                reply = await client.create(**call)
                dumped = reply.model_dump(mode="json", exclude_unset=True)
                assert dumped == json.loads(entry["response_text"])
    sent = json.loads(route.calls.last.request.content)
    # Provider fields went out through extra_body, unchanged.
    assert {k: v for k, v in sent.items() if k != "messages"} == {
        k: v for k, v in request.items() if k != "messages" and (k, v) != ("stream", False)
    }


# --- tool calls round an Agent ----------------------------------------------------------


def check_follow_up(entry: dict[str, Any], sent: dict[str, Any]) -> None:
    """The request after the recorded tool calls: the assistant message with its calls,
    then one tool message per call id, in order."""
    calls = recorded_calls(entry)
    messages = sent["messages"]
    assistant = messages[-1 - len(calls)]
    answers = messages[-len(calls) :]
    assert assistant["role"] == "assistant"
    sent_ids = [c["id"] for c in assistant["tool_calls"]]
    assert all(sent_ids) and len(set(sent_ids)) == len(sent_ids)
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == [
        c["function"]["name"] for c in calls
    ]
    assert [c["function"]["arguments"] for c in assistant["tool_calls"]] == [
        c["function"]["arguments"] for c in calls
    ]
    for call, sent_id in zip(calls, sent_ids, strict=True):
        if call["id"]:
            assert sent_id == call["id"]
    assert [m["role"] for m in answers] == ["tool"] * len(calls)
    assert [m["tool_call_id"] for m in answers] == sent_ids
    message = completion_of(entry)["choices"][0]["message"]  # type: ignore[index]
    # reasoning_content goes back (DeepSeek requires it); reasoning does not (Groq
    # rejects it).
    assert assistant.get("reasoning_content") == message.get("reasoning_content")
    assert "reasoning" not in assistant
    audio = message.get("audio")
    if isinstance(audio, dict) and audio.get("id"):
        assert assistant["audio"] == {"id": audio["id"]}
    else:
        assert "audio" not in assistant
    for key in ("refusal", "name"):
        assert assistant.get(key, None) != ""  # empty stubs are not echoed
    # The follow-up follows the spec, but for the reasoning some providers require.
    validate_request(sent, forbid_unknown_keys="reasoning_content" not in assistant)


async def run_agent(
    entry: dict[str, Any], first: Callable[[httpx.Request], httpx.Response], stream: bool
) -> tuple[list[dict[str, Any]], dict[str, Any], list[Any]]:
    """Run an agent whose first answer is `first` and whose second is FINAL; the
    history, the second request's body and the streamed events."""
    names = [c["function"]["name"] for c in recorded_calls(entry)]
    answers = iter([first, lambda r: final_response(stream, r)])
    events: list[Any] = []
    with respx.mock(base_url=BASE) as api:
        route = api.post("/chat/completions").mock(side_effect=lambda r: next(answers)(r))
        async with ChatClient(BASE, api_key="sk-test", max_retries=0) as client:
            agent = Agent(entry["request"]["model"], client=client, tools=tools_for(names))
            if stream:
                async with agent.run_stream("go") as run:
                    async for event in run:
                        events.append(event)
                    result = run.result
                    assert result is not None
            else:
                result = await agent.run("go")
    assert result.output == "done"
    sent = json.loads(route.calls.last.request.content)
    history = [m.model_dump(mode="json", exclude_none=True) for m in result.messages]
    return history, sent, events


@pytest.mark.anyio
@pytest.mark.allow_unknown_request_keys  # checked in check_follow_up
@pytest.mark.parametrize("entry", WITH_CALLS, ids=ids(WITH_CALLS))
async def test_tool_calls_go_round_an_agent(entry: dict[str, Any]) -> None:
    _, sent, events = await run_agent(entry, lambda r: response_of(entry, r), is_stream(entry))
    check_follow_up(entry, sent)
    if is_stream(entry):
        reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
        message = completion_of(entry)["choices"][0]["message"]  # type: ignore[index]
        assert reasoning == (message.get("reasoning_content") or message.get("reasoning") or "")


# --- the plain and the streamed path agree ------------------------------------------------


@pytest.mark.anyio
@pytest.mark.allow_unknown_request_keys  # reasoning goes back to the providers that need it
@pytest.mark.parametrize("entry", ANSWERS, ids=ids(ANSWERS))
async def test_plain_and_streamed_give_the_same_history(entry: dict[str, Any]) -> None:
    completion = completion_of(entry)
    assert completion is not None
    body = stream_of(completion)

    def plain(r: httpx.Request) -> httpx.Response:
        if is_stream(entry):
            return httpx.Response(200, json=completion, request=r)
        return response_of(entry, r)

    def streamed(r: httpx.Request) -> httpx.Response:
        if is_stream(entry):
            return response_of(entry, r)
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=body.encode(), request=r
        )

    if recorded_calls(entry):
        plain_history, _, _ = await run_agent(entry, plain, stream=False)
        streamed_history, _, _ = await run_agent(entry, streamed, stream=True)
    else:
        plain_history = await one_answer(entry, plain, stream=False)
        streamed_history = await one_answer(entry, streamed, stream=True)
    assert streamed_history == plain_history


async def one_answer(
    entry: dict[str, Any], respond: Callable[[httpx.Request], httpx.Response], stream: bool
) -> list[dict[str, Any]]:
    """The history of a run without tools whose one answer is `respond`; an answer cut
    off by its token limit ends the run with the partial message in the history."""
    from agentkit import AgentRunError, IncompleteOutputError

    with respx.mock(base_url=BASE) as api:
        api.post("/chat/completions").mock(side_effect=respond)
        async with ChatClient(BASE, api_key="sk-test", max_retries=0) as client:
            agent = Agent(entry["request"]["model"], client=client)
            try:
                if stream:
                    async with agent.run_stream("go") as run:
                        async for _ in run:
                            pass
                        assert run.result is not None
                        messages = run.result.messages
                else:
                    messages = (await agent.run("go")).messages
            except IncompleteOutputError as error:
                assert isinstance(error.partial, AssistantMessage)
                messages = [*error.messages, error.partial]
            except AgentRunError as error:
                messages = error.messages
    return [m.model_dump(mode="json", exclude_none=True) for m in messages]


# --- the five behaviours, on the recordings that show them ---------------------------------


async def stream_chunks(entry: dict[str, Any], text: str) -> list[dict[str, Any]]:
    """The chunks `client.stream` yields for `text` as the recorded response body."""
    with respx.mock(base_url=BASE) as api:
        api.post("/chat/completions").mock(
            side_effect=lambda r: httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=text.encode()
            )
        )
        async with ChatClient(BASE, api_key="sk-test", max_retries=0) as client:
            async with client.stream(model="m", messages=[{"role": "user", "content": "hi"}]) as s:
                return [c.model_dump(mode="json", exclude_unset=True) async for c in s]


@pytest.mark.anyio
async def test_an_error_in_an_otherwise_valid_chunk_raises() -> None:
    entry = BY_ID["openrouter:test_openrouter_stream_error#0"]
    # The chunk has ordinary choices, finish_reason included, beside its error.
    last = json.loads(sse_datas(entry["response_text"])[-1])
    assert last["choices"] and last["error"] == {"code": 400, "message": "Token limit reached"}
    got: list[Any] = []
    with pytest.raises(BadRequestError, match="Token limit reached") as info:
        got.extend(await stream_chunks(entry, entry["response_text"]))
    assert info.value.status_code == 400
    assert info.value.body == last


@pytest.mark.anyio
async def test_an_error_in_a_stream_ends_a_streamed_run() -> None:
    entry = BY_ID["openrouter:test_openrouter_stream_error#0"]
    events: list[Any] = []
    with respx.mock(base_url=BASE) as api:
        api.post("/chat/completions").mock(side_effect=lambda r: response_of(entry, r))
        async with ChatClient(BASE, api_key="sk-test", max_retries=0) as client:
            agent = Agent("m", client=client)
            with pytest.raises(BadRequestError, match="Token limit reached"):
                async with agent.run_stream("hi") as run:
                    async for event in run:
                        events.append(event)
    # The reasoning streamed before the error was shown as it came.
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)).startswith("We need")


@pytest.mark.anyio
async def test_the_error_event_of_groq_raises_with_its_status() -> None:
    entry = BY_ID["groq:test_tool_use_failed_error_streaming#0"]
    with pytest.raises(BadRequestError, match="Tool call validation failed") as info:
        await stream_chunks(entry, entry["response_text"])
    assert info.value.code == "tool_use_failed"


@pytest.mark.anyio
async def test_an_error_with_a_2xx_plain_body_raises() -> None:
    # Synthetic: the error object of the OpenRouter recording, as a plain 200 body
    # next to a completion, and alone.
    error = {"code": 400, "message": "Token limit reached"}
    bodies = [{**FINAL, "error": error}, {"error": error}]
    for body in bodies:
        with respx.mock(base_url=BASE) as api:
            api.post("/chat/completions").mock(return_value=httpx.Response(200, json=body))
            async with ChatClient(BASE, api_key="sk-test", max_retries=0) as client:
                with pytest.raises(BadRequestError, match="Token limit reached"):
                    await client.create(model="m", messages=[{"role": "user", "content": "hi"}])


REASONING_WITH_CALLS = [
    e
    for e in WITH_CALLS
    if any(
        completion_of(e)["choices"][0]["message"].get(key) is not None  # type: ignore[index]
        for key in ("reasoning_content", "reasoning")
    )
]


@pytest.mark.anyio
@pytest.mark.allow_unknown_request_keys  # reasoning_content is not in OpenAI's spec
@pytest.mark.parametrize("entry", REASONING_WITH_CALLS, ids=ids(REASONING_WITH_CALLS))
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_reasoning_goes_back_with_the_tool_calls(entry: dict[str, Any], stream: bool) -> None:
    completion = completion_of(entry)
    assert completion is not None
    message = completion["choices"][0]["message"]
    if stream:
        answer = lambda r: httpx.Response(  # noqa: E731
            200,
            headers={"content-type": "text/event-stream"},
            content=stream_of(completion).encode(),
        )
    else:
        answer = lambda r: httpx.Response(200, json=completion)  # noqa: E731
    history, sent, events = await run_agent(entry, answer, stream)
    assistant = sent["messages"][-1 - len(message["tool_calls"])]
    assert assistant.get("reasoning_content") == message.get("reasoning_content")
    assert "reasoning" not in assistant
    # Both stay on the message in the history, as the provider named them.
    kept = history[-2 - len(message["tool_calls"])]
    for key in ("reasoning_content", "reasoning"):
        assert kept.get(key) == message.get(key)
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if stream and reasoning:
        assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == reasoning


@pytest.mark.anyio
@pytest.mark.allow_unknown_request_keys
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_deepseek_reasoning_is_kept_shown_and_never_the_answer(stream: bool) -> None:
    entry = BY_ID["deepseek:deepseek_streamed_reasoning_content#0"]
    completion = completion_of(entry)
    assert completion is not None
    reasoning = completion["choices"][0]["message"]["reasoning_content"]
    assert reasoning.startswith("We are asked")
    with respx.mock(base_url=BASE) as api:
        if stream:
            api.post("/chat/completions").mock(side_effect=lambda r: response_of(entry, r))
        else:
            api.post("/chat/completions").mock(return_value=httpx.Response(200, json=completion))
        async with ChatClient(BASE, api_key="sk-test", max_retries=0) as client:
            agent = Agent("deepseek-v4-pro", client=client)
            if stream:
                async with agent.run_stream("What is 17 * 23?") as run:
                    events = [e async for e in run]
                    result = run.result
                assert result is not None
                shown = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
                assert shown == reasoning
            else:
                result = await agent.run("What is 17 * 23?")
    assert "391" in result.output and reasoning not in result.output
    assert result.reasoning == reasoning
    last = result.messages[-1]
    assert isinstance(last, AssistantMessage) and last.reasoning_content == reasoning


@pytest.mark.anyio
@pytest.mark.allow_unknown_request_keys
async def test_run_result_reasoning_counts_only_this_run() -> None:
    entry = BY_ID["deepseek:deepseek_streamed_reasoning_content#0"]
    completion = completion_of(entry)
    earlier = [
        {"role": "user", "content": "before"},
        {"role": "assistant", "content": "x", "reasoning_content": "earlier thought"},
    ]
    with respx.mock(base_url=BASE) as api:
        api.post("/chat/completions").mock(return_value=httpx.Response(200, json=completion))
        async with ChatClient(BASE, api_key="sk-test", max_retries=0) as client:
            agent = Agent("m", client=client)
            result = await agent.run("again", message_history=earlier)
    assert result.reasoning is not None and "earlier thought" not in result.reasoning
    assert result.reasoning.startswith("We are asked")


@pytest.mark.anyio
async def test_an_empty_tool_call_id_gets_the_same_id_on_both_paths() -> None:
    entry = BY_ID["gemini-(openai-compatible):test_compatible_api_with_tool_calls_without_id#0"]
    completion = completion_of(entry)
    assert completion is not None
    assert completion["choices"][0]["message"]["tool_calls"][0]["id"] == ""
    plain, sent_plain, _ = await run_agent(entry, lambda r: response_of(entry, r), stream=False)
    streamed, sent_streamed, _ = await run_agent(
        entry,
        lambda r: httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=stream_of(completion).encode(),
        ),
        stream=True,
    )
    assert plain == streamed
    for sent in (sent_plain, sent_streamed):
        call_id = sent["messages"][-2]["tool_calls"][0]["id"]
        assert call_id.startswith("call_") and sent["messages"][-1]["tool_call_id"] == call_id
        validate_request(sent, forbid_unknown_keys=True)


@pytest.mark.anyio
async def test_empty_stubs_are_not_sent_back() -> None:
    entry = BY_ID["snowflake-cortex:test_snowflake_tool_calling#0"]
    message = json.loads(entry["response_text"])["choices"][0]["message"]
    assert message["audio"]["id"] == "" and message["refusal"] == ""
    _, sent, _ = await run_agent(entry, lambda r: response_of(entry, r), stream=False)
    assistant = sent["messages"][-1 - len(message["tool_calls"])]
    assert "audio" not in assistant and "refusal" not in assistant
    assert "function_call" not in assistant
    assert all(set(call) == {"id", "type", "function"} for call in assistant["tool_calls"])
    validate_request(sent, forbid_unknown_keys=True)


def test_the_stubs_of_a_final_answer_are_not_kept_for_the_next_request() -> None:
    from agentkit._run.loop import request_form as _request_form

    entry = BY_ID["snowflake-cortex:test_snowflake_tool_calling#1"]
    raw = json.loads(entry["response_text"])["choices"][0]["message"]
    wire = _request_form(AssistantMessage.model_validate(raw)).model_dump(
        mode="json", exclude_none=True
    )
    assert wire == {"role": "assistant", "content": raw["content"]}


def test_an_audio_id_is_sent_back() -> None:
    from agentkit._run.loop import request_form as _request_form

    message = AssistantMessage.model_validate(
        {
            "role": "assistant",
            "content": None,
            "audio": {"id": "audio_1", "data": "AAA", "expires_at": 1},
        }
    )
    assert _request_form(message).model_dump(exclude_none=True)["audio"] == {"id": "audio_1"}


# Real streams with their `data: [DONE]` taken out, as llama.cpp forks, older TGI and
# some Azure deployments send them (see providers/README.md).
DONE_STREAMS = [
    e
    for e in OK
    if is_stream(e)
    and "data: [DONE]" in e["response_text"]
    and (completion_of(e) or {"choices": [{}]})["choices"][0].get("finish_reason") is not None
]
# Snowflake's streams carry no finish_reason at all: without [DONE] they are truncated.
NO_FINISH = [
    e
    for e in OK
    if is_stream(e)
    and not (completion_of(e) or {"choices": [{}]})["choices"][0].get("finish_reason")
]


@pytest.mark.anyio
@pytest.mark.parametrize("entry", NO_FINISH, ids=ids(NO_FINISH))
async def test_a_stream_without_finish_reason_or_done_is_an_error(entry: dict[str, Any]) -> None:
    from agentkit import APIConnectionError

    assert await stream_chunks(entry, entry["response_text"])  # with [DONE]: fine
    with pytest.raises(APIConnectionError, match="ended before"):
        await stream_chunks(entry, without_done(entry["response_text"]))


def without_done(text: str) -> str:
    return text.replace("data: [DONE]", "").rstrip() + "\n\n"


@pytest.mark.anyio
@pytest.mark.parametrize("entry", DONE_STREAMS, ids=ids(DONE_STREAMS))
async def test_a_stream_without_done_ends_after_a_finish_reason(entry: dict[str, Any]) -> None:
    expected = [json.loads(d) for d in sse_datas(entry["response_text"])]
    assert await stream_chunks(entry, without_done(entry["response_text"])) == expected
    # Without its last event's closing blank line, too.
    assert await stream_chunks(entry, without_done(entry["response_text"]).rstrip("\n")) == expected


@pytest.mark.anyio
@pytest.mark.parametrize("entry", DONE_STREAMS, ids=ids(DONE_STREAMS))
async def test_a_stream_cut_before_its_finish_reason_is_an_error(entry: dict[str, Any]) -> None:
    from agentkit import APIConnectionError

    events = entry["response_text"].replace("\r\n", "\n").split("\n\n")
    first_finish = next(
        i for i, event in enumerate(events) if '"finish_reason":"' in event.replace(" ", "")
    )
    cut = "\n\n".join(events[:first_finish]) + "\n\n"
    with pytest.raises(APIConnectionError, match="ended before"):
        await stream_chunks(entry, cut)


# --- provider fields ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.allow_unknown_request_keys  # `thinking` and `chat_template_kwargs` are not OpenAI's
async def test_extra_body_on_the_agent_and_the_settings() -> None:
    from agentkit import ModelSettings

    # The request of the recorded DeepSeek thinking-mode stream, sent by an Agent.
    entry = BY_ID["deepseek:deepseek_streamed_reasoning_content#0"]
    recorded = entry["request"]
    settings = ModelSettings(
        max_tokens=1024,
        reasoning_effort="high",
        extra_body={"thinking": {"type": "disabled"}, "chat_template_kwargs": {"x": 1}},
    )
    with respx.mock(base_url=BASE) as api:
        route = api.post("/chat/completions").mock(side_effect=lambda r: response_of(entry, r))
        async with ChatClient(BASE, api_key="sk-test", max_retries=0) as client:
            agent = Agent(
                recorded["model"],
                client=client,
                instructions=recorded["messages"][0]["content"],
                settings=settings,
                extra_body={"thinking": {"type": "enabled"}},
            )
            async with agent.run_stream(recorded["messages"][1]["content"]) as run:
                async for _ in run:
                    pass
    sent = json.loads(route.calls.last.request.content)
    # The Agent's extra_body wins over the settings' for the same field.
    assert sent == {**recorded, "chat_template_kwargs": {"x": 1}}


GEMINI = "gemini-(openai-compatible):test_compatible_api_with_tool_calls_without_id#0"


def gemini_with_call(**changes: Any) -> dict[str, Any]:
    """Derived: the Gemini recording with its tool call changed as given (a key set to
    ... is removed)."""
    completion = json.loads(BY_ID[GEMINI]["response_text"])
    call = completion["choices"][0]["message"]["tool_calls"][0]
    for key, value in changes.items():
        if value is ...:
            call.pop(key)
        else:
            call[key] = value
    return completion


@pytest.mark.anyio
@pytest.mark.parametrize("change", [{"id": ...}, {"id": None}, {"id": ""}], ids=str)
async def test_a_tool_call_without_id_gets_the_same_id_on_both_paths(
    change: dict[str, Any],
) -> None:
    completion = gemini_with_call(**change)
    body = stream_of(completion).replace('"id": "", "type"', '"type"')
    entry = BY_ID[GEMINI]
    plain, sent, _ = await run_agent(
        entry, lambda r: httpx.Response(200, json=completion), stream=False
    )
    streamed, _, events = await run_agent(
        entry,
        lambda r: httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=body.encode()
        ),
        stream=True,
    )
    assert plain == streamed
    call_id = sent["messages"][-2]["tool_calls"][0]["id"]
    assert call_id.startswith("call_")
    from agentkit import ToolCallComplete, ToolCallOpened

    opened = [e for e in events if isinstance(e, ToolCallOpened)]
    complete = [e for e in events if isinstance(e, ToolCallComplete)]
    assert [e.tool_call_id for e in opened] == [e.tool_call_id for e in complete] == [call_id]
    validate_request(sent, forbid_unknown_keys=True)


@pytest.mark.anyio
@pytest.mark.allow_unknown_request_keys  # extra_content is Gemini's, not in OpenAI's spec
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
async def test_a_thought_signature_goes_back_with_its_call(stream: bool) -> None:
    # Synthetic: the shape Gemini's OpenAI-compatible endpoint documents for the
    # thought signature of a call, put on the recorded Gemini call.
    signature = {"google": {"thought_signature": "AVSoXO4AzAXs7GGvOY63"}}
    completion = gemini_with_call(id="call_1", extra_content=signature)
    if stream:
        chunks = [json.loads(d) for d in sse_datas(stream_of(completion))]
        for chunk in chunks:
            for delta in chunk["choices"][0]["delta"].get("tool_calls", []):
                if "id" in delta:
                    delta["extra_content"] = signature
        body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        answer = lambda r: httpx.Response(  # noqa: E731
            200, headers={"content-type": "text/event-stream"}, content=body.encode()
        )
    else:
        answer = lambda r: httpx.Response(200, json=completion)  # noqa: E731
    _, sent, _ = await run_agent(BY_ID[GEMINI], answer, stream)
    assert sent["messages"][-2]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_current_time", "arguments": "{}"},
            "extra_content": signature,
        }
    ]


def test_parallel_calls_of_one_tool_without_index_or_id_stay_apart() -> None:
    from agentkit._run.assemble import Assembler
    from agentkit._wire.chunks import ChatCompletionChunk

    # Synthetic, in the shape of the Gemini recording's call: two whole calls of one
    # tool in one delta, with neither index nor id.
    calls = [
        {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
    ]
    chunk = {"id": "c", "created": 0, "model": "m", "choices": [{"delta": {"tool_calls": calls}}]}
    assembler = Assembler(1)
    assembler.feed(ChatCompletionChunk.model_validate(chunk))
    got = assembler.message().tool_calls or []
    assert [c.tool_input for c in got] == ['{"city": "Paris"}', '{"city": "Rome"}']
    assert len({c.id for c in got}) == 2
    # A name repeated with each piece of one call's arguments is still one call.
    pieces = ['{"city": ', '"Paris"}']
    assembler = Assembler(1)
    for piece in pieces:
        delta = {"tool_calls": [{"function": {"name": "get_weather", "arguments": piece}}]}
        chunk = {"id": "c", "created": 0, "model": "m", "choices": [{"delta": delta}]}
        assembler.feed(ChatCompletionChunk.model_validate(chunk))
    assert [c.tool_input for c in assembler.message().tool_calls or []] == ['{"city": "Paris"}']


def test_null_identity_fields_a_missing_created_and_a_null_delta_are_accepted() -> None:
    from agentkit import ChatCompletion, ChatCompletionChunk

    # Synthetic: the fields that only identify a response, null or left out, and
    # `"delta": null` on a finish chunk; what a chunk or completion must hold stays
    # required.
    chunk = ChatCompletionChunk.model_validate(
        {"id": None, "model": None, "choices": [{"delta": None, "finish_reason": "stop"}]}
    )
    assert (chunk.id, chunk.created, chunk.model) == ("", 0, "")
    assert chunk.choices[0].delta.content is None
    completion = ChatCompletion.model_validate(
        {"id": None, "model": "m", "choices": [{"message": {"role": "assistant"}}]}
    )
    assert completion.created == 0
    with pytest.raises(ValueError, match="id"):
        ChatCompletionChunk.model_validate({"model": "m", "choices": []})
    with pytest.raises(ValueError, match="choices"):
        ChatCompletion.model_validate({"id": "x", "model": "m"})


def test_a_null_token_count_is_zero() -> None:
    from agentkit import Usage

    # Synthetic: a server that sends null for a count it does not keep.
    usage = Usage.model_validate({"prompt_tokens": 3, "completion_tokens": None})
    assert (usage + usage).prompt_tokens == 6 and usage.completion_tokens == 0
