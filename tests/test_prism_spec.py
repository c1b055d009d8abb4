"""agentkit against Stoplight Prism serving OpenAI's own OpenAPI spec.

Prism (pinned in `tests/prism/package.json`) mocks `tests/openai_spec/chat-only.openapi.yaml`
in two processes started once per session: static (the schema's first-choice
values, the same body every time) and dynamic (`-d`: random bodies generated
from the schemas, with random extra properties that agentkit does not model).
Every request body agentkit sends is checked against the spec by `conftest.py`
on the way out, since Prism does not enforce this 3.1 spec's request schemas.

What is asserted of Prism's bodies: each one parses into agentkit's models and
dumps back (`model_dump(mode="json", exclude_unset=True)`) to exactly the JSON
received, unknown fields included; each is also checked against the spec's
JSON schema, and the test reports how many did not conform (none did in
practice: the generator keeps enums and required fields, but fills numbers
with values no server sends, such as negative token counts, which agentkit
accepts as they are). Streamed completions are framed as SSE by the test
transport, because Prism cannot write the spec's `text/event-stream` response
(see `prism_server.py`).

If Prism is not installed the tests fail with `PrismUnavailable`, naming what
is missing; they never skip.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from agentkit import (
    Agent,
    AgentKitError,
    AgentRunError,
    APIResponseValidationError,
    AuthenticationError,
    ChatClient,
    RateLimitError,
    ToolRetryError,
    tool,
)
from agentkit._run.history import check_history
from agentkit._wire.bodies import ModelList
from agentkit._wire.chunks import ChatCompletionChunk
from agentkit._wire.responses import ChatCompletion
from tests.openai_spec.validate import (
    ValidationError,
    validate_models_list,
    validate_response,
    validate_stream_chunk,
)
from tests.prism_server import API_KEY, CHUNK_PATH, Prism, PrismSSETransport, prism_servers

pytestmark = pytest.mark.anyio

MESSAGES = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="session")
def prism() -> Iterator[tuple[Prism, Prism]]:
    with prism_servers() as servers:
        yield servers


@pytest.fixture
def static(prism: tuple[Prism, Prism]) -> Prism:
    return prism[0]


@pytest.fixture
def dynamic(prism: tuple[Prism, Prism]) -> Prism:
    return prism[1]


class Through:
    """A ChatClient whose every request goes to one Prism, with Prism's bodies recorded."""

    def __init__(self, prism: Prism, *, api_key: str | None = API_KEY, seed: int = 0) -> None:
        self.transport = PrismSSETransport(prism, seed=seed)
        self.http = httpx.AsyncClient(transport=self.transport, timeout=30.0)
        self.client = ChatClient(
            base_url=prism.base_url, api_key=api_key, http_client=self.http, max_retries=0
        )

    def bodies(self, path_end: str) -> list[Any]:
        return [
            e.body
            for e in self.transport.exchanges
            if e.status == 200 and e.path.endswith(path_end)
        ]


@pytest.fixture
async def through_static(static: Prism) -> AsyncIterator[Through]:
    through = Through(static)
    async with through.http:
        yield through


def dumped(model: Any) -> Any:
    return model.model_dump(mode="json", exclude_unset=True)


# --- static: the same, predictable body every time --------------------------------------


async def test_create_parses_the_whole_static_body(through_static: Through) -> None:
    completion = await through_static.client.create(model="gpt-4o-mini", messages=MESSAGES)
    [body] = through_static.bodies("/chat/completions")
    assert dumped(completion) == body
    message = completion.choices[0].message
    assert message.content == "string" and completion.choices[0].finish_reason == "stop"
    # Fields agentkit does not model (annotations, audio, moderation, …) are kept.
    assert "annotations" in (message.model_extra or {})
    assert "moderation" in (completion.model_extra or {})


async def test_stream_parses_the_static_chunks(through_static: Through) -> None:
    async with through_static.client.stream(model="gpt-4o-mini", messages=MESSAGES) as chunks:
        received = [chunk async for chunk in chunks]
    bodies = through_static.bodies(CHUNK_PATH)
    assert received and [dumped(chunk) for chunk in received] == bodies


async def test_list_models_parses_the_static_list(through_static: Through) -> None:
    models = await through_static.client.list_models()
    [body] = through_static.bodies("/models")
    assert [dumped(model) for model in models] == body["data"]
    assert models[0].id == "string"


async def test_an_agent_run_through_prism_ends_with_a_typed_error_and_a_valid_history(
    through_static: Through,
) -> None:
    # Static Prism always calls the tool "string" with the arguments "string" (not JSON):
    # each call is answered with an error for the model, and the third failure in a row
    # (max_tool_retries=2) ends the run.
    @tool(name="string")
    def string(text: str) -> str:
        """A tool named like Prism's placeholder."""
        raise AssertionError("arguments that are not JSON must never reach the function")

    agent = Agent("gpt-4o-mini", client=through_static.client, tools=[string], max_turns=5)
    with pytest.raises(ToolRetryError) as caught:
        await agent.run("Hi")
    check_history(caught.value.messages)
    answers = [m for m in caught.value.messages if m.role == "tool"]
    assert len(answers) == 3 and "not valid JSON" in str(answers[0].content)
    assert len(through_static.bodies("/chat/completions")) == 3


