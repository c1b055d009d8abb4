"""Calling a tool: argument validation, sync and async functions, timeouts, results."""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated, Any, Literal
from uuid import UUID

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel, Field

from agentkit._exceptions import (
    ToolArgumentsError,
    ToolCallError,
    ToolResultError,
    ToolTimeoutError,
    UserError,
)
from agentkit._tools.context import RunContext
from agentkit._tools.tool import Tool, tool
from agentkit._wire.messages import UserMessage
from agentkit._wire.responses import Usage
from tests import tools_corpus as corpus

# --- running sync and async functions ---------------------------------------------------


@pytest.mark.anyio
async def test_a_sync_tool_runs_off_the_event_loop() -> None:
    event = threading.Event()

    @tool
    def wait_for_event() -> bool:
        # Only returns True if the event loop is free to run the task that sets it.
        return event.wait(timeout=5)

    async def set_event() -> None:
        await anyio.sleep(0.01)
        event.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(set_event)
        assert await wait_for_event.call("{}") == "true"


@pytest.mark.anyio
async def test_sync_tools_run_in_a_worker_thread_and_async_ones_on_the_loop() -> None:
    @tool
    def sync_ident() -> int:
        return threading.get_ident()

    @tool
    async def async_ident() -> int:
        return threading.get_ident()

    assert await sync_ident.call("{}") != str(threading.get_ident())
    assert await async_ident.call("{}") == str(threading.get_ident())


@pytest.mark.anyio
async def test_an_async_tool_is_awaited() -> None:
    t = Tool.from_function(corpus.async_tool)
    assert await t.call('{"city": "Oslo"}') == "Oslo"


@pytest.mark.anyio
async def test_exceptions_from_the_function_propagate_unchanged() -> None:
    @tool
    def broken(x: int) -> int:
        raise LookupError(f"no {x}")

    with pytest.raises(LookupError, match="no 3"):
        await broken.call('{"x": 3}')


# --- timeouts --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_an_async_tool_times_out() -> None:
    @tool(timeout=0.05)
    async def slow() -> str:
        await anyio.sleep(10)
        return "done"

    start = time.monotonic()
    with pytest.raises(ToolTimeoutError) as info:
        await slow.call("{}")
    assert time.monotonic() - start < 2
    assert isinstance(info.value, ToolCallError)
    assert (info.value.tool_name, info.value.timeout) == ("slow", 0.05)
    assert str(info.value) == "tool 'slow' timed out after 0.05 seconds"


@pytest.mark.anyio
async def test_a_sync_tool_times_out_without_waiting_for_its_thread() -> None:
    release = threading.Event()

    @tool(timeout=0.05)
    def stuck() -> str:
        release.wait(timeout=5)
        return "done"

    start = time.monotonic()
    try:
        with pytest.raises(ToolTimeoutError, match=r"tool 'stuck' timed out after 0\.05 seconds"):
            await stuck.call("{}")
        assert time.monotonic() - start < 2
    finally:
        release.set()


@pytest.mark.anyio
async def test_a_tool_within_its_timeout_returns_normally() -> None:
    @tool(timeout=5)
    async def quick() -> str:
        await anyio.lowlevel.checkpoint()
        return "done"

    assert await quick.call("") == "done"


@pytest.mark.anyio
async def test_a_timeout_error_raised_by_the_function_is_not_the_tools_timeout() -> None:
    @tool(timeout=5)
    async def upstream() -> str:
        raise TimeoutError("upstream service")

    with pytest.raises(TimeoutError, match="upstream service"):
        await upstream.call("{}")


# --- passing arguments --------------------------------------------------------------------


@pytest.mark.anyio
async def test_arguments_are_validated_and_converted() -> None:
    seen: dict[str, Any] = {}

    @tool
    def convert(when: datetime, id: UUID, amount: Decimal, color: corpus.Color) -> None:
        seen.update(when=when, id=id, amount=amount, color=color)

    args = '{"when": "2024-05-01T12:00:00Z", "id": "12345678123456781234567812345678", '
    args += '"amount": "1.10", "color": "red"}'
    assert await convert.call(args) == "null"
    assert seen == {
        "when": datetime(2024, 5, 1, 12, tzinfo=timezone.utc),
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "amount": Decimal("1.10"),
        "color": corpus.Color.RED,
    }


@pytest.mark.anyio
async def test_models_dataclasses_and_typed_dicts_arrive_as_objects() -> None:
    @tool
    def place(order: corpus.Order, point: corpus.Point, movie: corpus.Movie) -> str:
        assert isinstance(order, corpus.Order) and isinstance(order.items[0], corpus.Item)
        assert isinstance(point, corpus.Point)
        return f"{order.ship_to.city} {point.y} {movie['title']}"

    args = '{"order": {"items": [{"sku": "a", "quantity": 2}], "ship_to": {"street": "1 Rue",'
    args += ' "city": "Lyon"}}, "point": {"x": 1}, "movie": {"title": "Up"}}'
    assert await place.call(args) == "Lyon 0.0 Up"


