"""`agentkit.serve` at its edges: keys, bad bodies, unknown models, the concurrency limit,
clients that hang up, and shutdown; over a real uvicorn server, every body checked
against the spec."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import httpx
import openai
import pytest

from agentkit import Agent, UserError, tool
from agentkit.serve import AgentApp, create_app
from agentkit.testing import FunctionModel, ModelRequest, Reply, call
from tests.serve_server import Served, check_error, check_sse, serving, wait_for

KEY = "sk-limits-1"


def echo(request: ModelRequest) -> Reply:
    return f"You said: {request.messages[-1].content}"


def calls_then_answers(name: str) -> FunctionModel:
    """A model that calls the tool `name` once, with a line of text, then answers."""

    def answer(request: ModelRequest) -> Reply:
        if request.messages[-1].role == "tool":
            return f"Done: {request.messages[-1].content}"
        message = call(name)
        message.content = "Working on it."
        return message

    return FunctionModel(answer)


class Probe:
    """Thread-safe signals from a tool running on the server."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.starts = 0
        self.cancelled = threading.Event()
        self.release = threading.Event()


def blocking_agent(probe: Probe, *, forever: bool = False) -> Agent[str]:
    """An agent whose tool waits: until `probe.release` is set, or until cancelled."""

    @tool
    async def wait() -> str:
        """Wait for something."""
        probe.starts += 1
        probe.started.set()
        try:
            if forever:
                await anyio.sleep_forever()
            await anyio.to_thread.run_sync(probe.release.wait, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            probe.cancelled.set()
            raise
        return "released"

    return Agent("m", client=calls_then_answers("wait"), tools=[wait])


def body(model: str = "echo", text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    app = create_app({"echo": Agent("m", client=FunctionModel(echo))}, api_keys=[KEY, "sk-2"])
    with serving(app) as s:
        yield s


def post(served: Served, json: Any = None, key: str | None = KEY, **kw: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key is not None else {}
    headers.update(kw.pop("headers", {}))
    return httpx.post(f"{served.url}/chat/completions", json=json, headers=headers, **kw)


# --- keys ----------------------------------------------------------------------------------


def test_every_configured_key_is_accepted(served: Served) -> None:
    for key in (KEY, "sk-2"):
        response = post(served, body(text="ping"), key=key)
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "You said: ping"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, None),
        ({"authorization": "Bearer"}, None),
        ({"authorization": f"Basic {KEY}"}, None),
        ({"authorization": "Bearer sk-wrong"}, "invalid_api_key"),
        ({"authorization": f"Bearer {KEY}x"}, "invalid_api_key"),
        ({"authorization": "Bearer ключ".encode()}, "invalid_api_key"),
    ],
)
def test_missing_or_wrong_key_is_401(
    served: Served, headers: dict[str, Any], code: str | None
) -> None:
    for response in (
        post(served, body(), key=None, headers=headers),
        httpx.get(f"{served.url}/models", headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        error = check_error(response.json())
        assert error["code"] == code
        assert KEY not in response.text and "sk-wrong" not in response.text


def test_openai_client_with_a_wrong_key(served: Served) -> None:
    with openai.OpenAI(base_url=served.url, api_key="sk-nope", max_retries=0) as client:
        with pytest.raises(openai.AuthenticationError):
            client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "x"}]
            )


def test_keys_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    app = create_app(Agent("echo", client=FunctionModel(echo)), api_keys="sk-secret-key")
    assert "sk-secret-key" not in repr(app)
    with serving(app) as s:
        post(s, body(), key="sk-secret-key")
        post(s, body(), key="sk-guess")
    assert "sk-secret-key" not in caplog.text and "sk-guess" not in caplog.text


# --- bad bodies and unknown models -------------------------------------------------------------


