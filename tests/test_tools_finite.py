"""Tool arguments refuse NaN and ±Infinity by default (a check such as `amount > limit`
is false for NaN), however the model sends them; a parameter may opt in."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Annotated, Any

import pydantic.dataclasses
import pytest
from pydantic import BaseModel, ConfigDict, Field, model_validator
from typing_extensions import TypedDict

from agentkit import Agent, ToolArgumentsError, tool
from agentkit.mcp._argcheck import check_arguments
from agentkit.testing import ScriptedModel, call

# Every way a model can send a non-finite number: JSON tokens (which Python's json and
# pydantic's parser accept), a string pydantic converts, a number too big for a float.
NON_FINITE = ["NaN", "Infinity", "-Infinity", '"nan"', '"-inf"', '"Infinity"', "1e999", "-1e999"]


class Inner(BaseModel):
    value: float


class Order(BaseModel):
    amount: float
    inner: Inner | None = None
    children: list[Order] = []

    @model_validator(mode="after")
    def positive(self) -> Order:
        if self.amount < 0:
            raise ValueError("amount must not be negative")
        return self


class Measure(BaseModel):
    model_config = ConfigDict(allow_inf_nan=True)
    reading: float


@pydantic.dataclasses.dataclass
class Point:
    x: float


@dataclasses.dataclass
class PlainPoint:
    y: float


class Box(TypedDict):
    width: float


@tool
def pay(
    amount: float,
    limit: Annotated[float, Field(allow_inf_nan=True)] = 100.0,
    fee: float | None = None,
    split: list[float] | None = None,
    exact: Decimal | None = None,
    order: Order | None = None,
    measure: Measure | None = None,
    point: Point | None = None,
    plain: PlainPoint | None = None,
    box: Box | None = None,
) -> str:
    """Pay an amount, if it is within the limit.

    Args:
        amount: How much to pay.
        limit: The largest amount allowed.
        fee: A fee on top.
        split: Parts of the amount.
        exact: The amount as a decimal.
        order: The order paid for.
        measure: A reading that may be infinite.
        point: A point.
        plain: A plain dataclass point.
        box: A box.
    """
    return "paid" if amount <= limit else "over the limit"


def refused(arguments: str) -> ToolArgumentsError:
    with pytest.raises(ToolArgumentsError) as info:
        pay.validate_arguments(arguments)
    return info.value


@pytest.mark.parametrize("number", NON_FINITE)
@pytest.mark.parametrize(
    ("template", "loc"),
    [
        ('{"amount": %s}', "amount"),
        ('{"amount": 1, "fee": %s}', "fee"),
        ('{"amount": 1, "split": [1, %s]}', "split.1"),
        ('{"amount": 1, "exact": %s}', "exact"),
        ('{"amount": 1, "order": {"amount": %s}}', "order.amount"),
        ('{"amount": 1, "order": {"amount": 1, "inner": {"value": %s}}}', "order.inner.value"),
        (
            '{"amount": 1, "order": {"amount": 1, "children": [{"amount": %s}]}}',
            "order.children.0.amount",
        ),
        ('{"amount": 1, "point": {"x": %s}}', "point.x"),
        ('{"amount": 1, "plain": {"y": %s}}', "plain.y"),
        ('{"amount": 1, "box": {"width": %s}}', "box.width"),
    ],
)
def test_non_finite_numbers_are_refused(template: str, loc: str, number: str) -> None:
    error = refused(template % number)
    assert error.errors == [{"loc": loc, "msg": "must be a finite number, not NaN or Infinity"}]
    assert f"- {loc}: must be a finite number, not NaN or Infinity" in str(error)
    assert "'pay'" in str(error)


def test_the_offending_value_is_quoted_as_sent() -> None:
    assert "(got NaN)" in str(refused('{"amount": NaN}'))
    assert "(got -Infinity)" in str(refused('{"amount": -1e999}'))


@pytest.mark.parametrize("number", ["NaN", "Infinity", '"-inf"'])
def test_a_parameter_or_model_may_opt_in(number: str) -> None:
    got = pay.validate_arguments(f'{{"amount": 1, "limit": {number}}}')
    assert got["limit"] != got["limit"] or abs(got["limit"]) == float("inf")
    got = pay.validate_arguments(f'{{"amount": 1, "measure": {{"reading": {number}}}}}')
    assert isinstance(got["measure"], Measure)


def test_finite_numbers_and_model_behaviour_are_unchanged() -> None:
    got = pay.validate_arguments(
        '{"amount": 2.5, "order": {"amount": 3, "inner": {"value": -1.5}, "children": [{"amount": 1}]}}'
    )
    assert type(got["order"]) is Order and got["order"].children[0].amount == 1
    error = refused('{"amount": 1, "order": {"amount": -1}}')
    assert "amount must not be negative" in str(error)
    # The models themselves keep pydantic's default outside tools.
    assert Order.__pydantic_complete__ is True
    assert Order.model_validate({"amount": float("nan")}).amount != 0


def test_tools_without_models_keep_a_single_validator() -> None:
    @tool
    def plain(x: float, ys: list[float]) -> float:
        return x

    assert plain._schema.validator is plain._schema.adapter.validator
    with pytest.raises(ToolArgumentsError):
        plain.validate_arguments('{"x": NaN, "ys": []}')


@pytest.mark.anyio
async def test_the_model_is_told_which_parameter_to_fix() -> None:
    model = ScriptedModel([call("pay", '{"amount": NaN}'), call("pay", amount=5), "done"])
    agent = Agent("m", client=model, tools=[pay])
    result = await agent.run("pay five")
    tool_messages = [m for m in result.messages if m.role == "tool"]
    assert "amount: must be a finite number, not NaN or Infinity" in str(tool_messages[0].content)
    assert tool_messages[1].content == "paid"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_mcp_arguments_refuse_non_finite_numbers(value: float) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"amount": {"type": "number"}, "any": {}, "parts": {"items": {}}},
    }
    for args in ({"amount": value}, {"any": value}, {"parts": [1, value]}):
        errors = check_arguments(args, schema)
        assert len(errors) == 1 and "must be a finite number" in errors[0]["msg"]
