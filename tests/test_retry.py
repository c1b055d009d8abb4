"""Retries: which failures, how many attempts, and how long the client waits."""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import pytest
import respx

from agentkit import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    RateLimitError,
)
from agentkit._client.retry import MAX_RETRY_AFTER, backoff_delay, retry_after, should_retry
from tests.http_stacks import http_stack, real_async_client  # noqa: F401
from tests.test_client import (
    BASE,
    USER,
    build,
    completion,
    error_body,
    make,
)

pytestmark = pytest.mark.usefixtures("http_stack")


def fail_then_succeed(failures: list[Any]) -> list[Any]:
    return [*failures, httpx.Response(200, json=completion())]


# --- which failures are retried ---------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
async def test_retried_statuses(api: respx.MockRouter, sleeps: list[float], status: int) -> None:
    route = api.post("/chat/completions")
    route.side_effect = fail_then_succeed(
        [httpx.Response(status, json=error_body()), httpx.Response(status)]
    )
    async with make() as client:
        reply = await client.create(model="m", messages=USER)
    assert reply.id == "chatcmpl-1"
    assert route.call_count == 3
    assert len(sleeps) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("refused"),
        httpx.ReadError("reset"),
        httpx.RemoteProtocolError("server disconnected"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow read"),
        httpx.PoolTimeout("pool"),
    ],
)
async def test_retried_transport_errors(
    api: respx.MockRouter, sleeps: list[float], exc: Exception
) -> None:
    route = api.post("/chat/completions")
    route.side_effect = fail_then_succeed([exc, exc])
    async with make() as client:
        await client.create(model="m", messages=USER)
    assert route.call_count == 3
    assert len(sleeps) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("refused"), APIConnectionError),
        (httpx.ReadTimeout("x"), APITimeoutError),
    ],
)
async def test_transport_errors_raise_after_all_retries(
    api: respx.MockRouter, sleeps: list[float], exc: Exception, cls: type[Exception]
) -> None:
    route = api.post("/chat/completions").mock(side_effect=exc)
    async with make(max_retries=3) as client:
        with pytest.raises(cls):
            await client.create(model="m", messages=USER)
    assert route.call_count == 4
    assert len(sleeps) == 3


@pytest.mark.anyio
@pytest.mark.parametrize("status", [400, 401, 403, 404, 418, 422])
async def test_not_retried_statuses(
    api: respx.MockRouter, sleeps: list[float], status: int
) -> None:
    route = api.post("/chat/completions").respond(status, json=error_body())
    async with make(max_retries=5) as client:
        with pytest.raises(APIStatusError) as info:
            await client.create(model="m", messages=USER)
    assert info.value.status_code == status
    assert route.call_count == 1
    assert sleeps == []


@pytest.mark.anyio
@pytest.mark.parametrize("max_retries", [0, 1, 2, 4])
async def test_attempts_are_max_retries_plus_one(
    api: respx.MockRouter, sleeps: list[float], max_retries: int
) -> None:
    route = api.post("/chat/completions").respond(503, json=error_body(type="server_error"))
    async with make(max_retries=max_retries) as client:
        with pytest.raises(InternalServerError):
            await client.create(model="m", messages=USER)
    assert route.call_count == max_retries + 1
    assert len(sleeps) == max_retries


