"""`agentkit.serve` as an attack surface: what a web page, a large body, a tool's error
and a client's content parts can and cannot do; over a real uvicorn server on
127.0.0.1, every body checked against the spec."""

from __future__ import annotations

import gc
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from agentkit import Agent, ModelRetry, UserError, tool
from agentkit.serve import ContentPolicy, create_app
from agentkit.serve._policy import public_host
from agentkit.testing import FunctionModel, ModelRequest, Reply, call
from tests.serve_server import Served, check_error, check_sse, serving


def echo(request: ModelRequest) -> Reply:
    return f"You said: {request.messages[-1].content}"


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


ECHO = FunctionModel(echo)


@pytest.fixture(scope="module")
def keyless() -> Iterator[Served]:
    """The README's quick start: a keyless app on 127.0.0.1."""
    with serving(create_app({"echo": Agent("m", client=ECHO)})) as s:
        yield s


def post(served: Served, **kw: Any) -> httpx.Response:
    return httpx.post(f"{served.url}/chat/completions", timeout=30, **kw)


BODY = json.dumps({"model": "echo", "messages": user("hi")})


# --- row 1: a web page cannot drive a keyless local server -------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/json-patch+json",
        None,
    ],
)
def test_a_body_not_declared_json_is_415_and_runs_nothing(
    keyless: Served, content_type: str | None
) -> None:
    before = len(ECHO.requests)
    headers = {} if content_type is None else {"content-type": content_type}
    response = post(keyless, content=BODY.encode(), headers=headers)
    assert response.status_code == 415, response.text
    error = check_error(response.json())
    assert error["code"] == "unsupported_media_type"
    assert "application/json" in error["message"]
    assert len(ECHO.requests) == before  # the agent did not run


