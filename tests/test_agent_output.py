"""Structured output: `output_type` → a strict `response_format`, and a validated answer."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from agentkit import (
    Agent,
    OutputValidationError,
    RefusalError,
    UserError,
    UserMessage,
    tool,
)
from tests.chat_server import assert_history_valid, calls, completion, serve, tool_call

pytestmark = pytest.mark.anyio


class City(BaseModel):
    """A city and its population."""

    name: str
    population: int
    country: str | None = None


class Forecast(BaseModel):
    city: City
    sky: Literal["sunny", "cloudy"]
    temperatures: list[float]


CITY_SCHEMA = {
    "description": "A city and its population.",
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "population": {"type": "integer"},
        "country": {"anyOf": [{"type": "string"}, {"type": "null"}]},
    },
    "required": ["name", "population", "country"],
    "additionalProperties": False,
}


@tool
def census(city: str) -> int:
    """Population of a city."""
    return 2_100_000


def check_strict(schema: dict[str, Any], answer: Any) -> None:
    """`schema` is a valid JSON schema in OpenAI's strict form that accepts `answer`."""
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema).validate(answer)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node["additionalProperties"] is False
                assert set(node["required"]) == set(node["properties"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)


async def test_pydantic_output_type_sends_a_strict_schema_and_validates() -> None:
    answer = {"name": "Paris", "population": 2100000, "country": None}
    async with serve(completion(json.dumps(answer))) as (server, client):
        result = await Agent("m", client=client, output_type=City).run("Paris?")

    assert result.output == City(name="Paris", population=2100000)
    assert server.requests[0]["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "City",
            "description": "A city and its population.",
            "schema": CITY_SCHEMA,
            "strict": True,
        },
    }
    check_strict(server.requests[0]["response_format"]["json_schema"]["schema"], answer)
    assert_history_valid(result.messages)


async def test_nested_output_type_schema_is_strict() -> None:
    answer = {
        "city": {"name": "Oslo", "population": 700000, "country": "NO"},
        "sky": "cloudy",
        "temperatures": [3.5, 4],
    }
    async with serve(completion(json.dumps(answer))) as (server, client):
        result = await Agent("m", client=client, output_type=Forecast).run("?")
    assert result.output == Forecast.model_validate(answer)
    check_strict(server.requests[0]["response_format"]["json_schema"]["schema"], answer)


async def test_response_format_is_sent_with_tools_on_every_request() -> None:
    answer = json.dumps({"name": "Paris", "population": 2100000, "country": "FR"})
    replies = [calls(tool_call("c1", "census", {"city": "Paris"})), completion(answer)]
    async with serve(*replies) as (server, client):
        result = await Agent("m", client=client, tools=[census], output_type=City).run("?")
    assert result.output.country == "FR"
    assert all(body["response_format"]["type"] == "json_schema" for body in server.requests)
    assert all("tools" in body for body in server.requests)


async def test_one_invalid_answer_then_a_valid_one() -> None:
    good = {"name": "Paris", "population": 2100000, "country": "FR"}
    replies = [completion(json.dumps({"name": "Paris"})), completion(json.dumps(good))]
    async with serve(*replies) as (server, client):
        result = await Agent("m", client=client, output_type=City).run("Paris?")

    assert result.output == City(**good)
    assert result.turns == 2
    assert server.messages[1][1:] == [
        {"role": "assistant", "content": '{"name": "Paris"}'},
        {
            "role": "user",
            "content": "the answer does not match the schema:\n"
            "- population: Field required\n"
            "Please answer again.",
        },
    ]
    assert_history_valid(result.messages)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "the answer is not valid JSON"),
        ("", "the answer was empty"),
        ('{"name": "Paris", "population": "many", "country": null}', "population: Input should"),
    ],
)
async def test_invalid_answers_are_fed_back(text: str, error: str) -> None:
    good = json.dumps({"name": "Paris", "population": 1, "country": None})
    async with serve(completion(text), completion(good)) as (server, client):
        result = await Agent("m", client=client, output_type=City).run("?")
    feedback = server.messages[1][-1]
    assert feedback["role"] == "user"
    assert error in feedback["content"]
    assert result.output.population == 1


async def test_exhausted_output_retries_raise_output_validation_error() -> None:
    bad = completion('{"name": "Paris"}')
    async with serve(bad, bad, bad, completion("never")) as (server, client):
        with pytest.raises(OutputValidationError, match="3 times") as info:
            await Agent("m", client=client, output_type=City, output_retries=2).run("?")
    assert len(server.requests) == 3
    assert (
        info.value.errors == "the answer does not match the schema:\n- population: Field required"
    )
    # The history ends with the last bad answer; it was not fed back.
    assert info.value.messages[-1].role == "assistant"
    assert sum(isinstance(m, UserMessage) for m in info.value.messages) == 3
    assert_history_valid(info.value.messages)


async def test_output_retries_zero() -> None:
    async with serve(completion("nope")) as (_, client):
        with pytest.raises(OutputValidationError) as info:
            await Agent("m", client=client, output_type=City, output_retries=0).run("?")
    assert_history_valid(info.value.messages)


async def test_non_object_output_type_is_wrapped() -> None:
    async with serve(completion('{"value": [1, 2, 3]}')) as (server, client):
        result = await Agent("m", client=client, output_type=list[int]).run("Three numbers?")
    assert result.output == [1, 2, 3]
    fmt = server.requests[0]["response_format"]["json_schema"]
    assert fmt["strict"] is True
    assert fmt["schema"] == {
        "type": "object",
        "properties": {"value": {"type": "array", "items": {"type": "integer"}}},
        "required": ["value"],
        "additionalProperties": False,
    }
    check_strict(fmt["schema"], {"value": [1, 2, 3]})


async def test_wrapped_output_without_the_key_is_retried() -> None:
    async with serve(completion("[1, 2]"), completion('{"value": [1, 2]}')) as (server, client):
        result = await Agent("m", client=client, output_type=list[int]).run("?")
    assert result.output == [1, 2]
    assert 'must be an object with the key "value"' in server.messages[1][-1]["content"]


async def test_scalar_output_type() -> None:
    async with serve(completion('{"value": 42}')) as (_, client):
        result = await Agent("m", client=client, output_type=int).run("?")
    assert result.output == 42


async def test_refusal_with_structured_output() -> None:
    async with serve(completion(None, refusal="No.")) as (_, client):
        with pytest.raises(RefusalError) as info:
            await Agent("m", client=client, output_type=City).run("?")
    assert info.value.refusal == "No."
    assert_history_valid(info.value.messages)


async def test_text_output_sends_no_response_format() -> None:
    async with serve(completion("hi")) as (server, client):
        result = await Agent("m", client=client).run("?")
    assert "response_format" not in server.requests[0]
    assert result.output == "hi"


def test_output_type_that_cannot_be_strict_is_rejected() -> None:
    with pytest.raises(UserError, match="output_type"):
        Agent("m", output_type=dict[str, int])
