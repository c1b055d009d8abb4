"""`agentkit.serve` over a real uvicorn server: the official `openai` client and agentkit's
own `ChatClient` talk to served agents, plain and streaming; every body the server sends
is checked against the spec (see `tests.serve_server.SpecCheck`)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel

from agentkit import (
    Agent,
    AssistantMessage,
    ChatClient,
    ChatCompletion,
    Choice,
    InternalServerError,
    NotFoundError,
    TextDelta,
    Usage,
    tool,
)
from agentkit.serve import AgentApp, create_app
from agentkit.testing import FunctionModel, ModelRequest, Reply, call
from tests.serve_server import Served, check_completion, check_error, check_sse, serving

KEY = "sk-test-serve"


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first.
        b: The second.
    """
    return a + b


def adder(request: ModelRequest) -> Reply:
    """Calls `add` once, then answers with its result."""
    last = request.messages[-1]
    if last.role == "tool":
        return f"The sum is {last.content}."
    return call("add", a=2, b=3)


def talker(request: ModelRequest) -> Reply:
    """Writes a line before calling the tool, then answers."""
    last = request.messages[-1]
    if last.role == "tool":
        return f"It is {last.content}."
    message = call("add", a=1, b=1)
    message.content = "Let me add that up."
    return message


def refuser(request: ModelRequest) -> Reply:
    return AssistantMessage(refusal="I can't help with that.")


def cut_off(request: ModelRequest) -> Reply:
    return ChatCompletion(
        id="x",
        created=0,
        model="m",
        choices=[
            Choice(message=AssistantMessage(content="A very long ans"), finish_reason="length")
        ],
        usage=Usage(prompt_tokens=7, completion_tokens=4, total_tokens=11),
    )


def looper(request: ModelRequest) -> Reply:
    return call("add", a=len(request.messages), b=1)


def broken(request: ModelRequest) -> Reply:
    raise RuntimeError("database password is hunter2")


class Sum(BaseModel):
    total: int


def structured(request: ModelRequest) -> Reply:
    if request.messages[-1].role == "tool":
        return json.dumps({"total": int(str(request.messages[-1].content))})
    return call("add", a=20, b=22)


MODELS: dict[str, FunctionModel] = {}


def build_app() -> AgentApp:
    def model(name: str, fn: Any) -> FunctionModel:
        MODELS[name] = FunctionModel(fn, model_name=name)
        return MODELS[name]

    agents: dict[str, Agent[Any]] = {
        "adder": Agent("m", client=model("adder", adder), tools=[add], instructions="Add."),
        "talker": Agent("m", client=model("talker", talker), tools=[add]),
        "refuser": Agent("m", client=model("refuser", refuser)),
        "cut-off": Agent("m", client=model("cut-off", cut_off)),
        "looper": Agent("m", client=model("looper", looper), tools=[add], max_turns=2),
        "broken": Agent("m", client=model("broken", broken)),
        "structured": Agent(
            "m", client=model("structured", structured), tools=[add], output_type=Sum
        ),
    }
    return create_app(agents, api_keys=[KEY])


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with serving(build_app()) as s:
        yield s


@pytest.fixture
def sync_openai(served: Served) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=served.url, api_key=KEY, max_retries=0) as client:
        yield client


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def post(served: Served, body: dict[str, Any], key: str | None = KEY) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{served.url}/chat/completions", json=body, headers=headers, timeout=10)


# --- the official openai client, synchronous -----------------------------------------------


def test_openai_sync_completion_runs_tools_on_the_server(
    served: Served, sync_openai: openai.OpenAI
) -> None:
    raw = sync_openai.chat.completions.with_raw_response.create(
        model="adder", messages=user("2 + 3?")
    )
    check_completion(json.loads(raw.text))
    reply = raw.parse()
    assert reply.object == "chat.completion"
    assert reply.model == "adder"
    assert reply.choices[0].message.content == "The sum is 5."
    assert reply.choices[0].message.tool_calls is None
    assert reply.choices[0].finish_reason == "stop"
    # Two model requests, 10 prompt tokens each (see FunctionModel): usage is summed.
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.total_tokens) == (20, 26)
    sent = MODELS["adder"].requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]