@pytest.mark.anyio
async def test_default_is_two_retries(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.post("/chat/completions").respond(500)
    async with make() as client:
        with pytest.raises(InternalServerError):
            await client.create(model="m", messages=USER)
    assert route.call_count == 3


@pytest.mark.anyio
async def test_backoff_delays_through_the_client(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    api.post("/chat/completions").respond(500)
    async with make(max_retries=7) as client:
        with pytest.raises(InternalServerError):
            await client.create(model="m", messages=USER)
    nominal = [0.5, 1, 2, 4, 8, 8, 8]
    assert len(sleeps) == len(nominal)
    for delay, top in zip(sleeps, nominal, strict=True):
        assert top * 0.75 <= delay <= top


@pytest.mark.anyio
async def test_a_request_succeeding_after_retries_returns_the_last_answer(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    route = api.post("/chat/completions")
    route.side_effect = [
        httpx.ConnectError("refused"),
        httpx.Response(
            429, json=error_body(type="rate_limit_exceeded"), headers={"retry-after": "1"}
        ),
        httpx.Response(200, json=completion("third time lucky")),
    ]
    async with make() as client:
        reply = await client.create(model="m", messages=USER)
    assert reply.choices[0].message.content == "third time lucky"
    assert sleeps[1] == 1.0
    bodies = {call.request.content for call in route.calls}
    assert len(bodies) == 1  # the same body every time


@pytest.mark.anyio
async def test_response_validation_error_is_not_retried(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    route = api.post("/chat/completions").respond(200, content=b"not json")
    async with make() as client:
        with pytest.raises(APIResponseValidationError):
            await client.create(model="m", messages=USER)
    assert route.call_count == 1
    assert sleeps == []


# --- what the server says ------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "30"}, 0.25),
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after": "0"}, 0.0),
        ({"retry-after": "-4"}, 0.0),
        ({"retry-after": "60"}, 60.0),
        ({"retry-after-ms": "60000"}, 60.0),
    ],
)
async def test_retry_after_is_honoured(
    api: respx.MockRouter, sleeps: list[float], headers: dict[str, str], expected: float
) -> None:
    route = api.post("/chat/completions")
    route.side_effect = fail_then_succeed([httpx.Response(429, headers=headers)])
    async with make() as client:
        await client.create(model="m", messages=USER)
    assert sleeps == [expected]


@pytest.mark.anyio
async def test_retry_after_as_http_date(api: respx.MockRouter, sleeps: list[float]) -> None:
    when = email.utils.formatdate(time.time() + 10, usegmt=True)
    route = api.post("/chat/completions")
    route.side_effect = fail_then_succeed([httpx.Response(503, headers={"retry-after": when})])
    async with make() as client:
        await client.create(model="m", messages=USER)
    (delay,) = sleeps
    assert 8.0 <= delay <= 10.0


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "61"},
        {"retry-after-ms": "60001"},
        {"retry-after": "inf"},
        {"retry-after": "3600"},
        {"retry-after": email.utils.formatdate(time.time() + 3600, usegmt=True)},
    ],
)
async def test_a_long_retry_after_raises_at_once(
    api: respx.MockRouter, sleeps: list[float], headers: dict[str, str]
) -> None:
    route = api.post("/chat/completions").respond(
        429, json=error_body("slow down", "requests", "rate_limit_exceeded"), headers=headers
    )
    async with make(max_retries=5) as client:
        with pytest.raises(RateLimitError, match="slow down"):
            await client.create(model="m", messages=USER)
    assert route.call_count == 1
    assert sleeps == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [{"retry-after": "soon"}, {"retry-after-ms": "nan"}, {"retry-after": "nan"}, {}],
)
async def test_unreadable_retry_after_falls_back_to_backoff(
    api: respx.MockRouter, sleeps: list[float], headers: dict[str, str]
) -> None:
    route = api.post("/chat/completions")
    route.side_effect = fail_then_succeed([httpx.Response(503, headers=headers)])
    async with make() as client:
        await client.create(model="m", messages=USER)
    (delay,) = sleeps
    assert 0.375 <= delay <= 0.5


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "header", "retried"),
    [
        (400, "true", True),
        (401, "TRUE", True),
        (500, "false", False),
        (429, "false", False),
        (503, " False ", False),
        (500, "maybe", True),
        (400, "maybe", False),
    ],
)
async def test_x_should_retry_overrides_the_status(
    api: respx.MockRouter, sleeps: list[float], status: int, header: str, retried: bool
) -> None:
    route = api.post("/chat/completions").respond(status, headers={"x-should-retry": header})
    async with make(max_retries=1) as client:
        with pytest.raises(APIStatusError):
            await client.create(model="m", messages=USER)
    assert route.call_count == (2 if retried else 1)
    assert len(sleeps) == (1 if retried else 0)


@pytest.mark.anyio
@pytest.mark.parametrize("should_retry_header", [None, "true"])
async def test_insufficient_quota_is_never_retried(
    api: respx.MockRouter, sleeps: list[float], should_retry_header: str | None
) -> None:
    headers = {"retry-after": "1"}
    if should_retry_header:
        headers["x-should-retry"] = should_retry_header
    body = error_body(
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        "insufficient_quota",
    )
    route = api.post("/chat/completions").respond(429, json=body, headers=headers)
    async with make(max_retries=5) as client:
        with pytest.raises(RateLimitError) as info:
            await client.create(model="m", messages=USER)
    assert info.value.code == "insufficient_quota"
    assert route.call_count == 1
    assert sleeps == []