@pytest.mark.invalid_request_body
@pytest.mark.parametrize(
    ("sent", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "echo"}, "messages"),
        ({"model": "echo", "messages": []}, "messages"),
        ({"model": "echo", "messages": "hi"}, "messages"),
        ({"model": "echo", "messages": [{"content": "x"}]}, "messages[0].role"),
        ({"model": "echo", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": "echo", "messages": [{"role": "user"}]}, "messages[0].content"),
        (
            {
                "model": "echo",
                "messages": [{"role": "tool", "content": "x"}, {"role": "user", "content": "y"}],
            },
            "messages[0].tool_call_id",
        ),
        (
            {
                "model": "echo",
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "assistant", "content": "y"},
                ],
            },
            "messages[1].role",
        ),
        (
            {
                "model": "echo",
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                    {"role": "user", "content": "y"},
                ],
            },
            "messages",
        ),
        ({**body(), "stream": "sometimes"}, "stream"),
        ({**body(), "n": 2}, "n"),
        ({**body(), "tool_choice": "required"}, "tool_choice"),
        ({**body(), "response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ],
)
def test_bad_bodies_are_400_naming_the_field(served: Served, sent: Any, param: str) -> None:
    response = post(served, sent)
    assert response.status_code == 400, response.text
    error = check_error(response.json())
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"].endswith(".")


def test_bodies_that_are_not_json_objects_are_400(served: Served) -> None:
    for content in (b"{not json", b"[1, 2]", b""):
        response = post(served, content=content, headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert check_error(response.json())["param"] is None


def test_unanswered_tool_call_in_history_names_the_message(served: Served) -> None:
    response = post(
        served,
        {
            "model": "echo",
            "messages": [
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "user", "content": "y"},
            ],
        },
    )
    assert response.status_code == 400
    assert "messages[1]" in check_error(response.json())["message"]


def test_oversized_body_is_413() -> None:
    app = create_app(Agent("echo", client=FunctionModel(echo)), max_body_bytes=1000)
    with serving(app) as s:
        response = post(s, body(text="x" * 2000), key=None)
        assert response.status_code == 413
        check_error(response.json())


def test_unknown_model_is_404(served: Served) -> None:
    response = post(served, body(model="gpt-4o"))
    assert response.status_code == 404
    error = check_error(response.json())
    assert (error["param"], error["code"]) == ("model", "model_not_found")
    assert "gpt-4o" in error["message"]
    with openai.OpenAI(base_url=served.url, api_key=KEY, max_retries=0) as client:
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "x"}]
            )


def test_unknown_paths_and_methods_answer_in_the_standard_shape(served: Served) -> None:
    missing = httpx.get(f"{served.url}/completions")
    assert missing.status_code == 404 and check_error(missing.json())["code"] == "not_found"
    wrong = httpx.get(f"{served.url}/chat/completions")
    assert wrong.status_code == 405 and check_error(wrong.json())["code"] == "method_not_allowed"


# --- the concurrency limit -------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.slow
async def test_200_concurrent_requests_all_succeed_under_a_higher_limit() -> None:
    inflight = peak = 0
    everyone: anyio.Event | None = None

    @tool
    async def gather() -> str:
        """Wait for the others."""
        nonlocal inflight, peak, everyone
        everyone = everyone or anyio.Event()  # made on the server's event loop
        inflight += 1
        peak = max(peak, inflight)
        if peak == 200:
            everyone.set()
        # Hold the run until all 200 are in flight together (or give up after a while).
        with anyio.move_on_after(10):
            await everyone.wait()
        inflight -= 1
        return "ok"

    agent = Agent("m", client=calls_then_answers("gather"), tools=[gather])
    with serving(create_app({"crowd": agent}, max_concurrent_runs=250)) as s:
        results: list[str | None] = []
        async with openai.AsyncOpenAI(base_url=s.url, api_key="k", max_retries=0) as client:

            async def one(i: int) -> None:
                reply = await client.chat.completions.create(
                    model="crowd", messages=[{"role": "user", "content": f"#{i}"}]
                )
                results.append(reply.choices[0].message.content)

            async with anyio.create_task_group() as group:
                for i in range(200):
                    group.start_soon(one, i)
        assert results == ["Working on it.\n\nDone: ok"] * 200
        assert peak == 200
        assert s.app.active_runs == 0


@pytest.mark.anyio
async def test_over_the_limit_requests_get_429_with_retry_after_and_none_500() -> None:
    probe = Probe()
    app = create_app({"hold": blocking_agent(probe)}, max_concurrent_runs=10)
    with serving(app) as s:
        statuses: list[int] = []
        retry_after: set[str] = set()
        async with openai.AsyncOpenAI(base_url=s.url, api_key="k", max_retries=0) as client:

            async def one(i: int) -> None:
                try:
                    await client.chat.completions.create(
                        model="hold", messages=[{"role": "user", "content": f"#{i}"}]
                    )
                    statuses.append(200)
                except openai.APIStatusError as exc:
                    statuses.append(exc.status_code)
                    if exc.status_code == 429:
                        retry_after.add(exc.response.headers["retry-after"])
                        assert exc.code == "too_many_runs"
                # The ten runs let in hold their slots until every other request is turned away.
                if statuses.count(429) == 190:
                    probe.release.set()

            async with anyio.create_task_group() as group:
                for i in range(200):
                    group.start_soon(one, i)
        assert sorted(statuses) == [200] * 10 + [429] * 190
        assert retry_after == {"1"}
        # Slots are given back: the next request gets in.
        response = post(s, body(model="hold"), key=None)
        assert response.status_code == 200


# --- clients that hang up --------------------------------------------------------------------


