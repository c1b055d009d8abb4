"""Served agents keeping conversations server-side, keyed by `X-Session-Id`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from agentkit import Agent, Paused, tool
from agentkit.serve import AgentApp, create_app
from agentkit.sessions import SQLiteSession
from agentkit.testing import FunctionModel, ModelRequest, Reply
from tests.session_worker import make_agent

pytestmark = pytest.mark.anyio

KEY = "sk-test-sessions"
SID = "0123456789abcdef-session"


def build(tmp_path: Path, **options: Any) -> AgentApp:
    made: list[str] = []

    def sessions(key: str) -> SQLiteSession:
        made.append(key)
        return SQLiteSession(key, tmp_path / "served.db", lock_timeout=options.pop("wait", 5.0))

    app = create_app({"echo": make_agent()}, api_keys=[KEY, "sk-other"], sessions=sessions)
    app.made = made  # type: ignore[attr-defined]
    return app


async def post(
    app: AgentApp,
    text: str,
    *,
    session: str | None = SID,
    key: str = KEY,
    stream: bool = False,
    history: list[dict[str, Any]] | None = None,
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    if session is not None:
        headers["x-session-id"] = session
    body = {
        "model": "echo",
        "messages": [*(history or []), {"role": "user", "content": text}],
        "stream": stream,
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.post("/v1/chat/completions", json=body, headers=headers)


def answer_of(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["choices"][0]["message"]["content"])


async def test_thin_client_sends_only_the_new_message(tmp_path: Path) -> None:
    app = build(tmp_path)
    assert answer_of(await post(app, "one")) == "done echo one after 0"
    assert answer_of(await post(app, "two")) == "done echo two after 1"
    # Streamed runs continue the same conversation.
    streamed = await post(app, "three", stream=True)
    assert streamed.status_code == 200
    pieces = [
        json.loads(line[6:]) for line in streamed.text.splitlines() if line.startswith("data: {")
    ]
    text = "".join(p["choices"][0]["delta"].get("content") or "" for p in pieces if p["choices"])
    assert text == "done echo three after 2"
    key = app.made[0]  # type: ignore[attr-defined]
    assert SID in key and KEY not in key  # scoped by a hash of the key, never the key
    stored = await SQLiteSession(key, tmp_path / "served.db").load()
    assert [m.content for m in stored if m.role == "user"] == ["one", "two", "three"]


async def test_sessions_are_scoped_by_api_key_and_absent_header_is_stateless(
    tmp_path: Path,
) -> None:
    app = build(tmp_path)
    await post(app, "mine")
    # The same id under another key is another conversation.
    assert answer_of(await post(app, "theirs", key="sk-other")) == "done echo theirs after 0"
    # Without the header, nothing is kept.
    assert answer_of(await post(app, "plain", session=None)) == "done echo plain after 0"
    assert answer_of(await post(app, "again")) == "done echo again after 1"


@pytest.mark.parametrize(
    ("session", "history", "code"),
    [
        ("short", None, "invalid_session_id"),
        ("has spaces in it, not allowed", None, "invalid_session_id"),
        (
            SID,
            [{"role": "user", "content": "old"}, {"role": "assistant", "content": "x"}],
            "history_with_session",
        ),
    ],
)
async def test_bad_session_requests_are_refused(
    tmp_path: Path, session: str, history: Any, code: str
) -> None:
    response = await post(build(tmp_path), "hi", session=session, history=history)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


async def test_sessions_are_off_by_default(tmp_path: Path) -> None:
    app = create_app({"echo": make_agent()}, api_keys=[KEY])
    response = await post(app, "hi")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "sessions_disabled"


async def test_agents_that_pause_are_refused(tmp_path: Path) -> None:
    @tool(requires_approval=True)
    def wipe() -> str:
        """Wipe."""
        return "ok"

    agent: Agent[Any, Any] = Agent(
        "test", client=FunctionModel(lambda r: "x"), tools=[wipe], pauses=Paused
    )
    app = create_app(
        {"echo": agent},
        api_keys=[KEY],
        sessions=lambda key: SQLiteSession(key, tmp_path / "p.db"),
    )
    response = await post(app, "hi")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "session_unsupported"


async def test_a_busy_session_is_a_409(tmp_path: Path) -> None:
    release = anyio.Event()
    started = anyio.Event()

    async def slow(request: ModelRequest) -> Reply:
        started.set()  # the first request holds the session's lock from here
        await release.wait()
        return "slow"

    agent = Agent("test", client=FunctionModel(slow))
    app = create_app(
        {"echo": agent},
        api_keys=[KEY],
        sessions=lambda key: SQLiteSession(key, tmp_path / "b.db", lock_timeout=0.2),
    )
    responses: list[httpx.Response] = []

    async def first() -> None:
        responses.append(await post(app, "first"))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            group.start_soon(first)
            await started.wait()
            busy = await post(app, "second")
            streamed = await post(app, "third", stream=True)
            release.set()
    # A stream has begun before the lock is waited for: the error is its last event.
    assert streamed.status_code == 200
    assert '"code":"session_busy"' in streamed.text.replace(" ", "")
    assert "[DONE]" not in streamed.text
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "session_busy"
    assert busy.headers["retry-after"] == "1"
    assert answer_of(responses[0]) == "slow"
