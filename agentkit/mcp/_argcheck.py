"""A model's arguments checked against a JSON schema that agentkit did not write.

Tools made from Python functions validate with pydantic; a tool whose schema
comes from elsewhere (an MCP server's `inputSchema`) has only the schema, and
jsonschema is not a runtime dependency. This checks the part of JSON Schema
that catches what models get wrong — the arguments are not an object, a
required argument is missing, an unknown one is sent, a value has the wrong
type or is not one of an `enum` — and ignores every keyword it does not know,
so it never rejects what the schema allows. The tool's own side (the MCP
server) still validates in full; its errors reach the model as tool errors.

The work is bounded, since the schema is foreign and the arguments come from
a model: whether a value matches an `anyOf`/`oneOf` branch is worked out once
per value and branch (a recursive schema of 8 branches no longer tries 8**depth
paths), a trial stops at its first error, at most `MAX_ERRORS` errors are
collected, and after `MAX_STEPS` checks of single values the rest is accepted
as it is, for the server to judge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pydantic_core

__all__ = ["MAX_ERRORS", "MAX_STEPS", "check_arguments"]

MAX_ERRORS = 20
"""Errors collected at most; `check_arguments` returns one more when there are more."""
MAX_STEPS = 10_000
"""Values checked at most (a few milliseconds); the rest are left to the server."""

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
        At most `MAX_ERRORS + 1`: more than `MAX_ERRORS` means "and more".
    """
    checker = _Checker(schema, _Shared(), MAX_ERRORS + 1)
    try:
        checker.check(value, schema, (), 0)
    except _Enough:
        pass
    return checker.errors


class _Enough(Exception):
    """A checker has collected all the errors it was asked for."""


class _Shared:
    """What the main checker and its trials share: the step budget and the memo."""

    __slots__ = ("memo", "steps")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        # (id(value), id(branch), depth) -> whether the value matches the branch. The
        # values and schemas stay alive for the whole check, so their ids are stable.
        self.memo: dict[tuple[int, int, int], bool] = {}


class _Checker:
    def __init__(self, root: Mapping[str, Any], shared: _Shared, limit: int) -> None:
        self.root = root
        self.shared = shared
        self.limit = limit
        self.errors: list[dict[str, str]] = []

    def fail(self, loc: tuple[str, ...], msg: str) -> None:
        self.errors.append({"loc": ".".join(loc), "msg": msg})
        if len(self.errors) >= self.limit:
            raise _Enough

    def check(self, value: Any, schema: Any, loc: tuple[str, ...], depth: int) -> None:
        shared = self.shared
        if shared.steps <= 0:
            return  # out of budget: accepted, the server decides
        shared.steps -= 1
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
                if self.shared.steps <= 0:
                    break  # out of budget: the rest is the server's to judge
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
            if self.shared.steps <= 0:
                break  # out of budget: the rest is the server's to judge
            if name in properties:
                self.check(item, properties[name], (*loc, name), depth + 1)
            elif extra is False:
                self.fail((*loc, name), "unexpected argument")
            else:
                self.check(item, extra, (*loc, name), depth + 1)

    def _passes(self, value: Any, schema: Any, loc: tuple[str, ...], depth: int) -> bool:
        key = (id(value), id(schema), depth)
        memo = self.shared.memo
        passed = memo.get(key)
        if passed is None:
            trial = _Checker(self.root, self.shared, 1)  # one error settles it
            try:
                trial.check(value, schema, loc, depth + 1)
            except _Enough:
                pass
            passed = memo[key] = not trial.errors
        return passed

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
