"""Secrets stay out of what agentkit shows, in whole and in part.

Row 6: a key quoted back by a server is masked before the quote is cut, so no
run of 8 of its characters survives, wherever it sits around the cut. Row 7:
a URL is shown without user info and with its query values masked, in the
client's repr, error messages and log lines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from agentkit import APIError, ChatClient, UserError
from agentkit._redact import display_url, scrub, scrub_value, secrets_of

SECRET = "7c1e0f9a4b3d2e8f6a5b9d0c1e2f"
KEY = f"sk-proj-{SECRET}"
PASSWORD = "pa55-w0rd-9f8e7d6c"
QUERY_KEY = "qk-4e5f6a7b8c9d0e1f"
AZURE_KEY = "az-0123456789abcdef0123"
USER = [{"role": "user", "content": "Hi"}]


def fragments(secret: str) -> Iterator[str]:
    """Every run of 8 characters of `secret`."""
    return (secret[i : i + 8] for i in range(len(secret) - 7))


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        for piece in fragments(secret):
            assert piece not in text, f"{piece!r} of a secret shown in: {text[:400]!r}"


def shown(exc: BaseException) -> str:
    """Everything an error shows: str, repr, and the attributes a handler may print.

    Not `request` and `response`: those are the live httpx objects, as sent and
    received (pickling reduces them; see test_exceptions_pickle.py).
    """
    texts = [str(exc), repr(exc)]
    for name, value in vars(exc).items():
        if name not in ("request", "response"):
            texts.append(json.dumps(value) if name == "body" else repr(value))
    return "\n".join(texts)


def client_for(handler: Callable[[httpx.Request], httpx.Response], **kwargs: Any) -> ChatClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ChatClient(
        kwargs.pop("base_url", "https://llm.test/v1"),
        api_key=kwargs.pop("api_key", KEY),
        http_client=http,
        max_retries=kwargs.pop("max_retries", 0),
        **kwargs,
    )


async def failure(client: ChatClient, *, stream: bool = False) -> APIError:
    with pytest.raises(APIError) as info:
        if stream:
            async with client.stream(model="m", messages=USER) as chunks:
                async for _ in chunks:
                    pass
        else:
            await client.create(model="m", messages=USER)
    await client._http.aclose()
    return info.value


# --- row 6: masked before cut, every offset ------------------------------------------

# (cut, how the body reaches the message)
CUTS = {
    "status page": 300,  # a non-JSON error page, shortened to 300 characters
    "200 not JSON": 200,  # a 200 whose body is not JSON: quoted up to 200
    "stream event not JSON": 200,  # an SSE event that is not JSON: quoted up to 200
}


def respond(kind: str, body: str) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if kind == "status page":
            return httpx.Response(500, text=body)
        if kind == "200 not JSON":
            return httpx.Response(200, text=body)
        stream = f"data: {body}\n\ndata: [DONE]\n\n"
        return httpx.Response(200, text=stream, headers={"content-type": "text/event-stream"})

    return handler


@pytest.mark.anyio
@pytest.mark.parametrize("kind", sorted(CUTS))
async def test_a_key_straddling_the_cut_shows_no_8_characters(kind: str) -> None:
    cut = CUTS[kind]
    # The message quotes the body after a prefix of its own; the cut applies to the body.
    for offset in range(cut - len(KEY) - 2, cut + 3):
        body = "x" * offset + KEY + " tail"
        client = client_for(respond(kind, body))
        error = await failure(client, stream=kind.startswith("stream"))
        assert_hidden(shown(error), SECRET)


@pytest.mark.anyio
async def test_a_key_the_server_cut_itself_is_masked() -> None:
    # A proxy that quotes the first 20 characters of the key it was sent.
    partial = KEY[:20]
    body = {"error": {"message": f"Incorrect API key provided: {partial}...", "type": "x"}}
    client = client_for(lambda request: httpx.Response(401, json=body))
    error = await failure(client)
    assert_hidden(shown(error), SECRET)
    assert "Incorrect API key provided: <redacted>..." in str(error)


@pytest.mark.anyio
async def test_azure_api_key_header_and_query_key_are_masked_in_quoted_bodies() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        echoed = f"got {request.headers['api-key']} and {QUERY_KEY} from {request.url}"
        return httpx.Response(400, json={"error": {"message": echoed}})

    client = client_for(
        handler,
        api_key=None,
        base_url=f"https://{PASSWORD[:4]}:{PASSWORD}@llm.test/v1?api-version=2024-10-21&key={QUERY_KEY}",
        default_headers={"api-key": AZURE_KEY},
    )
    error = await failure(client)
    assert_hidden(shown(error), AZURE_KEY, QUERY_KEY, PASSWORD)
    assert "api-version=***" in str(error)


@pytest.mark.anyio
async def test_a_key_in_an_error_event_of_a_stream_is_masked() -> None:
    event = json.dumps({"error": {"message": f"bad key {KEY[3:30]}", "type": "server_error"}})

    def handler(request: httpx.Request) -> httpx.Response:
        text = f"data: {event}\n\n"
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    error = await failure(client_for(handler), stream=True)
    assert_hidden(shown(error), SECRET)


def test_scrub_marks_every_run_of_8_or_more() -> None:
    secrets = (KEY,)
    assert scrub("no secret here", secrets) == "no secret here"
    assert scrub(f"a {KEY} b", secrets) == "a <redacted> b"
    assert scrub(f"a {KEY[:8]} b {KEY[-7:]}", secrets) == f"a <redacted> b {KEY[-7:]}"
    assert scrub(f"{KEY}{KEY}", secrets) == "<redacted>"
    assert scrub_value({"e": [KEY, 1], "k": None}, secrets) == {"e": ["<redacted>", 1], "k": None}
    untouched = {"e": ["x", 1]}
    assert scrub_value(untouched, secrets) is untouched


def test_scrub_value_of_a_big_body_looks_at_its_text_once() -> None:
    body = {"data": [f"value {i}" for i in range(50_000)], "n": 12345678, "f": 1.5}
    assert scrub_value(body, (KEY, "12345678")) is body
    body["data"][7] = f"echo {KEY[2:20]}"
    masked = scrub_value(body, (KEY, "12345678"))
    assert masked["data"][7] == "echo <redacted>" and masked["n"] == 12345678
    assert masked["data"][8] == "value 8" and body["data"][7] == f"echo {KEY[2:20]}"
    # A secret JSON would escape is looked for string by string.
    quoted = 'ab"cdefgh12'
    assert scrub_value({"k": [f"x {quoted}"]}, (quoted,)) == {"k": ["x <redacted>"]}


def test_secrets_of_a_request() -> None:
    headers = httpx.Headers(
        {"authorization": f"Bearer {KEY}", "x-api-key": AZURE_KEY, "accept": "application/json"}
    )
    url = f"https://bob:{PASSWORD}@h/v1?api-version=2024-10-21&key={QUERY_KEY}&page=2"
    found = secrets_of(headers, url)
    assert {KEY, AZURE_KEY, PASSWORD, QUERY_KEY} <= set(found)
    assert "application/json" not in found and "2024-10-21" not in found
    assert all(len(secret) >= 8 for secret in found)


# --- row 7: URLs shown without secrets ---------------------------------------------

SECRET_URL = f"https://bob:{PASSWORD}@llm.test/v1?api-key={QUERY_KEY}"


def test_display_url() -> None:
    assert display_url(SECRET_URL) == "https://llm.test/v1?api-key=***"
    assert display_url(httpx.URL(SECRET_URL)) == "https://llm.test/v1?api-key=***"
    assert display_url("http://h:8080/p?a=1&flag#frag") == "http://h:8080/p?a=***&***"
    assert display_url("https://h/v1") == "https://h/v1"


def test_repr_of_a_client_hides_url_credentials() -> None:
    client = ChatClient(SECRET_URL, api_key=KEY)
    text = repr(client)
    assert "https://llm.test/v1?api-key=***" in text
    assert_hidden(text, PASSWORD, QUERY_KEY, SECRET)


@pytest.mark.parametrize(
    "url",
    [
        f"ftp://bob:{PASSWORD}@llm.test/v1?api-key={QUERY_KEY}",
        f"http://bob:{PASSWORD}@[::zz]/v1?api-key={QUERY_KEY}",
        f"http://bob:{PASSWORD}@llm.test:port/v1?api-key={QUERY_KEY}",
    ],
)
def test_an_invalid_base_url_is_not_quoted(url: str) -> None:
    with pytest.raises(UserError) as info:
        ChatClient(url)
    assert_hidden(str(info.value), PASSWORD, QUERY_KEY)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "failing",
    ["status", "connection", "timeout", "not JSON", "not a completion", "stream ended"],
)
async def test_errors_and_logs_hide_url_credentials(
    failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agentkit")

    def handler(request: httpx.Request) -> httpx.Response:
        if failing == "connection":
            raise httpx.ConnectError(f"cannot connect to {request.url}", request=request)
        if failing == "timeout":
            raise httpx.ReadTimeout(f"timed out reading {request.url}", request=request)
        if failing == "status":
            return httpx.Response(503, text=f"upstream {request.url} is down")
        if failing == "not JSON":
            return httpx.Response(200, text=f"<p>{request.url}</p>")
        if failing == "stream ended":
            return httpx.Response(
                200, text=": hi\n\n", headers={"content-type": "text/event-stream"}
            )
        return httpx.Response(200, json={"url": str(request.url)})

    client = client_for(handler, base_url=SECRET_URL, max_retries=1)
    import agentkit._client.client as client_module

    async def no_sleep(seconds: float) -> None:
        pass

    original, client_module._sleep = client_module._sleep, no_sleep  # type: ignore[assignment]
    try:
        error = await failure(client, stream=failing == "stream ended")
    finally:
        client_module._sleep = original  # type: ignore[assignment]
    text = shown(error) + "\n" + "\n".join(r.getMessage() for r in caplog.records)
    assert "llm.test/v1" in text
    assert_hidden(text, PASSWORD, QUERY_KEY, SECRET)


@pytest.mark.anyio
async def test_debug_log_of_a_request_hides_url_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="agentkit")
    completion = {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi"},
                "finish_reason": "stop",
            }
        ],
    }
    client = client_for(lambda request: httpx.Response(200, json=completion), base_url=SECRET_URL)
    await client.create(model="m", messages=USER)
    await client._http.aclose()
    lines = [r.getMessage() for r in caplog.records if r.name == "agentkit"]
    assert any("https://llm.test/v1/chat/completions?api-key=***" in line for line in lines)
    assert_hidden("\n".join(lines), PASSWORD, QUERY_KEY)


def test_mcp_server_label_shows_the_url_without_secrets() -> None:
    mcp = pytest.importorskip("agentkit.mcp")
    server = mcp.MCPServerHTTP(SECRET_URL)
    assert server.name == "https://llm.test/v1?api-key=***"
    assert_hidden(repr(server) + server.name, PASSWORD, QUERY_KEY)
