"""Bad tool definitions fail when the decorator runs, naming the tool and the parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentkit._exceptions import ToolDefinitionError, UserError
from agentkit._tools.context import RunContext
from agentkit._tools.tool import Tool, tool, tools_by_name


class Opaque:
    """A class pydantic knows nothing about."""


def _problems(fn: Callable[..., Any], **options: Any) -> list[str]:
    with pytest.raises(ToolDefinitionError) as info:
        Tool.from_function(fn, **options)
    assert isinstance(info.value, UserError)
    return info.value.problems


def test_var_positional() -> None:
    def f(*numbers: int) -> None: ...

    assert _problems(f) == ["parameter '*numbers': *args cannot be sent by a model; name each one"]


def test_var_keyword() -> None:
    def f(**options: str) -> None: ...

    assert _problems(f) == [
        "parameter '**options': **kwargs cannot be sent by a model; name each one"
    ]


def test_missing_annotation() -> None:
    def f(city, days: int) -> None: ...  # type: ignore[no-untyped-def]

    assert _problems(f) == ["parameter 'city' has no type annotation"]


def test_type_without_a_schema() -> None:
    def f(thing: Opaque) -> None: ...

    assert _problems(f) == [
        "parameter 'thing': type Opaque cannot be expressed as JSON schema (Unable to generate "
        "pydantic-core schema for <class 'tests.test_tools_errors.Opaque'>)"
    ]


def test_type_that_validates_but_has_no_json_schema() -> None:
    def f(callback: Callable[[], int]) -> None: ...

    assert _problems(f) == [
        "parameter 'callback': type collections.abc.Callable[[], int] cannot be expressed as "
        "JSON schema (Cannot generate a JsonSchema for core_schema.CallableSchema)"
    ]


def test_unresolvable_annotation() -> None:
    def f(city: Missing, days: int) -> None: ...  # type: ignore[name-defined]  # noqa: F821

    assert _problems(f) == [
        "parameter 'city': cannot resolve its annotation (name 'Missing' is not defined)"
    ]


def test_an_unresolvable_return_annotation_does_not_matter() -> None:
    def f(city: str) -> Missing: ...  # type: ignore[name-defined]  # noqa: F821

    assert Tool.from_function(f).parameters["required"] == ["city"]


def test_run_context_must_come_first() -> None:
    def f(city: str, ctx: RunContext[None]) -> None: ...

    assert _problems(f) == ["parameter 'ctx': RunContext must be the first parameter"]


@pytest.mark.parametrize("name", ["has space", "dotted.name", "", "x" * 65, "émoji"])
def test_bad_name(name: str) -> None:
    def f() -> None: ...

    with pytest.raises(ToolDefinitionError) as info:
        Tool.from_function(f, name=name)
    assert info.value.tool_name == name
    assert info.value.problems == ["the name must match ^[a-zA-Z0-9_-]{1,64}$"]


def test_a_lambda_needs_a_name() -> None:
    assert _problems(lambda: None) == ["the name must match ^[a-zA-Z0-9_-]{1,64}$"]
    assert Tool.from_function(lambda: None, name="noop").name == "noop"


def test_longest_name_is_accepted() -> None:
    def f() -> None: ...

    assert Tool.from_function(f, name="a-" + "x" * 62).name == "a-" + "x" * 62


@pytest.mark.parametrize("timeout", [0, -1.0])
def test_bad_timeout(timeout: float) -> None:
    def f() -> None: ...

    assert _problems(f, timeout=timeout) == [
        f"timeout must be a positive number of seconds, not {timeout!r}"
    ]


def test_every_problem_is_reported_at_once() -> None:
    def f(  # type: ignore[no-untyped-def]
        bad: Opaque, untyped, fine: int, ctx: RunContext[None], *args: int, **kwargs: int
    ) -> None: ...

    with pytest.raises(ToolDefinitionError) as info:
        tool(name="bad name")(f)
    assert str(info.value) == (
        "tool 'bad name' cannot be defined:\n"
        "  - the name must match ^[a-zA-Z0-9_-]{1,64}$\n"
        "  - parameter 'untyped' has no type annotation\n"
        "  - parameter 'ctx': RunContext must be the first parameter\n"
        "  - parameter '*args': *args cannot be sent by a model; name each one\n"
        "  - parameter '**kwargs': **kwargs cannot be sent by a model; name each one\n"
        "  - parameter 'bad': type Opaque cannot be expressed as JSON schema (Unable to "
        "generate pydantic-core schema for <class 'tests.test_tools_errors.Opaque'>)"
    )


def test_duplicate_names() -> None:
    def search(query: str) -> str: ...

    def other(query: str) -> str: ...

    with pytest.raises(ToolDefinitionError) as info:
        tools_by_name([tool(search), tool(name="search")(other)])
    assert info.value.tool_name == "search"
    assert info.value.problems == [
        "another tool is already named 'search': "
        "function tests.test_tools_errors.test_duplicate_names.<locals>.search and "
        "function tests.test_tools_errors.test_duplicate_names.<locals>.other"
    ]


def test_tools_by_name_indexes_tools_and_plain_functions_in_order() -> None:
    def b(x: int) -> int: ...

    def a(x: int) -> int: ...

    index = tools_by_name([tool(b), a])
    assert list(index) == ["b", "a"]
    assert all(isinstance(t, Tool) for t in index.values())
    with pytest.raises(ToolDefinitionError):
        tools_by_name([b, b])