def test_validate_arguments_leaves_out_what_was_not_sent() -> None:
    t = Tool.from_function(corpus.keyword_only)
    assert t.validate_arguments('{"query": "q", "limit": "5"}') == {"query": "q", "limit": 5}


@pytest.mark.anyio
async def test_defaults_keyword_only_and_positional_only_parameters() -> None:
    @tool
    def f(a: int, b: int = 2, /, c: int = 3, *, d: int = 4) -> list[int]:
        return [a, b, c, d]

    assert await f.call('{"a": 1}') == "[1,2,3,4]"
    assert await f.call('{"a": 1, "c": 30, "d": 40}') == "[1,2,30,40]"
    assert await f.call('{"a": 1, "b": 20}') == "[1,20,3,4]"


@pytest.mark.anyio
async def test_empty_arguments_count_as_an_empty_object() -> None:
    assert await Tool.from_function(corpus.no_params).call("") == "hello"


@pytest.mark.anyio
async def test_strict_mode_applies_the_default_when_the_model_sends_null() -> None:
    @tool(strict=True)
    def search(query: str, limit: int = 10, when: str | None = "today") -> str:
        return f"{query} {limit} {when}"

    assert await search.call('{"query": "q", "limit": null, "when": null}') == "q 10 today"
    assert await search.call('{"query": "q", "limit": 3, "when": "now"}') == "q 3 now"
    with pytest.raises(ToolArgumentsError, match="query: Input should be a valid string"):
        await search.call('{"query": null, "limit": null, "when": null}')


@pytest.mark.anyio
async def test_without_strict_mode_null_is_only_accepted_where_the_type_allows_it() -> None:
    @tool
    def search(query: str, limit: int = 10, when: str | None = "today") -> str:
        return f"{query} {limit} {when}"

    assert await search.call('{"query": "q", "when": null}') == "q 10 None"
    with pytest.raises(ToolArgumentsError, match="limit: Input should be a valid integer"):
        await search.call('{"query": "q", "limit": null}')


# --- the run context ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_run_context_is_injected() -> None:
    seen: list[RunContext[corpus.Deps]] = []

    @tool
    def whoami(ctx: RunContext[corpus.Deps], greeting: str) -> str:
        seen.append(ctx)
        return f"{greeting} {ctx.deps.user}"

    messages = [UserMessage(content="hi")]
    ctx = RunContext(
        deps=corpus.Deps(user="ann"),
        messages=messages,
        usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
        tool_call_id="call_1",
    )
    assert "ctx" not in whoami.parameters["properties"]
    assert await whoami.call('{"greeting": "hi"}', ctx) == "hi ann"
    assert seen == [ctx]
    assert (seen[0].messages, seen[0].usage.total_tokens, seen[0].tool_call_id) == (
        messages,
        5,
        "call_1",
    )


@pytest.mark.anyio
async def test_a_keyword_only_run_context_is_passed_by_name() -> None:
    @tool
    async def whoami(*, ctx: RunContext[str], greeting: str) -> str:
        return f"{greeting} {ctx.deps}"

    assert await whoami.call('{"greeting": "hi"}', RunContext(deps="bob")) == "hi bob"


def test_run_context_defaults_and_immutability() -> None:
    ctx: RunContext[None] = RunContext(deps=None)
    assert (ctx.messages, ctx.usage, ctx.tool_call_id) == ((), Usage(), None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.deps = None  # type: ignore[misc]
    assert dataclasses.replace(ctx, tool_call_id="call_2").tool_call_id == "call_2"


@pytest.mark.anyio
async def test_a_tool_that_takes_a_context_needs_one() -> None:
    t = Tool.from_function(corpus.with_bare_context)
    with pytest.raises(UserError, match="tool 'with_bare_context' takes a RunContext"):
        await t.call('{"city": "Oslo"}')


# --- argument errors, written for the model ----------------------------------------------


class Size(enum.Enum):
    S = "s"
    M = "m"


@tool
def order(
    item: str,
    quantity: Annotated[int, Field(ge=1, le=10)],
    size: Size = Size.M,
    mode: Literal["fast", "slow"] = "fast",
    address: corpus.Address | None = None,
    tags: list[str] | None = None,
) -> str:
    """Order something."""
    return item


async def _error(arguments: str) -> ToolArgumentsError:
    with pytest.raises(ToolArgumentsError) as info:
        await order.call(arguments)
    assert info.value.tool_name == "order"
    assert "Traceback" not in str(info.value)
    return info.value


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("arguments", "line", "error"),
    [
        ('{"quantity": 1}', "- item: Field required", {"loc": "item", "msg": "Field required"}),
        (
            '{"item": 5, "quantity": 1}',
            "- item: Input should be a valid string (got 5)",
            {"loc": "item", "msg": "Input should be a valid string"},
        ),
        (
            '{"item": "a", "quantity": "many"}',
            '- quantity: Input should be a valid integer, unable to parse string as an integer (got "many")',
            {
                "loc": "quantity",
                "msg": "Input should be a valid integer, unable to parse string as an integer",
            },
        ),
        (
            '{"item": "a", "quantity": 11}',
            "- quantity: Input should be less than or equal to 10 (got 11)",
            {"loc": "quantity", "msg": "Input should be less than or equal to 10"},
        ),
        (
            '{"item": "a", "quantity": 1, "size": "xl"}',
            "- size: Input should be 's' or 'm' (got \"xl\")",
            {"loc": "size", "msg": "Input should be 's' or 'm'"},
        ),
        (
            '{"item": "a", "quantity": 1, "mode": "slowest"}',
            "- mode: Input should be 'fast' or 'slow' (got \"slowest\")",
            {"loc": "mode", "msg": "Input should be 'fast' or 'slow'"},
        ),
        (
            '{"item": "a", "quantity": 1, "colour": "red"}',
            "- colour: unexpected argument",
            {"loc": "colour", "msg": "unexpected argument"},
        ),
        (
            '{"item": "a", "quantity": 1, "address": {"street": "1 Rue"}}',
            "- address.city: Field required",
            {"loc": "address.city", "msg": "Field required"},
        ),
        (
            '{"item": "a", "quantity": 1, "tags": ["ok", 7]}',
            "- tags.1: Input should be a valid string (got 7)",
            {"loc": "tags.1", "msg": "Input should be a valid string"},
        ),
    ],
)
async def test_each_failing_field_is_named_with_its_reason(
    arguments: str, line: str, error: dict[str, str]
) -> None:
    exc = await _error(arguments)
    assert str(exc) == f"invalid arguments for tool 'order' (1 error):\n{line}"
    assert exc.errors == [error]