def test_form_and_multipart_posts_as_a_page_sends_them_are_415(keyless: Served) -> None:
    form = post(keyless, data={"model": "echo", "messages": "hi"})
    multipart = post(keyless, files={"model": (None, "echo")})
    assert (form.status_code, multipart.status_code) == (415, 415)


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"]
)
def test_json_content_types_pass(keyless: Served, content_type: str) -> None:
    response = post(keyless, content=BODY.encode(), headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "You said: hi"


def test_no_cors_preflight_is_granted(keyless: Served) -> None:
    """A page's cross-origin JSON POST needs a preflight first; it is never granted."""
    response = httpx.options(
        f"{keyless.url}/chat/completions",
        headers={
            "origin": "https://evil.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert response.status_code == 405
    assert not any(name.startswith("access-control-") for name in response.headers)
    posted = post(
        keyless,
        content=BODY.encode(),
        headers={"content-type": "application/json", "origin": "https://evil.example"},
    )
    assert "access-control-allow-origin" not in posted.headers


@pytest.mark.parametrize(
    "host",
    ["evil.example", "evil.example:8000", "localhost.evil.example", "127.0.0.1.nip.io", "0.0.0.0"],
)
def test_a_keyless_app_answers_only_to_loopback_host_names(keyless: Served, host: str) -> None:
    """A page on a name the attacker controls, rebound to 127.0.0.1, sends its own Host."""
    before = len(ECHO.requests)
    headers = {"host": host, "content-type": "application/json"}
    for response in (
        post(keyless, content=BODY.encode(), headers=headers),
        httpx.get(f"{keyless.url}/models", headers={"host": host}),
        httpx.get(f"{keyless.url}/nowhere", headers={"host": host}),
    ):
        assert response.status_code == 400, response.text
        error = check_error(response.json())
        assert error["code"] == "host_not_allowed"
        assert "allowed_hosts" in error["message"]
    assert len(ECHO.requests) == before


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "LOCALHOST:1", "127.0.0.1:9", "[::1]:8000", "[::1]"]
)
def test_loopback_names_with_any_port_are_accepted(keyless: Served, host: str) -> None:
    response = post(
        keyless, content=BODY.encode(), headers={"host": host, "content-type": "application/json"}
    )
    assert response.status_code == 200, response.text


def test_a_request_without_host_is_refused_by_a_keyless_app(keyless: Served) -> None:
    with socket.create_connection(("127.0.0.1", keyless.port), timeout=10) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 400"), reply[:100]
    assert b"host_not_allowed" in reply


def test_allowed_hosts_option() -> None:
    app = create_app(
        {"echo": Agent("m", client=FunctionModel(echo))},
        allowed_hosts=["api.example.com", "*.corp.example"],
    )
    with serving(app) as s:

        def status(host: str) -> int:
            return httpx.get(f"{s.url}/models", headers={"host": host}).status_code

        assert status("api.example.com") == 200
        assert status("API.example.com:443") == 200
        assert status("a.b.corp.example") == 200
        assert status("corp.example") == 400
        assert status("localhost") == 400  # the list replaces the default
        assert status("api.example.com.evil") == 400
    anywhere = create_app({"echo": Agent("m", client=FunctionModel(echo))}, allowed_hosts="*")
    with serving(anywhere) as s:
        assert httpx.get(f"{s.url}/models", headers={"host": "x.example"}).status_code == 200


def test_an_app_with_keys_answers_any_host() -> None:
    """A page cannot send the key, so a name of its own gets it nowhere: 401."""
    app = create_app({"echo": Agent("m", client=FunctionModel(echo))}, api_keys="sk-h")
    with serving(app) as s:
        headers = {"host": "evil.example", "content-type": "application/json"}
        assert post(s, content=BODY.encode(), headers=headers).status_code == 401
        ok = post(s, content=BODY.encode(), headers={**headers, "authorization": "Bearer sk-h"})
        assert ok.status_code == 200


@pytest.mark.parametrize("bad", [[""], ["*.x*"], [3], ""])
def test_allowed_hosts_must_be_host_names(bad: Any) -> None:
    with pytest.raises(UserError, match="allowed_hosts"):
        create_app({"echo": Agent("m")}, allowed_hosts=bad)


def test_the_official_client_works_with_a_keyless_app_by_either_loopback_name(
    keyless: Served,
) -> None:
    for base in (keyless.url, f"http://localhost:{keyless.port}/v1"):
        with openai.OpenAI(base_url=base, api_key="-", max_retries=0) as client:
            reply = client.chat.completions.create(model="echo", messages=user("hi"))
            assert reply.choices[0].message.content == "You said: hi"
            chunks = list(
                client.chat.completions.create(model="echo", messages=user("hi"), stream=True)
            )
            assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: hi"
            assert [m.id for m in client.models.list()] == ["echo"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_readme_curl_command_works(keyless: Served) -> None:
    command = [
        "curl",
        "-sS",
        f"http://127.0.0.1:{keyless.port}/v1/chat/completions",
        "-H",
        "Content-Type: application/json",
        "-d",
        '{"model": "echo", "messages": [{"role": "user", "content": "hi"}]}',
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=30, check=True).stdout
    assert json.loads(out)["choices"][0]["message"]["content"] == "You said: hi"
    # curl's own default for -d is a form: refused.
    form = subprocess.run(command[:3] + command[5:], capture_output=True, text=True, timeout=30)
    assert json.loads(form.stdout)["error"]["code"] == "unsupported_media_type"


# --- row 2: cheap refusals first, large bodies off the event loop --------------------------------


def chain(calls: int, *, last_role: str = "user") -> list[dict[str, Any]]:
    """A history of one assistant message with `calls` tool calls, each answered."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "go"}]
    messages.append(
        {
            "role": "assistant",
            "tool_calls": [
                {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                for i in range(calls)
            ],
        }
    )
    messages += [{"role": "tool", "tool_call_id": f"c{i}", "content": "ok"} for i in range(calls)]
    messages.append({"role": last_role, "content": "and now?"})
    return messages


@pytest.mark.invalid_request_body
def test_an_unknown_model_is_404_before_the_messages_are_validated(keyless: Served) -> None:
    # Every message is invalid: a 404 means none of them was looked at.
    junk = [{"role": "robot"}] * 5000
    response = post(keyless, json={"model": "gpt-4o", "messages": junk})
    assert response.status_code == 404
    assert check_error(response.json())["code"] == "model_not_found"


@pytest.mark.invalid_request_body
def test_a_request_over_the_run_limit_is_429_before_its_body_is_parsed() -> None:
    release = threading.Event()
    started = threading.Event()

    @tool
    def hold() -> str:
        """Hold the run."""
        started.set()
        release.wait(10)
        return "done"

    def calls_hold(request: ModelRequest) -> Reply:
        return "ok" if request.messages[-1].role == "tool" else call("hold")

    agent = Agent("m", client=FunctionModel(calls_hold), tools=[hold])
    app = create_app({"hold": agent}, max_concurrent_runs=1)
    with serving(app) as s, ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, s, json={"model": "hold", "messages": user("x")})
        assert started.wait(10)
        # Not even JSON: a 429 (not a 400) shows the body was never parsed.
        refused = post(s, content=b"{not json", headers={"content-type": "application/json"})
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        unknown = post(s, json={"model": "nope", "messages": user("x")})
        assert unknown.status_code == 429
        release.set()
        assert first.result().status_code == 200
        assert post(s, json={"model": "hold", "messages": user("x")}).status_code == 200


def test_too_many_messages_is_400_naming_the_limit() -> None:
    app = create_app({"echo": Agent("m", client=FunctionModel(echo))}, max_messages=100)
    with serving(app) as s:
        many = [{"role": "user", "content": "x"}] * 101
        response = post(s, json={"model": "echo", "messages": many})
        assert response.status_code == 400
        error = check_error(response.json())
        assert (error["param"], error["code"]) == ("messages", "too_many_messages")
        assert "100" in error["message"]
        # 60 calls cannot be answered in 3 messages: refused before they are validated.
        calls = [*chain(60)[:2], {"role": "user", "content": "x"}]
        response = post(s, json={"model": "echo", "messages": calls})
        assert check_error(response.json())["param"] == "messages[1].tool_calls"
        assert "60 tool calls" in check_error(response.json())["message"]
        assert post(s, json={"model": "echo", "messages": many[:100]}).status_code == 200


def test_content_parts_count_toward_the_limit_and_tools_are_at_most_128() -> None:
    """One message cannot be made huge instead: its validation is one uninterrupted step."""
    app = create_app({"echo": Agent("m", client=FunctionModel(echo))}, max_messages=100)
    text = {"type": "text", "text": ""}
    with serving(app) as s:
        first = {"role": "user", "content": [text] * 60}
        response = post(s, json={"model": "echo", "messages": [first, first, *user("x")]})
        error = check_error(response.json())
        assert (error["param"], error["code"]) == ("messages[1].content", "too_many_messages")
        assert post(s, json={"model": "echo", "messages": [first, *user("x")]}).status_code == 200
        function = {"type": "function", "function": {"name": "f"}}
        many = post(s, json={"model": "echo", "messages": user("x"), "tools": [function] * 129})
        assert check_error(many.json())["param"] == "tools"
        ok = post(s, json={"model": "echo", "messages": user("x"), "tools": [function] * 128})
        assert ok.status_code == 200


@pytest.mark.invalid_request_body
def test_a_client_tool_is_still_validated(keyless: Served) -> None:
    bad = post(keyless, json={"model": "echo", "messages": user("x"), "tools": [{"type": "x"}]})
    assert bad.status_code == 400
    assert check_error(bad.json())["param"] == "tools[0].type"


@pytest.mark.slow
@pytest.mark.invalid_request_body
def test_a_million_empty_parts_are_refused_before_validation(keyless: Served) -> None:
    parts = [{"type": "text", "text": ""}] * 600_000  # ~15 MB
    started = time.perf_counter()
    response = post(keyless, json={"model": "echo", "messages": user(parts)})
    took = time.perf_counter() - started
    error = check_error(response.json())
    assert (error["param"], error["code"]) == ("messages[0].content", "too_many_messages")
    print(f"600k parts refused in {took:.2f} s")  # noqa: T201


def test_the_default_message_limit() -> None:
    app = create_app({"echo": Agent("m")})
    assert app.max_messages == 10_000
    with pytest.raises(UserError, match="max_messages"):
        create_app({"echo": Agent("m")}, max_messages=0)


def test_a_large_history_is_checked_once_by_the_served_run(keyless: Served) -> None:
    response = post(keyless, json={"model": "echo", "messages": chain(2000)})
    assert response.status_code == 200, response.text


def _best_time(fn: Any, repeat: int = 3) -> float:
    """The best of a few timings of `fn`, the garbage collector paused: its pauses depend
    on everything the test process holds, not on the work measured."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        gc.disable()
        try:
            started = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - started)
        finally:
            gc.enable()
    return best


@pytest.mark.slow
def test_parsing_a_request_grows_linearly() -> None:
    from agentkit.serve._protocol import parse_chat

    agents = {"echo": Agent("m")}

    def body(calls: int) -> bytes:
        return json.dumps({"model": "echo", "messages": chain(calls)}).encode()

    small, large = body(2_000), body(32_000)
    t_small = _best_time(lambda: parse_chat(small, agents, max_messages=None))
    t_large = _best_time(lambda: parse_chat(large, agents, max_messages=None))
    # 16 times the messages: linear is 16 times the time, quadratic 256 times.
    print(  # noqa: T201
        f"parse_chat: {t_small * 1e3:.1f} ms at 2k calls, {t_large * 1e3:.1f} ms at 32k"
    )
    assert t_large / t_small < 64, (t_small, t_large)


@pytest.mark.slow
@pytest.mark.invalid_request_body
def test_models_answers_while_a_large_body_is_parsed() -> None:
    app = create_app({"echo": Agent("m", client=FunctionModel(echo))}, max_messages=None)
    # ~9 MB; valid up to its last message, so it is parsed whole and then refused (no run).
    big = json.dumps({"model": "echo", "messages": chain(55_000, last_role="assistant")})
    with serving(app) as s, ThreadPoolExecutor(1) as pool:
        started = time.perf_counter()
        pending = pool.submit(
            post, s, content=big.encode(), headers={"content-type": "application/json"}
        )
        latencies: list[float] = []
        with httpx.Client(timeout=30) as http:
            while not pending.done() and len(latencies) < 500:
                asked = time.perf_counter()
                assert http.get(f"{s.url}/models").status_code == 200
                if not pending.done():  # answered while the big one was still in flight
                    latencies.append(time.perf_counter() - asked)
                time.sleep(0.005)
        response = pending.result()
        took = time.perf_counter() - started
    assert response.status_code == 400
    assert check_error(response.json())["param"] == "messages[55002].role"
    print(  # noqa: T201
        f"large body: {took:.2f} s; /v1/models meanwhile: {len(latencies)} answers, max "
        f"{max(latencies, default=0) * 1e3:.0f} ms"
    )
    assert latencies, "no /v1/models answer came while the large body was parsed"
    # Answered throughout, not once the parse was done.
    assert len(latencies) >= 3
    assert max(latencies) < took / 2


# --- row 12: a tool's exception text stays on the server -------------------------------------------


SECRET = "postgres://app:hunter2@db.internal/prod"


@tool
def query() -> str:
    """Query the database."""
    raise ConnectionError(f"could not connect to {SECRET}")


@tool
def picky() -> str:
    """A tool that asks the model to try again."""
    raise ModelRetry("use a date in ISO format")


def repeats_tool_answer(name: str) -> FunctionModel:
    """Calls `name`, then answers with the tool message it got, word for word."""

    def answer(request: ModelRequest) -> Reply:
        last = request.messages[-1]
        return f"The tool said: {last.content}" if last.role == "tool" else call(name)

    return FunctionModel(answer)


def test_a_served_tool_error_reaches_neither_model_nor_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("WARNING", logger="agentkit")
    model = repeats_tool_answer("query")
    app = create_app({"db": Agent("m", client=model, tools=[query])})
    with serving(app) as s:
        plain = post(s, json={"model": "db", "messages": user("count rows")})
        streamed = post(s, json={"model": "db", "messages": user("count rows"), "stream": True})
    assert plain.status_code == 200
    text = plain.json()["choices"][0]["message"]["content"]
    assert text == "The tool said: Error: the tool query failed (ConnectionError)"
    chunks = check_sse(streamed.text)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == text
    assert "hunter2" not in json.dumps(model.requests)
    # The detail is on the server, in its log.
    assert "hunter2" in caplog.text and "query" in caplog.text


def test_a_served_agent_or_app_may_choose_the_message() -> None:
    own = Agent(
        "m", client=repeats_tool_answer("query"), tools=[query], tool_error_detail="message"
    )
    plain = Agent("m", client=repeats_tool_answer("query"), tools=[query])
    for app, name in (
        (create_app({"db": own}), "db"),
        (create_app({"db": plain}, tool_error_detail="message"), "db"),
    ):
        with serving(app) as s:
            response = post(s, json={"model": name, "messages": user("x")})
        assert (
            "ConnectionError: could not connect to"
            in response.json()["choices"][0]["message"]["content"]
        )


def test_messages_written_for_the_model_still_reach_it() -> None:
    app = create_app({"picky": Agent("m", client=repeats_tool_answer("picky"), tools=[picky])})
    with serving(app) as s:
        response = post(s, json={"model": "picky", "messages": user("x")})
    content = response.json()["choices"][0]["message"]["content"]
    assert content == "The tool said: Error: use a date in ISO format"


# --- row 13: only the content parts an agent accepts go upstream -------------------------------


def image(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


TEXT = {"type": "text", "text": "What is this?"}
PNG = "data:image/png;base64,iVBORw0KGgo="


@pytest.fixture(scope="module")
def parts() -> Iterator[tuple[Served, FunctionModel]]:
    model = FunctionModel(lambda request: "seen")
    agents = {"text": Agent("m", client=model), "vision": Agent("m", client=model)}
    policy = {"vision": ContentPolicy(types={"text", "image_url"})}
    with serving(create_app(agents, content_policy=policy)) as s:
        yield s, model


@pytest.mark.parametrize(
    "part",
    [
        image("https://example.com/cat.png"),
        image(PNG),
        {"type": "file", "file": {"file_id": "file-abc"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "TEXT", "text": "x"},
    ],
)
def test_a_text_only_agent_refuses_every_other_part(
    parts: tuple[Served, FunctionModel], part: dict[str, Any]
) -> None:
    served, model = parts
    before = len(model.requests)
    response = post(served, json={"model": "text", "messages": user([TEXT, part])})
    assert response.status_code == 400, response.text
    error = check_error(response.json())
    assert error["param"] == "messages[0].content[1].type"
    assert f"'{part['type']}'" in error["message"] and "'text'" in error["message"]
    assert len(model.requests) == before


def test_parts_in_the_history_are_checked_too(parts: tuple[Served, FunctionModel]) -> None:
    served, _ = parts
    messages = [
        {"role": "user", "content": [TEXT, image("https://example.com/a.png")]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "And now?"},
    ]
    response = post(served, json={"model": "text", "messages": messages})
    assert check_error(response.json())["param"] == "messages[0].content[1].type"
    assistant = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "file", "file": {"file_id": "f"}}]},
        {"role": "user", "content": "y"},
    ]
    response = post(served, json={"model": "vision", "messages": assistant})
    assert check_error(response.json())["param"] == "messages[1].content[0].type"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cat.png",
        "https://8.8.8.8/a.png",
        "https://[2606:4700:4700::1111]/a.png",
        PNG,
        "DATA:image/jpeg;base64,/9j/",
    ],
)
def test_an_image_agent_accepts_public_and_data_urls(
    parts: tuple[Served, FunctionModel], url: str
) -> None:
    served, model = parts
    response = post(served, json={"model": "vision", "messages": user([TEXT, image(url)])})
    assert response.status_code == 200, response.text
    assert model.requests[-1]["messages"][-1]["content"][1] == image(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://169.254.169.254/latest/meta-data/",
        "http://example.com/cat.png",
        "file:///etc/passwd",
        "ftp://example.com/a.png",
        "https://127.0.0.1/a.png",
        "https://10.0.0.5/a.png",
        "https://192.168.1.1/a.png",
        "https://[::1]/a.png",
        "https://[fe80::1]/a.png",
        "https://[::ffff:169.254.169.254]/a.png",
        "https://[64:ff9b::a9fe:a9fe]/a.png",
        "https://2852039166/a.png",
        "https://0xa9fea9fe/a.png",
        "https://0251.0376.0251.0376/a.png",
        "https://169.254.43518/a.png",
        "https://localhost/a.png",
        "https://metadata.google.internal/computeMetadata/v1/",
        "https://printer.local/a.png",
        "https://intranet/a.png",
        "https://example.com@169.254.169.254/a.png",
        "https://169.254.169.254\\@example.com/a.png",
        "https://exa mple.com/a.png",
        "https://[::1/a.png",
        "data:text/html;base64,PHNjcmlwdD4=",
        "data:image/svg+xml;base64,PHN2Zz4=",
        "data:;base64,AAAA",
        "javascript:alert(1)",
    ],
)
def test_an_image_agent_refuses_urls_into_private_networks(
    parts: tuple[Served, FunctionModel], url: str
) -> None:
    served, model = parts
    before = len(model.requests)
    response = post(served, json={"model": "vision", "messages": user([TEXT, image(url)])})
    assert response.status_code == 400, response.text
    error = check_error(response.json())
    assert error["param"] == "messages[0].content[1].image_url.url"
    assert len(model.requests) == before