async def test_a_streamed_agent_run_through_prism(through_static: Through) -> None:
    agent = Agent("gpt-4o-mini", client=through_static.client, max_turns=3)
    async with agent.run_stream("Hi") as stream:
        with pytest.raises(AgentKitError) as caught:
            async for _ in stream:
                pass
    # Prism's single static chunk calls a tool with no name; whatever the loop makes of
    # it, it is one of agentkit's errors and the history holds.
    if isinstance(caught.value, AgentRunError):
        check_history(caught.value.messages)
    check_history(stream.state.messages)


async def test_a_missing_key_is_an_authentication_error(static: Prism) -> None:
    through = Through(static, api_key="")
    async with through.http:
        with pytest.raises(AuthenticationError) as caught:
            await through.client.create(model="gpt-4o-mini", messages=MESSAGES)
    assert caught.value.status_code == 401


async def test_the_spec_s_429_is_a_rate_limit_error(through_static: Through) -> None:
    with pytest.raises(RateLimitError) as caught:
        await through_static.client.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers={"prefer": "code=429"}
        )
    assert caught.value.status_code == 429


# --- dynamic: random bodies generated from the schemas ----------------------------------

DYNAMIC_BODIES = 200


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_at_least_200_random_bodies_parse_with_nothing_lost(
    dynamic: Prism, anyio_backend: str
) -> None:
    """One backend only: parsing does not depend on it, and Prism takes ~0.2 s to make
    a completion (list_models and chunks are fast, so they make up the count)."""
    through = Through(dynamic, seed=7)
    through.transport.chunks = (5, 10)
    async with through.http:
        for _ in range(20):
            completion = await through.client.create(model="gpt-4o-mini", messages=MESSAGES)
            assert dumped(completion) == through.transport.exchanges[-1].body
        for _ in range(10):
            async with through.client.stream(model="gpt-4o-mini", messages=MESSAGES) as chunks:
                received = [dumped(chunk) async for chunk in chunks]
            count = len(received)
            assert received == [e.body for e in through.transport.exchanges[-count:]]
        while len(through.transport.exchanges) < DYNAMIC_BODIES + 20:
            models = await through.client.list_models()
            assert [dumped(m) for m in models] == through.transport.exchanges[-1].body["data"]

    checks = {
        "/chat/completions": (ChatCompletion, validate_response),
        CHUNK_PATH: (ChatCompletionChunk, validate_stream_chunk),
        "/models": (ModelList, validate_models_list),
    }
    parsed = 0
    off_spec: list[str] = []
    for exchange in through.transport.exchanges:
        assert exchange.status == 200, exchange
        model, validate = next(v for k, v in checks.items() if exchange.path.endswith(k))
        # The round trip again, from the JSON text, on the wrapper models too.
        text = json.dumps(exchange.body)
        assert dumped(model.model_validate_json(text)) == exchange.body
        parsed += 1
        try:
            validate(exchange.body)
        except ValidationError as exc:
            off_spec.append(f"{exchange.path}: {exc.message[:120]}")
    assert parsed >= DYNAMIC_BODIES
    # Prism's generator is expected to follow the schema; if that changes, the bodies
    # above still had to parse, and this says what Prism got wrong.
    assert not off_spec, "\n".join(off_spec[:10])


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
# An assistant message goes back with its tool calls as received, and Prism fills them
# with random extra keys; the spec's schemas allow them (they are open), only the
# conftest's stricter no-unknown-keys lint does not.
@pytest.mark.allow_unknown_request_keys
async def test_agent_runs_on_random_responses_end_cleanly(
    dynamic: Prism, anyio_backend: str
) -> None:
    @tool
    def lookup(key: str) -> str:
        """Look a key up."""
        return key

    through = Through(dynamic, seed=11)
    outcomes: dict[str, int] = {}
    async with through.http:
        agent = Agent("gpt-4o-mini", client=through.client, tools=[lookup], max_turns=3)
        for i in range(12):
            try:
                if i % 2:
                    result = await agent.run("Hi")
                    messages = result.messages
                else:
                    async with agent.run_stream("Hi") as stream:
                        async for _ in stream:
                            pass
                    messages = stream.result.messages
                name = "completed"
            except AgentRunError as exc:
                messages, name = exc.messages, type(exc).__name__
            except (APIResponseValidationError, AgentKitError) as exc:
                messages, name = None, type(exc).__name__
            outcomes[name] = outcomes.get(name, 0) + 1
            if messages is not None:
                check_history(messages)
    assert sum(outcomes.values()) == 12, outcomes
