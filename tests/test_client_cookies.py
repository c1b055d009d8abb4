"""A ChatClient's httpx client looks for a Set-Cookie header before it parses a
response for its cookie jar; cookies themselves behave as they do in httpx."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from agentkit import ChatClient
from agentkit._client.http import check_cookies_first

pytestmark = pytest.mark.anyio

URL = "http://model.test/v1"
ANSWER = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
}


def _answer(cookie: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if cookie is not None:
        headers["Set-Cookie"] = cookie
    return httpx.Response(200, headers=headers, content=json.dumps(ANSWER).encode())


async def test_a_cookie_set_by_a_response_is_kept_and_sent_back() -> None:
    http = httpx.AsyncClient()
    jar_before = http.cookies.jar
    sent: list[str | None] = []
    answers = iter([_answer("__cf_bm=abc; Path=/"), _answer(None), _answer(None)])

    def reply(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie"))
        return next(answers)

    async with ChatClient(base_url=URL, http_client=http) as client:
        with respx.mock(assert_all_called=False) as mock:
            mock.post(f"{URL}/chat/completions").mock(side_effect=reply)
            mock.get(f"{URL}/other").mock(side_effect=reply)
            await client.create(model="m", messages=[{"role": "user", "content": "a"}])
            assert http.cookies["__cf_bm"] == "abc"
            # The jar is the one the client had: a caller holding it sees the cookie.
            assert http.cookies.jar is jar_before
            # httpx sends jar cookies on requests it builds itself.
            await http.get(f"{URL}/other")
            await client.create(model="m", messages=[{"role": "user", "content": "b"}])
    assert sent[1] == "__cf_bm=abc"
    await http.aclose()


async def test_a_response_without_set_cookie_is_not_parsed(monkeypatch: Any) -> None:
    http = httpx.AsyncClient()
    check_cookies_first(http)
    parsed: list[object] = []
    monkeypatch.setattr(
        httpx.Cookies, "extract_cookies", lambda self, response: parsed.append(response)
    )
    request = httpx.Request("POST", f"{URL}/chat/completions")
    http.cookies.extract_cookies(httpx.Response(200, request=request, headers={"x-a": "1"}))
    assert parsed == []
    for name in ("Set-Cookie", "set-cookie2"):
        response = httpx.Response(200, request=request, headers={name: "a=1"})
        http.cookies.extract_cookies(response)
    assert len(parsed) == 2
    await http.aclose()


def test_clients_other_than_httpx_own_cookie_class_are_left_alone() -> None:
    class MyCookies(httpx.Cookies):
        pass

    http = httpx.AsyncClient()
    mine = MyCookies()
    http._cookies = mine  # type: ignore[attr-defined]  # how a subclass would be put in
    check_cookies_first(http)
    assert http.cookies is mine
    check_cookies_first(object())  # no jar at all: nothing to do
