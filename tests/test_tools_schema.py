"""Function → schema: every type and docstring style, asserted exactly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentkit._tools.strict import schema_children
from agentkit._tools.tool import Tool, tool
from tests import tools_corpus as corpus
from tests.openai_spec.validate import validate_request

SCHEMAS: dict[str, Any] = {
    "no_params": {
        "description": "Say hello.",
        "parameters": {"additionalProperties": False, "properties": {}, "type": "object"},
    },
    "primitives": {
        "description": "Primitive types.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "s": {"description": "A string.", "type": "string"},
                "i": {"description": "An integer.", "type": "integer"},
                "f": {"description": "A float.", "type": "number"},
                "b": {"description": "A boolean.", "type": "boolean"},
                "n": {"description": "Always null.", "type": "null"},
            },
            "required": ["s", "i", "f", "b", "n"],
            "type": "object",
        },
    },
    "optionals": {
        "description": "Optional values.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "a": {
                    "anyOf": [{"type": "integer"}, {"type": "null"}],
                    "description": "Required but may be null.",
                },
                "b": {
                    "anyOf": [{"type": "integer"}, {"type": "null"}],
                    "description": "Optional, null by default.",
                    "default": None,
                },
                "c": {
                    "anyOf": [{"type": "string"}, {"type": "null"}],
                    "description": "Optional with a non-null default.",
                    "default": "x",
                },
            },
            "required": ["a"],
            "type": "object",
        },
    },
    "unions": {
        "description": "Union types.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "v": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "w": {
                    "anyOf": [{"type": "number"}, {"items": {"type": "string"}, "type": "array"}]
                },
            },
            "required": ["v", "w"],
            "type": "object",
        },
    },
    "sequences": {
        "description": "Sequences of one type.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "tags": {"description": "Labels.", "items": {"type": "string"}, "type": "array"},
                "scores": {
                    "description": "Any number of scores.",
                    "items": {"type": "number"},
                    "type": "array",
                },
                "ids": {
                    "description": "Distinct identifiers.",
                    "items": {"type": "integer"},
                    "type": "array",
                    "uniqueItems": True,
                },
            },
            "required": ["tags", "scores", "ids"],
            "type": "object",
        },
    },
    "fixed_tuple": {
        "description": "A fixed-length tuple.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "pair": {
                    "maxItems": 2,
                    "minItems": 2,
                    "prefixItems": [{"type": "integer"}, {"type": "string"}],
                    "type": "array",
                }
            },
            "required": ["pair"],
            "type": "object",
        },
    },
    "mapping": {
        "description": "A mapping of names to counts.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "counts": {
                    "additionalProperties": {"type": "integer"},
                    "description": "How many of each.",
                    "type": "object",
                }
            },
            "required": ["counts"],
            "type": "object",
        },
    },
    "literals": {
        "description": "Literal values.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "mode": {"enum": ["fast", "slow"], "type": "string"},
                "only": {"const": "yes", "type": "string"},
                "level": {"enum": [1, 2, 3], "type": "integer"},
            },
            "required": ["mode", "only", "level"],
            "type": "object",
        },
    },
    "enums": {
        "description": "Enumerations.",
        "parameters": {
            "$defs": {
                "Color": {
                    "description": "A primary colour.",
                    "enum": ["red", "green", "blue"],
                    "type": "string",
                },
                "Priority": {"enum": [1, 2], "type": "integer"},
            },
            "additionalProperties": False,
            "properties": {
                "color": {"$ref": "#/$defs/Color", "description": "Which colour."},
                "priority": {
                    "$ref": "#/$defs/Priority",
                    "description": "How urgent.",
                    "default": 1,
                },
            },
            "required": ["color"],
            "type": "object",
        },
    },
    "temporal": {
        "description": "Dates and times.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "when": {"description": "A moment.", "format": "date-time", "type": "string"},
                "day": {"description": "A calendar day.", "format": "date", "type": "string"},
                "at": {"description": "A time of day.", "format": "time", "type": "string"},
                "span": {"description": "A duration.", "format": "duration", "type": "string"},
            },
            "required": ["when", "day", "at", "span"],
            "type": "object",
        },
    },
    "identifiers": {
        "description": "A UUID and a decimal.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "id": {"format": "uuid", "type": "string"},
                "amount": {"anyOf": [{"type": "number"}, {"type": "string"}]},
            },
            "required": ["id", "amount"],
            "type": "object",
        },
    },
    "model_param": {
        "description": "A pydantic model.",
        "parameters": {
            "$defs": {
                "Address": {
                    "description": "A postal address.",
                    "properties": {
                        "street": {"description": "Street and number.", "type": "string"},
                        "city": {"type": "string"},
                        "country": {
                            "default": "FR",
                            "description": "ISO 3166 country code.",
                            "type": "string",
                        },
                    },
                    "required": ["street", "city"],
                    "type": "object",
                }
            },
            "additionalProperties": False,
            "properties": {"address": {"$ref": "#/$defs/Address", "description": "Where to go."}},
            "required": ["address"],
            "type": "object",
        },
    },
    "nested_models": {
        "description": "Nested pydantic models.",
        "parameters": {
            "$defs": {
                "Address": {
                    "description": "A postal address.",
                    "properties": {
                        "street": {"description": "Street and number.", "type": "string"},
                        "city": {"type": "string"},
                        "country": {
                            "default": "FR",
                            "description": "ISO 3166 country code.",
                            "type": "string",
                        },
                    },
                    "required": ["street", "city"],
                    "type": "object",
                },
                "Item": {
                    "properties": {
                        "sku": {"description": "Stock keeping unit.", "type": "string"},
                        "quantity": {"minimum": 1, "type": "integer"},
                    },
                    "required": ["sku", "quantity"],
                    "type": "object",
                },
                "Order": {
                    "description": "An order to place.",
                    "properties": {
                        "items": {"items": {"$ref": "#/$defs/Item"}, "type": "array"},
                        "ship_to": {"$ref": "#/$defs/Address", "description": "Where to deliver."},
                        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                    },
                    "required": ["items", "ship_to"],
                    "type": "object",
                },
            },
            "additionalProperties": False,
            "properties": {
                "order": {"$ref": "#/$defs/Order", "description": "The order."},
                "gift": {"description": "Wrap it.", "type": "boolean", "default": False},
            },
            "required": ["order"],
            "type": "object",
        },
    },
    "recursive_model": {
        "description": "A recursive model.",
        "parameters": {
            "$defs": {
                "TreeNode": {
                    "properties": {
                        "label": {"type": "string"},
                        "children": {
                            "default": [],
                            "items": {"$ref": "#/$defs/TreeNode"},
                            "type": "array",
                        },
                    },
                    "required": ["label"],
                    "type": "object",
                }
            },
            "additionalProperties": False,
            "properties": {"tree": {"$ref": "#/$defs/TreeNode"}},
            "required": ["tree"],
            "type": "object",
        },
    },
    "tagged_union": {
        "description": "A discriminated union of models.",
        "parameters": {
            "$defs": {
                "Cat": {
                    "properties": {
                        "kind": {"const": "cat", "type": "string"},
                        "indoor": {"type": "boolean"},
                    },
                    "required": ["kind", "indoor"],
                    "type": "object",
                },
                "Dog": {
                    "properties": {
                        "kind": {"const": "dog", "type": "string"},
                        "breed": {"type": "string"},
                    },
                    "required": ["kind", "breed"],
                    "type": "object",
                },
            },
            "additionalProperties": False,
            "properties": {
                "pet": {
                    "description": "The pet.",
                    "discriminator": {
                        "mapping": {"cat": "#/$defs/Cat", "dog": "#/$defs/Dog"},
                        "propertyName": "kind",
                    },
                    "oneOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}],
                }
            },
            "required": ["pet"],
            "type": "object",
        },
    },
    "typed_dict": {
        "description": "A TypedDict.",
        "parameters": {
            "$defs": {
                "Movie": {
                    "additionalProperties": False,
                    "description": "A film.",
                    "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
                    "required": ["title"],
                    "type": "object",
                }
            },
            "additionalProperties": False,
            "properties": {"movie": {"$ref": "#/$defs/Movie"}},
            "required": ["movie"],
            "type": "object",
        },
    },
    "dataclass_param": {
        "description": "A dataclass.",
        "parameters": {
            "$defs": {
                "Point": {
                    "additionalProperties": False,
                    "properties": {
                        "x": {"type": "number"},
                        "y": {"default": 0.0, "type": "number"},
                    },
                    "required": ["x"],
                    "type": "object",
                }
            },
            "additionalProperties": False,
            "properties": {"point": {"$ref": "#/$defs/Point"}},
            "required": ["point"],
            "type": "object",
        },
    },
    "constrained": {
        "description": "Annotated constraints.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "percent": {
                    "description": "A percentage.",
                    "maximum": 100,
                    "minimum": 0,
                    "type": "integer",
                },
                "code": {
                    "description": "An upper-case code.",
                    "maxLength": 8,
                    "minLength": 2,
                    "pattern": "^[A-Z]+$",
                    "type": "string",
                },
                "step": {
                    "description": "A step size.",
                    "exclusiveMinimum": 0,
                    "multipleOf": 0.5,
                    "type": "number",
                    "default": 1.0,
                },
                "items": {
                    "description": "One to three items.",
                    "items": {"type": "integer"},
                    "maxItems": 3,
                    "minItems": 1,
                    "type": "array",
                    "default": [1],
                },
            },
            "required": ["percent", "code"],
            "type": "object",
        },
    },
    "keyword_only": {
        "description": "Keyword-only parameters.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "query": {"description": "What to look for.", "type": "string"},
                "limit": {
                    "description": "At most this many results.",
                    "type": "integer",
                    "default": 10,
                },
                "exact": {"description": "Match exactly.", "type": "boolean", "default": False},
            },
            "required": ["query"],
            "type": "object",
        },
    },
    "positional_only": {
        "description": "Positional-only parameters.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "a": {"type": "integer"},
                "b": {"type": "integer", "default": 2},
                "c": {"type": "integer", "default": 3},
            },
            "required": ["a"],
            "type": "object",
        },
    },
    "google_style": {
        "description": "Forecast the weather.\n"
        "\n"
        "Looks the city up in the forecast service and\n"
        "returns a short summary.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "city": {
                    "description": "Name of the city,\npossibly with a country.",
                    "type": "string",
                },
                "days": {"description": "How many days ahead.", "type": "integer", "default": 1},
            },
            "required": ["city"],
            "type": "object",
        },
    },
    "numpy_style": {
        "description": "Forecast the weather.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "city": {"description": "Name of the city.", "type": "string"},
                "days": {"description": "How many days ahead.", "type": "integer", "default": 1},
            },
            "required": ["city"],
            "type": "object",
        },
    },
    "rest_style": {
        "description": "Forecast the weather.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "city": {"description": "Name of the city.", "type": "string"},
                "days": {"description": "How many days ahead.", "type": "integer", "default": 1},
            },
            "required": ["city"],
            "type": "object",
        },
    },
    "epydoc_style": {
        "description": "Forecast the weather.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "city": {"description": "Name of the city.", "type": "string"},
                "days": {"description": "How many days ahead.", "type": "integer", "default": 1},
            },
            "required": ["city"],
            "type": "object",
        },
    },
    "undocumented": {
        "description": None,
        "parameters": {
            "additionalProperties": False,
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "type": "object",
        },
    },
    "with_context": {
        "description": "Uses the run context.",
        "parameters": {
            "additionalProperties": False,
            "properties": {"city": {"description": "A city.", "type": "string"}},
            "required": ["city"],
            "type": "object",
        },
    },
    "with_bare_context": {
        "description": "Uses a bare RunContext.",
        "parameters": {
            "additionalProperties": False,
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "type": "object",
        },
    },
    "async_tool": {
        "description": "An async function.",
        "parameters": {
            "additionalProperties": False,
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "type": "object",
        },
    },
    "awkward_names": {
        "description": "Parameter names that clash with BaseModel or JSON-schema keywords.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "json": {"description": "A JSON text.", "type": "string"},
                "title": {"description": "A title, not the schema keyword.", "type": "string"},
                "model_config": {
                    "description": "Not pydantic's config.",
                    "type": "integer",
                    "default": 0,
                },
            },
            "required": ["json", "title"],
            "type": "object",
        },
    },
    "unencodable_default": {
        "description": "Defaults that have no JSON form stay out of the schema.",
        "parameters": {
            "additionalProperties": False,
            "properties": {
                "when": {
                    "anyOf": [{"format": "date-time", "type": "string"}, {"type": "null"}],
                    "default": None,
                },
                "probe": {},
            },
            "type": "object",
        },
    },
    "optional_model": {
        "description": "Optional containers.",
        "parameters": {
            "$defs": {
                "Address": {
                    "description": "A postal address.",
                    "properties": {
                        "street": {"description": "Street and number.", "type": "string"},
                        "city": {"type": "string"},
                        "country": {
                            "default": "FR",
                            "description": "ISO 3166 country code.",
                            "type": "string",
                        },
                    },
                    "required": ["street", "city"],
                    "type": "object",
                }
            },
            "additionalProperties": False,
            "properties": {
                "address": {
                    "anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}],
                    "description": "Where, if anywhere.",
                    "default": None,
                },
                "tags": {
                    "anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}],
                    "description": "Labels, if any.",
                    "default": None,
                },
            },
            "type": "object",
        },
    },
}
"""The exact non-strict description and parameters schema of every corpus function."""


def _request(*tools: Tool[..., Any]) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [t.definition for t in tools],
    }


def _walk(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield schema
    for _, child in schema_children(schema):
        yield from _walk(child)


def test_the_corpus_is_large_enough_and_fully_snapshotted() -> None:
    assert len(corpus.CORPUS) >= 25
    assert sorted(SCHEMAS) == sorted(fn.__name__ for fn in corpus.CORPUS)


@pytest.mark.parametrize("fn", corpus.CORPUS, ids=lambda fn: fn.__name__)
def test_schema(fn: Callable[..., Any]) -> None:
    t = Tool.from_function(fn)
    assert {"description": t.description, "parameters": t.parameters} == SCHEMAS[fn.__name__]


@pytest.mark.parametrize("fn", corpus.CORPUS, ids=lambda fn: fn.__name__)
def test_schema_is_clean(fn: Callable[..., Any]) -> None:
    for node in _walk(Tool.from_function(fn).parameters):
        assert "title" not in node
        assert node.get("description", "x") != ""


@pytest.mark.parametrize("fn", corpus.CORPUS, ids=lambda fn: fn.__name__)
def test_definition_validates_against_the_spec(fn: Callable[..., Any]) -> None:
    validate_request(_request(Tool.from_function(fn)), forbid_unknown_keys=True)


def test_a_property_called_title_is_kept() -> None:
    assert "title" in Tool.from_function(corpus.awkward_names).parameters["properties"]


def test_field_description_wins_over_the_docstring() -> None:
    props = Tool.from_function(corpus.constrained).parameters["properties"]
    assert props["percent"]["description"] == "A percentage."
    assert props["code"]["description"] == "An upper-case code."


def test_model_field_descriptions_are_kept() -> None:
    address = Tool.from_function(corpus.model_param).parameters["$defs"]["Address"]
    assert address["properties"]["street"]["description"] == "Street and number."


@pytest.mark.parametrize(
    "fn", [corpus.google_style, corpus.numpy_style, corpus.rest_style, corpus.epydoc_style]
)
def test_every_docstring_style_gives_parameter_descriptions(fn: Callable[..., Any]) -> None:
    t = Tool.from_function(fn)
    assert t.description is not None and t.description.startswith("Forecast the weather.")
    assert t.parameters["properties"]["city"]["description"].startswith("Name of the city")
    assert t.parameters["properties"]["days"]["description"] == "How many days ahead."


def test_sections_other_than_parameters_stay_out_of_the_description() -> None:
    assert Tool.from_function(corpus.google_style).description == (
        "Forecast the weather.\n\nLooks the city up in the forecast service and\n"
        "returns a short summary."
    )


def test_definition_wire_form() -> None:
    t = Tool.from_function(corpus.keyword_only)
    assert t.definition == {
        "type": "function",
        "function": {
            "name": "keyword_only",
            "description": "Keyword-only parameters.",
            "parameters": t.parameters,
        },
    }


def test_definition_without_description_omits_the_key() -> None:
    t = Tool.from_function(corpus.undocumented)
    assert t.description is None
    assert t.definition["function"].keys() == {"name", "parameters"}


def test_strict_definition_says_so() -> None:
    assert Tool.from_function(corpus.no_params, strict=True).definition["function"]["strict"]


def test_name_and_description_overrides() -> None:
    t = Tool.from_function(corpus.google_style, name="weather-v2", description="Weather.")
    assert (t.name, t.description) == ("weather-v2", "Weather.")
    assert t.definition["function"]["name"] == "weather-v2"


def test_decorator_with_and_without_options() -> None:
    @tool
    def bare(x: int) -> int:
        """Bare."""
        return x

    @tool(name="configured", description="Configured.", strict=True, timeout=2.5)
    def with_options(x: int) -> int:
        return x

    assert isinstance(bare, Tool) and isinstance(with_options, Tool)
    assert (bare.name, bare.description, bare.strict, bare.timeout) == (
        "bare",
        "Bare.",
        False,
        None,
    )
    assert (with_options.name, with_options.strict, with_options.timeout) == (
        "configured",
        True,
        2.5,
    )
    assert with_options.description == "Configured."


def test_a_tool_is_still_callable_like_the_function() -> None:
    t = Tool.from_function(corpus.with_context)
    assert t(corpus.RunContext(deps=corpus.Deps(user="ann ")), "Oslo") == "ann Oslo"
    assert t.__name__ == "with_context"
    assert t.__doc__ == corpus.with_context.__doc__
    assert t.function is corpus.with_context
    assert not Tool.from_function(corpus.google_style).takes_context
    assert t.takes_context
    assert repr(t) == "Tool(name='with_context', strict=False, timeout=None)"


async def _echo(x: int) -> int:
    return x


def test_a_tool_of_an_async_function_returns_a_coroutine() -> None:
    import inspect

    coroutine = Tool.from_function(_echo)(1)
    assert inspect.iscoroutine(coroutine)
    coroutine.close()
