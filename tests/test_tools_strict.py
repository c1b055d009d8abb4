"""OpenAI strict mode: every rule, on every strict schema of the corpus."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from agentkit._exceptions import ToolDefinitionError
from agentkit._tools.strict import make_strict, schema_children
from agentkit._tools.tool import Tool
from tests import tools_corpus as corpus
from tests.openai_spec.validate import validate_request

SUPPORTED = {
    "type",
    "description",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "anyOf",
    "enum",
    "const",
    "$ref",
    "$defs",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minItems",
    "maxItems",
}
FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
NULL = {"type": "null"}

STRICT_SCHEMAS: dict[str, Any] = {
    "no_params": {
        "additionalProperties": False,
        "properties": {},
        "type": "object",
        "required": [],
    },
    "primitives": {
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
    "optionals": {
        "additionalProperties": False,
        "properties": {
            "a": {
                "anyOf": [{"type": "integer"}, {"type": "null"}],
                "description": "Required but may be null.",
            },
            "b": {
                "anyOf": [{"type": "integer"}, {"type": "null"}],
                "description": "Optional, null by default.",
            },
            "c": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "Optional with a non-null default.",
            },
        },
        "required": ["a", "b", "c"],
        "type": "object",
    },
    "unions": {
        "additionalProperties": False,
        "properties": {
            "v": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "w": {"anyOf": [{"type": "number"}, {"items": {"type": "string"}, "type": "array"}]},
        },
        "required": ["v", "w"],
        "type": "object",
    },
    "sequences": {
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
            },
        },
        "required": ["tags", "scores", "ids"],
        "type": "object",
    },
    "literals": {
        "additionalProperties": False,
        "properties": {
            "mode": {"enum": ["fast", "slow"], "type": "string"},
            "only": {"const": "yes", "type": "string"},
            "level": {"enum": [1, 2, 3], "type": "integer"},
        },
        "required": ["mode", "only", "level"],
        "type": "object",
    },
    "enums": {
        "$defs": {"Priority": {"enum": [1, 2], "type": "integer"}},
        "additionalProperties": False,
        "properties": {
            "color": {
                "description": "Which colour.",
                "enum": ["red", "green", "blue"],
                "type": "string",
            },
            "priority": {
                "anyOf": [{"$ref": "#/$defs/Priority"}, {"type": "null"}],
                "description": "How urgent.",
            },
        },
        "required": ["color", "priority"],
        "type": "object",
    },
    "temporal": {
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
    "identifiers": {
        "additionalProperties": False,
        "properties": {
            "id": {"format": "uuid", "type": "string"},
            "amount": {"anyOf": [{"type": "number"}, {"type": "string"}]},
        },
        "required": ["id", "amount"],
        "type": "object",
    },
    "model_param": {
        "additionalProperties": False,
        "properties": {
            "address": {
                "description": "Where to go.",
                "properties": {
                    "street": {"description": "Street and number.", "type": "string"},
                    "city": {"type": "string"},
                    "country": {"description": "ISO 3166 country code.", "type": "string"},
                },
                "required": ["street", "city", "country"],
                "type": "object",
                "additionalProperties": False,
            }
        },
        "required": ["address"],
        "type": "object",
    },
    "nested_models": {
        "$defs": {
            "Item": {
                "properties": {
                    "sku": {"description": "Stock keeping unit.", "type": "string"},
                    "quantity": {"minimum": 1, "type": "integer"},
                },
                "required": ["sku", "quantity"],
                "type": "object",
                "additionalProperties": False,
            }
        },
        "additionalProperties": False,
        "properties": {
            "order": {
                "description": "The order.",
                "properties": {
                    "items": {"items": {"$ref": "#/$defs/Item"}, "type": "array"},
                    "ship_to": {
                        "description": "Where to deliver.",
                        "properties": {
                            "street": {"description": "Street and number.", "type": "string"},
                            "city": {"type": "string"},
                            "country": {"description": "ISO 3166 country code.", "type": "string"},
                        },
                        "required": ["street", "city", "country"],
                        "type": "object",
                        "additionalProperties": False,
                    },
                    "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                },
                "required": ["items", "ship_to", "note"],
                "type": "object",
                "additionalProperties": False,
            },
            "gift": {"description": "Wrap it.", "type": ["boolean", "null"]},
        },
        "required": ["order", "gift"],
        "type": "object",
    },
    "recursive_model": {
        "$defs": {
            "TreeNode": {
                "properties": {
                    "label": {"type": "string"},
                    "children": {"items": {"$ref": "#/$defs/TreeNode"}, "type": "array"},
                },
                "required": ["label", "children"],
                "type": "object",
                "additionalProperties": False,
            }
        },
        "additionalProperties": False,
        "properties": {"tree": {"$ref": "#/$defs/TreeNode"}},
        "required": ["tree"],
        "type": "object",
    },
    "tagged_union": {
        "$defs": {
            "Cat": {
                "properties": {
                    "kind": {"const": "cat", "type": "string"},
                    "indoor": {"type": "boolean"},
                },
                "required": ["kind", "indoor"],
                "type": "object",
                "additionalProperties": False,
            },
            "Dog": {
                "properties": {
                    "kind": {"const": "dog", "type": "string"},
                    "breed": {"type": "string"},
                },
                "required": ["kind", "breed"],
                "type": "object",
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
        "properties": {
            "pet": {
                "description": "The pet.",
                "anyOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}],
            }
        },
        "required": ["pet"],
        "type": "object",
    },
    "typed_dict": {
        "$defs": {
            "Movie": {
                "additionalProperties": False,
                "description": "A film.",
                "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
                "required": ["title", "year"],
                "type": "object",
            }
        },
        "additionalProperties": False,
        "properties": {"movie": {"$ref": "#/$defs/Movie"}},
        "required": ["movie"],
        "type": "object",
    },
    "dataclass_param": {
        "$defs": {
            "Point": {
                "additionalProperties": False,
                "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                "required": ["x", "y"],
                "type": "object",
            }
        },
        "additionalProperties": False,
        "properties": {"point": {"$ref": "#/$defs/Point"}},
        "required": ["point"],
        "type": "object",
    },
    "constrained": {
        "additionalProperties": False,
        "properties": {
            "percent": {
                "description": "A percentage.",
                "maximum": 100,
                "minimum": 0,
                "type": "integer",
            },
            "code": {"description": "An upper-case code.", "pattern": "^[A-Z]+$", "type": "string"},
            "step": {
                "description": "A step size.",
                "exclusiveMinimum": 0,
                "multipleOf": 0.5,
                "type": ["number", "null"],
            },
            "items": {
                "anyOf": [
                    {"items": {"type": "integer"}, "maxItems": 3, "minItems": 1, "type": "array"},
                    {"type": "null"},
                ],
                "description": "One to three items.",
            },
        },
        "required": ["percent", "code", "step", "items"],
        "type": "object",
    },
    "keyword_only": {
        "additionalProperties": False,
        "properties": {
            "query": {"description": "What to look for.", "type": "string"},
            "limit": {"description": "At most this many results.", "type": ["integer", "null"]},
            "exact": {"description": "Match exactly.", "type": ["boolean", "null"]},
        },
        "required": ["query", "limit", "exact"],
        "type": "object",
    },
    "positional_only": {
        "additionalProperties": False,
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": ["integer", "null"]},
            "c": {"type": ["integer", "null"]},
        },
        "required": ["a", "b", "c"],
        "type": "object",
    },
    "google_style": {
        "additionalProperties": False,
        "properties": {
            "city": {
                "description": "Name of the city,\npossibly with a country.",
                "type": "string",
            },
            "days": {"description": "How many days ahead.", "type": ["integer", "null"]},
        },
        "required": ["city", "days"],
        "type": "object",
    },
    "numpy_style": {
        "additionalProperties": False,
        "properties": {
            "city": {"description": "Name of the city.", "type": "string"},
            "days": {"description": "How many days ahead.", "type": ["integer", "null"]},
        },
        "required": ["city", "days"],
        "type": "object",
    },
    "rest_style": {
        "additionalProperties": False,
        "properties": {
            "city": {"description": "Name of the city.", "type": "string"},
            "days": {"description": "How many days ahead.", "type": ["integer", "null"]},
        },
        "required": ["city", "days"],
        "type": "object",
    },
    "epydoc_style": {
        "additionalProperties": False,
        "properties": {
            "city": {"description": "Name of the city.", "type": "string"},
            "days": {"description": "How many days ahead.", "type": ["integer", "null"]},
        },
        "required": ["city", "days"],
        "type": "object",
    },
    "undocumented": {
        "additionalProperties": False,
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "type": "object",
    },
    "with_context": {
        "additionalProperties": False,
        "properties": {"city": {"description": "A city.", "type": "string"}},
        "required": ["city"],
        "type": "object",
    },
    "with_bare_context": {
        "additionalProperties": False,
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "type": "object",
    },
    "async_tool": {
        "additionalProperties": False,
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "type": "object",
    },
    "awkward_names": {
        "additionalProperties": False,
        "properties": {
            "json": {"description": "A JSON text.", "type": "string"},
            "title": {"description": "A title, not the schema keyword.", "type": "string"},
            "model_config": {"description": "Not pydantic's config.", "type": ["integer", "null"]},
        },
        "required": ["json", "title", "model_config"],
        "type": "object",
    },
    "optional_model": {
        "$defs": {
            "Address": {
                "description": "A postal address.",
                "properties": {
                    "street": {"description": "Street and number.", "type": "string"},
                    "city": {"type": "string"},
                    "country": {"description": "ISO 3166 country code.", "type": "string"},
                },
                "required": ["street", "city", "country"],
                "type": "object",
                "additionalProperties": False,
            }
        },
        "additionalProperties": False,
        "properties": {
            "address": {
                "anyOf": [{"$ref": "#/$defs/Address"}, {"type": "null"}],
                "description": "Where, if anywhere.",
            },
            "tags": {
                "anyOf": [{"items": {"type": "string"}, "type": "array"}, {"type": "null"}],
                "description": "Labels, if any.",
            },
        },
        "type": "object",
        "required": ["address", "tags"],
    },
}


def _walk(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield schema
    for _, child in schema_children(schema):
        yield from _walk(child)


def _accepts_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return (
        kind == "null"
        or (isinstance(kind, list) and "null" in kind)
        or any(_accepts_null(branch) for branch in schema.get("anyOf", ()))
    )


def test_every_strict_schema_is_snapshotted() -> None:
    assert len(corpus.STRICT) >= 25
    assert sorted(STRICT_SCHEMAS) == sorted(fn.__name__ for fn in corpus.STRICT)


@pytest.mark.parametrize("fn", corpus.STRICT, ids=lambda fn: fn.__name__)
def test_strict_schema(fn: Callable[..., Any]) -> None:
    assert Tool.from_function(fn, strict=True).parameters == STRICT_SCHEMAS[fn.__name__]


@pytest.mark.parametrize("fn", corpus.STRICT, ids=lambda fn: fn.__name__)
def test_strict_schema_follows_every_rule(fn: Callable[..., Any]) -> None:
    schema = Tool.from_function(fn, strict=True).parameters
    assert schema["type"] == "object"
    defs = schema.get("$defs", {})
    for node in _walk(schema):
        # Only supported keywords, and nothing that composes schemas but anyOf.
        assert node.keys() <= SUPPORTED, node.keys() - SUPPORTED
        # Every object is closed and lists every property as required.
        if node.get("type") == "object":
            assert node["additionalProperties"] is False
            assert node["required"] == list(node["properties"])
        # A $ref stands alone and resolves.
        if "$ref" in node:
            assert node.keys() == {"$ref"}
            assert node["$ref"].removeprefix("#/$defs/") in defs
        assert node.get("format", "date") in FORMATS
        # Every schema says what it accepts.
        assert node.keys() & {"type", "anyOf", "$ref", "enum", "const"}
    # A parameter with a default may be null, standing for the default.
    defaulted = [
        p.name for p in inspect.signature(fn).parameters.values() if p.default is not p.empty
    ]
    for name in defaulted:
        assert _accepts_null(schema["properties"][name]), name


@pytest.mark.parametrize("fn", corpus.STRICT, ids=lambda fn: fn.__name__)
def test_strict_definition_validates_against_the_spec(fn: Callable[..., Any]) -> None:
    t = Tool.from_function(fn, strict=True)
    assert t.definition["function"]["strict"] is True
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [t.definition]}
    validate_request(body, forbid_unknown_keys=True)


@pytest.mark.parametrize("fn", list(corpus.NOT_STRICT), ids=lambda fn: fn.__name__)
def test_what_strict_mode_cannot_express_is_rejected(fn: Callable[..., Any]) -> None:
    Tool.from_function(fn)  # fine without strict
    with pytest.raises(ToolDefinitionError) as info:
        Tool.from_function(fn, strict=True)
    assert info.value.tool_name == fn.__name__
    assert info.value.problems == [corpus.NOT_STRICT[fn]]


class Bag(BaseModel):
    label: str
    meta: dict[str, str]


def _bag(bag: Bag, extra: list, anything: Any) -> None:  # type: ignore[type-arg]
    """Several problems at once."""


def test_every_strict_problem_is_reported_at_once_and_named() -> None:
    with pytest.raises(ToolDefinitionError) as info:
        Tool.from_function(_bag, strict=True)
    assert info.value.problems == [
        "field 'meta' of model 'Bag': an object with free-form keys (dict[str, ...]) is not "
        "supported in strict mode",
        "parameter 'extra': a value of any type (Any, bare list or dict) is not supported in "
        "strict mode",
        "parameter 'anything': a value of any type (Any, bare list or dict) is not supported "
        "in strict mode",
    ]
    assert str(info.value).startswith("tool '_bag' cannot be defined:\n  - field 'meta'")


def test_make_strict_leaves_its_input_alone() -> None:
    schema = Tool.from_function(corpus.nested_models).parameters
    before = repr(schema)
    make_strict(schema)
    assert repr(schema) == before


def test_make_strict_is_idempotent() -> None:
    once = Tool.from_function(corpus.nested_models, strict=True).parameters
    assert make_strict(once) == (once, [])


def _strict(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    return make_strict({"type": "object", "properties": {"x": schema}, "required": ["x"]})


def test_one_of_becomes_any_of() -> None:
    schema, problems = _strict({"oneOf": [{"type": "string"}, {"type": "integer"}]})
    assert (schema["properties"]["x"], problems) == (
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        [],
    )


def test_a_single_all_of_is_merged() -> None:
    schema, problems = _strict({"allOf": [{"type": "string"}], "description": "d"})
    assert (schema["properties"]["x"], problems) == ({"type": "string", "description": "d"}, [])


@pytest.mark.parametrize(
    ("keyword", "value", "problem"),
    [
        ("allOf", [{"type": "string"}, {"minLength": 1}], "'allOf' with several schemas"),
        ("not", {"type": "string"}, "the keyword 'not'"),
        ("if", {"type": "string"}, "the keyword 'if'"),
        ("patternProperties", {"^a": {"type": "string"}}, "an object with free-form keys"),
        ("propertyNames", {"pattern": "^a"}, "an object with free-form keys"),
    ],
)
def test_unsupported_composition_is_rejected(keyword: str, value: Any, problem: str) -> None:
    _, problems = _strict({"type": "object", keyword: value})
    assert len(problems) == 1
    assert problems[0].startswith(f"parameter 'x': {problem}")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ({"type": "string", "minLength": 1, "maxLength": 3}, {"type": "string"}),
        ({"type": "string", "format": "uri"}, {"type": "string"}),
        ({"type": "string", "format": "email"}, {"type": "string", "format": "email"}),
        (
            {"type": "array", "items": {"type": "integer"}, "uniqueItems": True},
            {"type": "array", "items": {"type": "integer"}},
        ),
        (
            {"type": "integer", "default": 3, "examples": [1], "deprecated": True},
            {"type": "integer"},
        ),
        (
            {"type": "integer", "minimum": 0, "multipleOf": 2},
            {"type": "integer", "minimum": 0, "multipleOf": 2},
        ),
    ],
)
def test_unsupported_keywords_are_removed(given: dict[str, Any], kept: dict[str, Any]) -> None:
    assert _strict(given) == ({**_root(), "properties": {"x": kept}}, [])


def _root() -> dict[str, Any]:
    return {"type": "object", "required": ["x"], "additionalProperties": False}


def test_a_ref_with_siblings_is_inlined_and_unused_defs_pruned() -> None:
    schema, problems = make_strict(
        {
            "type": "object",
            "properties": {"x": {"$ref": "#/$defs/A", "description": "An A."}},
            "required": ["x"],
            "$defs": {"A": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        }
    )
    assert problems == []
    assert schema == {
        **_root(),
        "properties": {
            "x": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "description": "An A.",
                "additionalProperties": False,
                "required": ["n"],
            }
        },
    }


def test_an_unresolvable_ref_is_reported() -> None:
    _, problems = _strict({"$ref": "#/$defs/Missing", "description": "?"})
    assert problems == [
        "parameter 'x': the reference '#/$defs/Missing' cannot be resolved in strict mode"
    ]


def test_the_root_must_be_an_object() -> None:
    assert make_strict({"type": "string"})[1] == ["parameters: the schema must be an object"]


@pytest.mark.parametrize(
    ("prop", "nullable"),
    [
        ({"type": "integer", "default": 1}, {"type": ["integer", "null"]}),
        ({"type": ["integer", "string"]}, {"type": ["integer", "string", "null"]}),
        ({"type": "null", "default": None}, {"type": "null"}),
        (
            {"enum": ["a"], "type": "string", "description": "d"},
            {"anyOf": [{"enum": ["a"], "type": "string"}, NULL], "description": "d"},
        ),
        ({"type": "array", "items": {"type": "integer"}}, None),
        ({"anyOf": [{"type": "integer"}, NULL]}, {"anyOf": [{"type": "integer"}, NULL]}),
    ],
)
def test_optional_root_properties_become_nullable(prop: dict[str, Any], nullable: Any) -> None:
    schema, problems = make_strict({"type": "object", "properties": {"x": prop}})
    if nullable is None:
        nullable = {"anyOf": [prop, NULL]}
    assert (schema["properties"]["x"], problems) == (nullable, [])


def test_nested_fields_with_defaults_become_required_but_not_nullable() -> None:
    address = Tool.from_function(corpus.model_param, strict=True).parameters["properties"][
        "address"
    ]
    assert address["required"] == ["street", "city", "country"]
    assert address["properties"]["country"] == {
        "description": "ISO 3166 country code.",
        "type": "string",
    }