@pytest.mark.anyio
async def test_max_retries_zero_disables_retrying(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    route = api.post("/chat/completions").mock(side_effect=httpx.ConnectError("refused"))
    status_route = api.get("/models").respond(503)
    async with make(max_retries=0) as client:
        with pytest.raises(APIConnectionError):
            await client.create(model="m", messages=USER)
        with pytest.raises(InternalServerError):
            await client.list_models()
    assert route.call_count == 1
    assert status_route.call_count == 1
    assert sleeps == []


@pytest.mark.anyio
async def test_final_error_is_the_last_one(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.post("/chat/completions")
    route.side_effect = [
        httpx.Response(503),
        httpx.Response(409, json=error_body("conflict")),
        httpx.Response(401, json=error_body("bad key", code="invalid_api_key")),
    ]
    async with make(max_retries=5) as client:
        with pytest.raises(AuthenticationError, match="bad key"):
            await client.create(model="m", messages=USER)
    assert route.call_count == 3
    assert len(sleeps) == 2


@pytest.mark.anyio
async def test_conflict_is_retried_then_raised(api: respx.MockRouter, sleeps: list[float]) -> None:
    api.post("/chat/completions").respond(409, json=error_body("busy"))
    async with make(max_retries=1) as client:
        with pytest.raises(ConflictError):
            await client.create(model="m", messages=USER)
    assert len(sleeps) == 1


@pytest.mark.anyio
async def test_the_real_sleep_goes_through_anyio(api: respx.MockRouter) -> None:
    route = api.post("/chat/completions")
    route.side_effect = fail_then_succeed([httpx.Response(503, headers={"retry-after-ms": "10"})])
    async with make() as client:
        started = time.perf_counter()
        await client.create(model="m", messages=USER)
    assert 0.009 <= time.perf_counter() - started < 2


# --- the pieces on their own --------------------------------------------------------------


def test_backoff_ranges() -> None:
    for attempt, top in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]):
        for _ in range(200):
            delay = backoff_delay(attempt)
            assert top * 0.75 <= delay <= top


@pytest.mark.parametrize("attempt", [10, 100, 1023, 1024, 1025, 5000, 10**6])
def test_backoff_for_large_attempts_stays_capped(attempt: int) -> None:
    for _ in range(20):
        assert 6.0 <= backoff_delay(attempt) <= 8.0


def test_backoff_is_jittered() -> None:
    assert len({backoff_delay(3) for _ in range(50)}) > 10


def test_retry_after_with_now() -> None:
    now = 1_445_412_470.0  # 07:27:50 GMT on Wed, 21 Oct 2015
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after(httpx.Headers({"retry-after": date}), now=now) == 10.0
    assert retry_after(httpx.Headers({"retry-after": date}), now=now + 100) == 0.0
    assert retry_after(httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00"}), now=now) == 10.0
    assert (
        retry_after(httpx.Headers({"retry-after": "Wed, 21 Oct 2015 08:28:00 +0100"}), now=now)
        == 10.0
    )


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": ""}, None),
        ({"retry-after": "garbage"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after-ms": "nan"}, None),
        ({"retry-after-ms": "x", "retry-after": "2"}, 2.0),
        ({"retry-after-ms": "1"}, 0.001),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "inf"}, float("inf")),
    ],
)
def test_retry_after_values(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(httpx.Headers(headers), now=0.0) == expected


def test_max_retry_after_is_a_minute() -> None:
    assert MAX_RETRY_AFTER == 60.0


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (408, {}, None, True),
        (409, {}, None, True),
        (429, {}, None, True),
        (500, {}, None, True),
        (599, {}, None, True),
        (400, {}, None, False),
        (404, {}, None, False),
        (429, {}, {"error": {"code": "insufficient_quota"}}, False),
        (429, {"x-should-retry": "true"}, {"error": {"code": "insufficient_quota"}}, False),
        (429, {}, {"error": {"code": "rate_limit_exceeded"}}, True),
        (500, {}, {"error": "a string"}, True),
        (500, {}, "<html>", True),
        (400, {"x-should-retry": "true"}, None, True),
        (500, {"x-should-retry": "false"}, None, False),
    ],
)
def test_should_retry(status: int, headers: dict[str, str], body: Any, expected: bool) -> None:
    assert should_retry(status, httpx.Headers(headers), body) is expected


@pytest.mark.anyio
async def test_bad_request_message_survives_retries(
    api: respx.MockRouter, sleeps: list[float]
) -> None:
    api.post("/chat/completions").respond(
        400, json=error_body("bad temperature", param="temperature")
    )
    async with make() as client:
        with pytest.raises(BadRequestError, match="bad temperature") as info:
            await client.create(model="m", messages=USER)
    assert info.value.param == "temperature"


def test_a_client_without_retries_still_constructs() -> None:
    assert build(BASE, max_retries=0).max_retries == 0
