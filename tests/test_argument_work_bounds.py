"""Checking a model's arguments takes work bounded by their size, not by the number of
their errors or the shape of a foreign schema (issue rows 10 and 11).

Timed for growth, not absolute speed: each test times the same work at n and at 8n
or 16n on this (shared, noisy) machine, best of three, and asserts that the time grew
clearly less than quadratically. Every loop is bounded.
"""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from agentkit import ToolArgumentsError, tool
from agentkit.mcp._argcheck import MAX_ERRORS, MAX_STEPS, check_arguments

FLOOR = 0.002  # seconds: below this, timer noise swamps the ratio


def best_time(work: Callable[[], Any], repeat: int = 3) -> float:
    # Without the cyclic garbage collector, whose passes over every live object
    # (the parsed arguments, the errors) would add their own growth to the measure.
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeat):
            started = time.perf_counter()
            work()
            best = min(best, time.perf_counter() - started)
    finally:
        gc.enable()
    return max(best, FLOOR)


RATIOS: list[tuple[str, float]] = []


def assert_sub_quadratic(small: float, large: float, factor: int) -> None:
    # Linear growth gives `factor`, quadratic `factor**2`; a third of that still
    # leaves room for a noisy machine (and for allocation costs that grow with
    # memory use) while failing anything quadratic.
    RATIOS.append((f"x{factor}", large / small))
    assert large / small < factor**2 / 3, (small, large, factor)


# --- row 11: many invalid items ------------------------------------------------------


@tool
def total(xs: list[int]) -> int:
    """Add numbers up."""
    return sum(xs)


def refuse(arguments: str) -> ToolArgumentsError:
    with pytest.raises(ToolArgumentsError) as info:
        total.validate_arguments(arguments)
    return info.value


@pytest.mark.slow
def test_a_huge_invalid_list_gives_a_short_error_in_linear_time() -> None:
    n = 20_000
    small_args = json.dumps({"xs": ["a"] * n})
    large_args = json.dumps({"xs": ["a"] * (16 * n)})
    error = refuse(large_args)
    assert len(error.errors) <= MAX_ERRORS
    assert len(str(error)) < 2_000
    assert f"({16 * n:,} errors; the first" in str(error)
    assert "- xs.0: Input should be a valid integer" in str(error)
    small = best_time(lambda: refuse(small_args))
    large = best_time(lambda: refuse(large_args))
    assert_sub_quadratic(small, large, 16)


def test_a_few_errors_are_all_listed() -> None:
    error = refuse(json.dumps({"xs": [1, "a", 2, "b"]}))
    assert str(error).startswith("invalid arguments for tool 'total' (2 errors):\n")
    assert [e["loc"] for e in error.errors] == ["xs.1", "xs.3"]


def test_many_errors_of_separate_fields_are_capped() -> None:
    @tool
    def table(rows: list[dict[str, int]]) -> int:
        return len(rows)

    rows = [{"a": "x", "b": "y"} for _ in range(500)]
    with pytest.raises(ToolArgumentsError) as info:
        table.validate_arguments(json.dumps({"rows": rows}))
    assert len(info.value.errors) <= MAX_ERRORS
    assert "(1,000 errors; the first" in str(info.value)


@pytest.mark.slow
def test_many_unknown_arguments_give_a_short_error_in_linear_time() -> None:
    @tool
    def one(x: int = 0) -> int:
        return x

    def arguments(n: int) -> str:
        return json.dumps({"x": "not a number", **{f"extra{i}": i for i in range(n)}})

    def refused(text: str) -> ToolArgumentsError:
        with pytest.raises(ToolArgumentsError) as info:
            one.validate_arguments(text)
        return info.value

    n = 20_000
    small_args, large_args = arguments(n), arguments(16 * n)
    error = refused(large_args)
    assert len(error.errors) == MAX_ERRORS and len(str(error)) < 2_000
    assert error.errors[0]["loc"] == "x"  # the field's own error comes first
    assert error.errors[1] == {"loc": "extra0", "msg": "unexpected argument"}
    assert f"({16 * n + 1:,} errors; the first 20 are listed" in str(error)
    small = best_time(lambda: refused(small_args))
    large = best_time(lambda: refused(large_args))
    assert_sub_quadratic(small, large, 16)