@pytest.mark.anyio
async def test_all_failing_fields_are_listed() -> None:
    exc = await _error('{"quantity": 0, "size": "xl", "extra": 1}')
    assert str(exc) == (
        "invalid arguments for tool 'order' (4 errors):\n"
        "- item: Field required\n"
        "- quantity: Input should be greater than or equal to 1 (got 0)\n"
        "- size: Input should be 's' or 'm' (got \"xl\")\n"
        "- extra: unexpected argument"
    )
    assert [e["loc"] for e in exc.errors] == ["item", "quantity", "size", "extra"]


@pytest.mark.anyio
async def test_a_long_value_is_shortened() -> None:
    exc = await _error('{"item": "a", "quantity": 1, "tags": "' + "x" * 200 + '"}')
    assert str(exc).endswith('(got "' + "x" * 76 + "...)")


@pytest.mark.anyio
async def test_invalid_json() -> None:
    exc = await _error('{"item": "a", ')
    assert str(exc) == (
        "the arguments of tool 'order' are not valid JSON "
        "(EOF while parsing a value at line 1 column 14); send an object"
    )
    assert exc.errors == [{"loc": "", "msg": "EOF while parsing a value at line 1 column 14"}]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("arguments", "kind"),
    [
        ("[1, 2]", "an array"),
        ('"text"', "a string"),
        ("null", "null"),
        ("3", "a number"),
        ("true", "a boolean"),
    ],
)
async def test_arguments_that_are_json_but_not_an_object(arguments: str, kind: str) -> None:
    exc = await _error(arguments)
    message = f"the arguments of tool 'order' must be a JSON object, not {kind}"
    assert str(exc) == message
    assert exc.errors == [{"loc": "", "msg": message}]


# --- results → tool message content -------------------------------------------------------


class Weather(BaseModel):
    city: str
    at: datetime


@dataclasses.dataclass
class Reading:
    sensor: UUID
    value: Decimal


def _returning(value: Any) -> Tool[[], Any]:
    def result() -> Any:
        return value

    return Tool.from_function(result)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("value", "content"),
    [
        ('already "text"', 'already "text"'),
        ("", ""),
        (42, "42"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ([1, "a", None], '[1,"a",null]'),
        ((1, 2), "[1,2]"),
        ({"a": {"b": [1]}}, '{"a":{"b":[1]}}'),
        (corpus.Color.BLUE, '"blue"'),
        (
            Weather(city="Oslo", at=datetime(2024, 5, 1, 12, tzinfo=timezone.utc)),
            '{"city":"Oslo","at":"2024-05-01T12:00:00Z"}',
        ),
        (
            Reading(sensor=UUID(int=1), value=Decimal("2.50")),
            '{"sensor":"00000000-0000-0000-0000-000000000001","value":"2.50"}',
        ),
        (
            {"when": datetime(2024, 1, 1), "id": UUID(int=0)},
            '{"when":"2024-01-01T00:00:00","id":"00000000-0000-0000-0000-000000000000"}',
        ),
    ],
)
async def test_results_become_tool_message_content(value: Any, content: str) -> None:
    assert await _returning(value).call("{}") == content


@pytest.mark.anyio
async def test_an_unserialisable_result_names_the_tool() -> None:
    with pytest.raises(ToolResultError) as info:
        await _returning(object()).call("{}")
    assert info.value.tool_name == "result"
    assert str(info.value) == (
        "tool 'result' returned a value that cannot be sent: "
        "Unable to serialize unknown type: <class 'object'>"
    )
