"""A model's arguments checked against a JSON schema that agentkit did not write.

Tools made from Python functions validate with pydantic; a tool whose schema
comes from elsewhere (an MCP server's `inputSchema`) has only the schema, and
jsonschema is not a runtime dependency. This checks the part of JSON Schema
that catches what models get wrong — the arguments are not an object, a
required argument is missing, an unknown one is sent, a value has the wrong
type or is not one of an `enum` — and ignores every keyword it does not know,
so it never rejects what the schema allows. The tool's own side (the MCP
server) still validates in full; its errors reach the model as tool errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pydantic_core

__all__ = ["check_arguments"]

_MAX_DEPTH = 32  # $ref chains and nesting deeper than this are not followed
_MAX_INPUT = 80  # characters of an offending value quoted back to the model
_TYPES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


def check_arguments(value: Any, schema: Mapping[str, Any]) -> list[dict[str, str]]:
    """Check parsed arguments against a JSON schema.

    Args:
        value: The arguments, parsed from JSON.
        schema: The JSON schema they should match; `$ref`s are resolved
            within it (`#/$defs/...`, `#/definitions/...`).

    Returns:
        One `{"loc": "path.to.field", "msg": "reason"}` per problem found, the
        message quoting the offending value where it helps; empty when none.
    """
    errors: list[dict[str, str]] = []
    _Checker(schema, errors).check(value, schema, (), 0)
    return errors


class _Checker:
    def __init__(self, root: Mapping[str, Any], errors: list[dict[str, str]]) -> None:
        self.root = root
        self.errors = errors

    def fail(self, loc: tuple[str, ...], msg: str) -> None:
        self.errors.append({"loc": ".".join(loc), "msg": msg})

    def check(self, value: Any, schema: Any, loc: tuple[str, ...], depth: int) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            # JSON has no NaN or Infinity (`NaN` tokens, `1e999`): no schema can allow them,
            # and a check such as `amount > limit` on the other side would pass them.
            self.fail(loc, f"must be a finite number, not {_got(value)}")
            return
        if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
            return  # `true`, `false` and anything unexpected: accepted, the server decides
        ref = schema.get("$ref")
        if isinstance(ref, str):
            self.check(value, self._resolve(ref), loc, depth + 1)
        kinds = schema.get("type")
        if isinstance(kinds, str):
            kinds = [kinds]
        if isinstance(kinds, list) and kinds and not any(_is(value, k) for k in kinds):
            expected = " or ".join(_TYPES.get(str(k), str(k)) for k in kinds)
            self.fail(loc, f"expected {expected}, not {_got(value)}")
            return
        if "enum" in schema and isinstance(schema["enum"], list) and value not in schema["enum"]:
            allowed = ", ".join(_json(v) for v in schema["enum"])
            self.fail(loc, f"must be one of {allowed}, not {_got(value)}")
        if "const" in schema and value != schema["const"]:
            self.fail(loc, f"must be {_json(schema['const'])}, not {_got(value)}")
        for branch in _list(schema.get("allOf")):
            self.check(value, branch, loc, depth + 1)
        for keyword in ("anyOf", "oneOf"):
            branches = _list(schema.get(keyword))
            if branches and not any(self._passes(value, b, loc, depth) for b in branches):
                self.fail(loc, f"{_got(value)} matches none of the allowed forms")
        if isinstance(value, dict):
            self._object(value, schema, loc, depth)
        elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
            for i, item in enumerate(value):
                self.check(item, schema["items"], (*loc, str(i)), depth + 1)

    def _object(
        self, value: dict[str, Any], schema: Mapping[str, Any], loc: tuple[str, ...], depth: int
    ) -> None:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        for name in _list(schema.get("required")):
            if isinstance(name, str) and name not in value:
                self.fail((*loc, name), "field required")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                self.check(item, properties[name], (*loc, name), depth + 1)
            elif extra is False:
                self.fail((*loc, name), "unexpected argument")
            else:
                self.check(item, extra, (*loc, name), depth + 1)

    def _passes(self, value: Any, schema: Any, loc: tuple[str, ...], depth: int) -> bool:
        trial = _Checker(self.root, [])
        trial.check(value, schema, loc, depth + 1)
        return not trial.errors

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            return None  # a remote reference: not followed
        target: Any = self.root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, Mapping) else None
        return target


def _is(value: Any, kind: Any) -> bool:
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    checks: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "boolean": bool,
        "null": type(None),
    }
    expected = checks.get(kind) if isinstance(kind, str) else None
    return True if expected is None else isinstance(value, expected)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json(value: Any) -> str:
    return pydantic_core.to_json(value, fallback=repr, inf_nan_mode="constants").decode()


def _got(value: Any) -> str:
    """The offending value as the model sent it, or its kind when it is big."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    text = _json(value)
    return text if len(text) <= _MAX_INPUT else text[: _MAX_INPUT - 3] + "..."