def test_openai_sync_stream(served: Served, sync_openai: openai.OpenAI) -> None:
    chunks = list(
        sync_openai.chat.completions.create(
            model="adder",
            messages=user("2 + 3?"),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The sum is 5."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 26
    assert len({c.id for c in chunks}) == 1


def test_stream_without_include_usage_has_no_usage_chunk(served: Served) -> None:
    response = post(served, {"model": "adder", "messages": user("2 + 3?"), "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = check_sse(response.text)
    assert all(c["choices"] and "usage" not in c for c in chunks)


def test_history_maps_to_message_history_and_prompt(served: Served) -> None:
    messages = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": [{"type": "text", "text": "2 + 3?"}]},
    ]
    response = post(served, {"model": "adder", "messages": messages, "temperature": 0.2})
    assert response.status_code == 200, response.text
    first = MODELS["adder"].requests[-2]
    # The agent's instructions lead; the client's system message follows them.
    assert first["messages"][0] == {"role": "system", "content": "Add."}
    assert first["messages"][1:] == messages
    assert "temperature" not in first  # sampling is the agent's own


def test_text_of_every_turn_is_joined_the_same_way_streamed_or_not(
    served: Served, sync_openai: openai.OpenAI
) -> None:
    plain = sync_openai.chat.completions.create(model="talker", messages=user("1 + 1?"))
    expected = "Let me add that up.\n\nIt is 2."
    assert plain.choices[0].message.content == expected
    streamed = sync_openai.chat.completions.create(
        model="talker", messages=user("1 + 1?"), stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in streamed) == expected


def test_structured_output_agent_answers_its_json(
    served: Served, sync_openai: openai.OpenAI
) -> None:
    plain = sync_openai.chat.completions.create(model="structured", messages=user("20 + 22?"))
    assert json.loads(plain.choices[0].message.content or "") == {"total": 42}
    streamed = list(
        sync_openai.chat.completions.create(
            model="structured", messages=user("20 + 22?"), stream=True
        )
    )
    pieces = [c.choices[0].delta.content for c in streamed if c.choices[0].delta.content]
    assert pieces == ['{"total": 42}']
    # A client asking for JSON gets it from a structured agent, and a 400 from a text one.
    schema = {"type": "json_object"}
    ok = post(served, {"model": "structured", "messages": user("x"), "response_format": schema})
    assert ok.status_code == 200
    refused = post(served, {"model": "adder", "messages": user("x"), "response_format": schema})
    assert refused.status_code == 400
    assert check_error(refused.json())["param"] == "response_format.type"


# --- how a run's end becomes a response ------------------------------------------------------


def test_refusal_is_a_normal_completion(served: Served, sync_openai: openai.OpenAI) -> None:
    reply = sync_openai.chat.completions.create(model="refuser", messages=user("Do harm"))
    message = reply.choices[0].message
    assert (message.content, message.refusal) == (None, "I can't help with that.")
    assert reply.choices[0].finish_reason == "stop"
    chunks = list(
        sync_openai.chat.completions.create(model="refuser", messages=user("x"), stream=True)
    )
    assert "".join(c.choices[0].delta.refusal or "" for c in chunks) == "I can't help with that."


def test_cut_off_answer_finishes_with_length(served: Served, sync_openai: openai.OpenAI) -> None:
    reply = sync_openai.chat.completions.create(model="cut-off", messages=user("Tell me all"))
    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == "A very long ans"
    assert reply.usage is not None and reply.usage.total_tokens == 11
    chunks = list(
        sync_openai.chat.completions.create(model="cut-off", messages=user("x"), stream=True)
    )
    assert chunks[-1].choices[0].finish_reason == "length"


def test_max_turns_is_a_500_that_clients_do_not_retry(served: Served) -> None:
    before = len(MODELS["looper"].requests)
    with openai.OpenAI(base_url=served.url, api_key=KEY, max_retries=2) as client:
        with pytest.raises(openai.InternalServerError) as caught:
            client.chat.completions.create(model="looper", messages=user("loop"))
    assert caught.value.status_code == 500
    assert caught.value.code == "max_turns_exceeded"
    assert caught.value.response.headers["x-should-retry"] == "false"
    # Two turns of one run: the client did not run the agent again.
    assert len(MODELS["looper"].requests) - before == 2


def test_internal_errors_do_not_leak(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    response = post(served, {"model": "broken", "messages": user("hi")})
    assert response.status_code == 500
    error = check_error(response.json())
    assert error["code"] == "internal_error"
    assert "hunter2" not in response.text and "RuntimeError" not in response.text


def test_a_failure_in_a_stream_ends_it_with_an_error_event(served: Served) -> None:
    response = post(served, {"model": "looper", "messages": user("loop"), "stream": True})
    assert response.status_code == 200
    events = [line[6:] for line in response.text.split("\n") if line.startswith("data: ")]
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert check_error(last)["code"] == "max_turns_exceeded"


# --- models --------------------------------------------------------------------------------


def test_models_lists_the_served_agents(served: Served, sync_openai: openai.OpenAI) -> None:
    names = [m.id for m in sync_openai.models.list()]
    assert names == ["adder", "talker", "refuser", "cut-off", "looper", "broken", "structured"]
    assert sync_openai.models.retrieve("adder").owned_by == "agentkit"
    with pytest.raises(openai.NotFoundError):
        sync_openai.models.retrieve("nope")


# --- async clients, on both backends --------------------------------------------------------


# openai's AsyncStream leaves its inner SSE generators unfinished after `[DONE]`; trio
# reports them when they are garbage collected. That is the client's, not the server's.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <async_generator object:pytest.PytestUnraisableExceptionWarning"
)
@pytest.mark.anyio
async def test_openai_async_plain_and_streaming(served: Served) -> None:
    async with openai.AsyncOpenAI(base_url=served.url, api_key=KEY, max_retries=0) as client:
        reply = await client.chat.completions.create(model="adder", messages=user("2 + 3?"))
        assert reply.choices[0].message.content == "The sum is 5."
        stream = await client.chat.completions.create(
            model="adder", messages=user("2 + 3?"), stream=True
        )
        text = ""
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
        assert text == "The sum is 5."


@pytest.mark.anyio
async def test_chat_client_plain_streaming_and_models(served: Served) -> None:
    async with ChatClient(base_url=served.url, api_key=KEY, max_retries=0) as client:
        reply = await client.create(model="adder", messages=user("2 + 3?"))
        assert reply.choices[0].message.content == "The sum is 5."
        assert reply.usage is not None and reply.usage.total_tokens == 26
        text = ""
        async with client.stream(
            model="adder", messages=user("2 + 3?"), stream_options={"include_usage": True}
        ) as chunks:
            async for chunk in chunks:
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
                else:
                    assert chunk.usage is not None and chunk.usage.total_tokens == 26
        assert text == "The sum is 5."
        assert [m.id for m in await client.list_models()][:2] == ["adder", "talker"]
        with pytest.raises(NotFoundError) as missing:
            await client.create(model="nope", messages=user("hi"))
        assert missing.value.code == "model_not_found"
        with pytest.raises(InternalServerError) as failed:
            await client.create(model="looper", messages=user("loop"))
        assert failed.value.code == "max_turns_exceeded"


@pytest.mark.anyio
async def test_an_agent_whose_model_is_a_served_agent(served: Served) -> None:
    before = len(MODELS["adder"].requests)
    async with ChatClient(base_url=served.url, api_key=KEY) as client:
        outer = Agent("adder", client=client, instructions="Delegate to the adder.")
        result = await outer.run("What is 2 + 3?")
        assert result.output == "The sum is 5."
        assert result.turns == 1 and result.usage.total_tokens == 26
        # The tool call ran on the server: two requests there, none of its calls here.
        assert len(MODELS["adder"].requests) - before == 2
        assert [m.role for m in result.messages] == ["user", "assistant"]  # instructions aside

        async with outer.run_stream("What is 2 + 3?") as run:
            text = "".join([e.text async for e in run if isinstance(e, TextDelta)])
        assert text == "The sum is 5."
        assert run.result.output == "The sum is 5."
        assert run.result.usage.total_tokens == 26


# --- the example ---------------------------------------------------------------------------


def test_the_clock_service_example_answers_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENTKIT_SERVE_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "examples.service", raising=False)
    service = importlib.import_module("examples.service")
    with serving(service.app) as s, openai.OpenAI(base_url=s.url, api_key="-") as client:
        reply = client.chat.completions.create(
            model="clock", messages=[{"role": "user", "content": "What time is it in Tokyo?"}]
        )
    assert (reply.choices[0].message.content or "").startswith("It is ")
    assert "in Tokyo" in (reply.choices[0].message.content or "")