@pytest.mark.anyio
async def test_client_disconnect_cancels_the_run() -> None:
    probe = Probe()
    app = create_app({"hold": blocking_agent(probe, forever=True)})
    with serving(app) as s:
        async with httpx.AsyncClient(timeout=10) as http:

            async def ask() -> None:
                await http.post(f"{s.url}/chat/completions", json=body("hold"))

            async with anyio.create_task_group() as group:
                group.start_soon(ask)
                await anyio.to_thread.run_sync(wait_for, probe.started)
                group.cancel_scope.cancel()  # the client hangs up mid-request
        await anyio.to_thread.run_sync(wait_for, probe.cancelled)
        await anyio.to_thread.run_sync(wait_until, lambda: app.active_runs == 0)


def test_client_leaving_a_stream_cancels_the_run() -> None:
    probe = Probe()
    app = create_app({"hold": blocking_agent(probe, forever=True)})
    with serving(app) as s:
        with openai.OpenAI(base_url=s.url, api_key="k", max_retries=0) as client:
            stream = client.chat.completions.create(
                model="hold", messages=[{"role": "user", "content": "x"}], stream=True
            )
            with stream:
                text = ""
                for chunk in stream:
                    text += chunk.choices[0].delta.content or ""
                    if text == "Working on it.":
                        wait_for(probe.started)  # the tool is running: now hang up
                        break
        wait_for(probe.cancelled)
        wait_until(lambda: app.active_runs == 0)


# --- shutdown --------------------------------------------------------------------------------


def test_shutdown_refuses_new_requests_and_lets_runs_in_flight_finish() -> None:
    probe = Probe()
    app = create_app({"hold": blocking_agent(probe)}, shutdown_timeout=30)
    with serving(app) as s, ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, s, body("hold"), None, timeout=30)
        streamed = pool.submit(post, s, body("hold", stream=True), None, timeout=30)
        wait_until(lambda: probe.starts == 2)
        draining = s.portal.start_task_soon(app.drain)
        wait_until(lambda: not app.accepting)
        refused = post(s, body("hold"), key=None)
        assert refused.status_code == 503
        assert check_error(refused.json())["code"] == "shutting_down"
        assert not draining.done()
        probe.release.set()
        assert first.result().json()["choices"][0]["message"]["content"].endswith("released")
        chunks = check_sse(streamed.result().text)
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        draining.result(timeout=5)
        assert not probe.cancelled.is_set()


def test_shutdown_cancels_runs_that_outlast_the_timeout() -> None:
    probe = Probe()
    app = create_app({"hold": blocking_agent(probe, forever=True)}, shutdown_timeout=0.3)
    with serving(app) as s, ThreadPoolExecutor(2) as pool:
        plain = pool.submit(post, s, body("hold"), None, timeout=30)
        streamed = pool.submit(post, s, body("hold", stream=True), None, timeout=30)
        wait_until(lambda: probe.starts == 2)  # both tools are running
        started = time.monotonic()
        s.call(app.drain)
        assert time.monotonic() - started < 3
        assert probe.cancelled.is_set()
        response = plain.result()
        assert response.status_code == 503
        error = check_error(response.json())
        assert error["code"] == "shutting_down"
        assert response.headers["x-should-retry"] == "false"
        # A stream already under way ends with an error event, and no [DONE].
        events = [x for x in streamed.result().text.split("\n") if x.startswith("data: ")]
        assert '"shutting_down"' in events[-1]


def test_server_shutdown_waits_for_runs_then_drains_the_app() -> None:
    probe = Probe()
    app = create_app({"hold": blocking_agent(probe)})
    with serving(app) as s, ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, s, body("hold"), None, timeout=30)
        wait_for(probe.started)
        s.server.should_exit = True  # what SIGTERM does
        time.sleep(0.3)
        probe.release.set()
        assert first.result().status_code == 200
    assert not app.accepting  # the lifespan's shutdown drained the app


# --- the module and its arguments ------------------------------------------------------------


def test_serve_needs_the_server_extra_and_agentkit_does_not_import_it() -> None:
    blocked = (
        "import sys; sys.modules['starlette'] = None\n"
        "import agentkit\n"
        "assert 'agentkit.serve' not in sys.modules and 'uvicorn' not in sys.modules\n"
        "try:\n"
        "    import agentkit.serve\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", blocked], capture_output=True, text=True, check=True
    ).stdout
    assert 'pip install "agentkit[server]"' in out


@pytest.mark.parametrize(
    "kwargs",
    [
        {"agents": {}},
        {"agents": {"": Agent("m")}},
        {"agents": {"x": object()}},
        {"api_keys": []},
        {"api_keys": ["ok", ""]},
        {"max_concurrent_runs": 0},
        {"shutdown_timeout": -1},
    ],
)
def test_create_app_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    agents = kwargs.pop("agents", {"x": Agent("m")})
    with pytest.raises(UserError):
        create_app(agents, **kwargs)


def test_a_single_agent_is_served_under_its_model_name() -> None:
    app = create_app(Agent("clock-1", client=FunctionModel(echo)))
    assert isinstance(app, AgentApp) and list(app.agents) == ["clock-1"]