def test_an_offending_big_value_is_quoted_without_serialising_all_of_it() -> None:
    @tool
    def one(x: int) -> int:
        return x

    n = 5_000
    small_args, large_args = (
        json.dumps({"x": [[i] * 10 for i in range(size)]}) for size in (n, 8 * n)
    )

    def quote(arguments: str) -> str:
        with pytest.raises(ToolArgumentsError) as info:
            one.validate_arguments(arguments)
        return str(info.value)

    assert len(quote(large_args)) < 300
    assert "(got [[0,0,0,0,0,0,0,0],[1,1,1,1,1,1,1,1]" in quote(small_args)


def test_mcp_check_stops_collecting_errors() -> None:
    schema = {
        "type": "object",
        "properties": {"xs": {"type": "array", "items": {"type": "integer"}}},
    }
    errors = check_arguments({"xs": ["a"] * 200_000}, schema)
    assert len(errors) == MAX_ERRORS + 1
    small = best_time(lambda: check_arguments({"xs": [1] * 20_000}, schema))
    large = best_time(lambda: check_arguments({"xs": [1] * 320_000}, schema))
    assert_sub_quadratic(small, large, 16)


# --- row 10: anyOf / oneOf of a recursive schema ---------------------------------------


def recursive_schema(branches: int, keyword: str = "anyOf") -> dict[str, Any]:
    forms = [
        {
            "type": "object",
            "properties": {"child": {"$ref": "#/$defs/node"}, "kind": {"const": f"k{i}"}},
            "required": ["kind"],
        }
        for i in range(branches)
    ]
    return {
        "$defs": {"node": {keyword: forms}},
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/node"}},
    }


def nested(depth: int, kind: str, leaf: str) -> dict[str, Any]:
    # The child comes before the kind, so each branch has to look into the child
    # before it can tell that the kind does not match.
    node: dict[str, Any] = {"kind": leaf}
    for _ in range(depth - 1):
        node = {"child": node, "kind": kind}
    return {"root": node}


@pytest.mark.parametrize("keyword", ["anyOf", "oneOf"])
def test_branches_are_tried_once_per_value(keyword: str) -> None:
    depth = 4
    small_schema, large_schema = recursive_schema(2, keyword), recursive_schema(16, keyword)
    small_value = nested(depth, "k1", "k1")
    large_value = nested(depth, "k15", "k15")
    assert check_arguments(large_value, large_schema) == []
    # Trying every branch in full at each level costs branches**depth: 16**4 / 2**4.
    # Twenty checks a time, so that both are well above the timer's noise.
    small = best_time(lambda: [check_arguments(small_value, small_schema) for _ in range(20)])
    large = best_time(lambda: [check_arguments(large_value, large_schema) for _ in range(20)])
    assert_sub_quadratic(small, large, 8)


def test_a_deep_mismatch_is_still_found() -> None:
    schema = recursive_schema(8)
    assert check_arguments(nested(6, "k7", "k7"), schema) == []
    errors = check_arguments(nested(6, "k7", "nope"), schema)
    assert errors == [{"loc": "root", "msg": "an object matches none of the allowed forms"}]


def test_a_budget_bounds_the_work_on_any_input() -> None:
    schema = {"type": "object", "properties": {"xs": {"type": "array", "items": {}}}}
    # Past the budget, the rest is accepted for the server to judge.
    value = {"xs": [1] * (MAX_STEPS + 10) + [float("nan")]}
    assert check_arguments(value, schema) == []
    assert check_arguments({"xs": [1, float("nan")]}, schema) != []