def test_image_hosts_and_private_hosts_options() -> None:
    model = FunctionModel(lambda request: "seen")
    policy = ContentPolicy(types={"text", "image_url"}, image_hosts={"*.cdn.example", "10.0.0.5"})
    lan = ContentPolicy(types={"image_url"}, allow_private_hosts=True, image_schemes={"http"})
    agents = {"cdn": Agent("m", client=model), "lan": Agent("m", client=model)}
    with serving(create_app(agents, content_policy={"cdn": policy, "lan": lan})) as s:

        def status(name: str, url: str) -> int:
            body = {"model": name, "messages": user([TEXT, image(url)])}
            return post(s, json=body).status_code

        assert status("cdn", "https://img.cdn.example/a.png") == 200
        assert status("cdn", "https://10.0.0.5/a.png") == 200  # listed by the operator
        assert status("cdn", "https://example.com/a.png") == 400
        assert status("cdn", PNG) == 200
        assert status("lan", "http://10.0.0.5/a.png") == 200
        assert status("lan", "https://example.com/a.png") == 400  # scheme


def test_fields_agentkit_does_not_model_are_not_forwarded(
    parts: tuple[Served, FunctionModel],
) -> None:
    served, model = parts
    messages = [
        {"role": "user", "content": "x", "file_ids": ["file-1"]},
        {"role": "assistant", "content": "y", "audio": {"id": "audio-1"}},
        {"role": "user", "content": [{**TEXT, "cache": "please"}]},
    ]
    response = post(served, json={"model": "text", "messages": messages})
    assert response.status_code == 200, response.text
    sent = model.requests[-1]["messages"]
    assert sent == [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": "y"},
        {"role": "user", "content": [TEXT]},
    ]


@pytest.mark.parametrize(
    ("host", "public"),
    [
        ("example.com", True),
        ("8.8.8.8", True),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("1", False),
        ("127.1", False),
        ("example", False),
        ("foo.localhost", False),
        ("router.home.arpa", False),
        ("exa_mple.com", False),
        ("xn--bcher-kva.example", True),
        ("fc00::1", False),
        ("2002:a9fe:a9fe::1", False),
        ("2001::1", False),
    ],
)
def test_public_host(host: str, public: bool) -> None:
    assert public_host(host) is public


def test_content_policy_and_its_mapping_are_checked() -> None:
    with pytest.raises(UserError, match="types"):
        ContentPolicy(types="image_url")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="image_hosts"):
        ContentPolicy(image_hosts="example.com")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="not a served model"):
        create_app({"a": Agent("m")}, content_policy={"b": ContentPolicy()})
    assert "text" in ContentPolicy(types={"image_url"}).types
    app = create_app({"a": Agent("m"), "b": Agent("m")}, content_policy=ContentPolicy({"file"}))
    assert app.content_policies["a"] is app.content_policies["b"]
