"""OpenAI strict mode: rewrite a JSON schema into the subset structured outputs accept.

The rules (OpenAI's structured-outputs guide; the OpenAI Agents SDK's
`ensure_strict_json_schema` applies the same ones):

- every object has `additionalProperties: false` and lists every property in
  `required`; an optional root property (a parameter with a default) becomes
  nullable instead, and the tool applies the default when the model sends null;
- `oneOf` becomes `anyOf`, a one-element `allOf` is merged, and a `$ref` with
  sibling keywords is inlined, since strict mode allows none of those;
- keywords outside the supported subset are removed (`default`, `minLength`,
  `uniqueItems`, unsupported `format`s, …): pydantic still checks them when
  the arguments arrive, so the model learns about a violation from the tool's
  error message;
- what cannot be expressed is rejected with a message naming the parameter:
  objects with free-form keys (`dict[str, X]`), fixed-length tuples, values
  of any type, and composition keywords such as `not` or `if`.

Fields of nested models keep their own validation: a nested field with a
default becomes required (not nullable), so the model always sends a value.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

__all__ = ["make_strict", "schema_children"]

# Keywords strict mode supports; everything else is dropped or rejected.
_SUPPORTED = frozenset(
    {
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
)
_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
# Keywords whose removal would change which values are valid beyond repair.
_REJECTED = {
    "prefixItems": "a fixed-length tuple is not supported; use list[...] or a model",
    "patternProperties": "an object with free-form keys is not supported; use a model",
    "propertyNames": "an object with free-form keys is not supported; use a model",
    "not": "the keyword 'not' is not supported",
    "if": "the keyword 'if' is not supported",
    "dependentSchemas": "the keyword 'dependentSchemas' is not supported",
}
_NULLABLE_TYPES = frozenset({"string", "number", "integer", "boolean"})
_NULL: dict[str, Any] = {"type": "null"}

# Where a schema keeps its subschemas: a single one, a list, or a name → schema map.
_ONE = ("items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else")
_MANY = ("anyOf", "oneOf", "allOf", "prefixItems")
_NAMED = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")


def schema_children(schema: dict[str, Any]) -> Iterator[tuple[tuple[str, ...], dict[str, Any]]]:
    """Each direct subschema of a JSON schema, with its path relative to `schema`.

    Args:
        schema: A JSON schema.

    Yields:
        `(path, subschema)` pairs, such as `(("properties", "city"), {...})`.
    """
    for key in _ONE:
        child = schema.get(key)
        if isinstance(child, dict):
            yield (key,), child
    for key in _MANY:
        children = schema.get(key)
        if isinstance(children, list):
            for i, child in enumerate(children):
                if isinstance(child, dict):
                    yield (key, str(i)), child
    for key in _NAMED:
        named = schema.get(key)
        if isinstance(named, dict):
            for name, child in named.items():
                if isinstance(child, dict):
                    yield (key, name), child


def make_strict(schema: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A strict-mode copy of a tool's parameters schema.

    Args:
        schema: The parameters schema: an object, possibly with `$defs`. It is
            not modified.

    Returns:
        The strict schema and a list of problems, one line each naming the
        parameter (or model field) involved; the schema is only usable when
        the list is empty.
    """
    root = copy.deepcopy(schema)
    problems: list[str] = []
    if root.get("type") != "object":
        return root, ["parameters: the schema must be an object"]
    properties = root.get("properties", {})
    required = set(root.get("required", ()))
    for name, prop in properties.items():
        if name not in required:
            properties[name] = _nullable(prop)
    strict = _Strict(root, problems)
    for name, definition in root.get("$defs", {}).items():
        root["$defs"][name] = strict.visit(definition, ("$defs", name))
    root = strict.visit(root, ())
    _prune_defs(root)
    return root, problems


class _Strict:
    """One strict-mode rewrite: the root (for `$ref`s) and the problems found."""

    def __init__(self, root: dict[str, Any], problems: list[str]) -> None:
        self.root = root
        self.problems = problems

    def reject(self, path: tuple[str, ...], reason: str) -> None:
        self.problems.append(f"{_describe(path)}: {reason} in strict mode")

    def visit(self, node: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        node = self._simplify(node, path)
        for key in [k for k in node if k not in _SUPPORTED]:
            if key in _REJECTED:
                self.reject(path, _REJECTED[key])
            del node[key]
        if node.get("format") not in _FORMATS:
            node.pop("format", None)
        if "$ref" in node and len(node) > 1:
            # No siblings next to $ref: inline the definition, the node's own
            # keywords (its description) taking precedence.
            definition = copy.deepcopy(self._resolve(node["$ref"], path))
            node = {**definition, **{k: v for k, v in node.items() if k != "$ref"}}
            # The definition's own problems are reported where it is defined.
            problems, self.problems = self.problems, []
            try:
                return self.visit(node, path)
            finally:
                self.problems = problems

        if node.get("type") == "object":
            extra = node.get("additionalProperties", False)
            if extra is not False:
                self.reject(path, "an object with free-form keys (dict[str, ...]) is not supported")
            node["additionalProperties"] = False
            properties = node.setdefault("properties", {})
            node["required"] = list(properties)
            for name, prop in properties.items():
                properties[name] = self.visit(prop, (*path, "properties", name))
        if isinstance(node.get("items"), dict):
            node["items"] = self.visit(node["items"], (*path, "items"))
        if "anyOf" in node:
            node["anyOf"] = [
                self.visit(branch, (*path, "anyOf", str(i)))
                for i, branch in enumerate(node["anyOf"])
            ]
        if not node.keys() & {"type", "anyOf", "$ref", "enum", "const"}:
            self.reject(path, "a value of any type (Any, bare list or dict) is not supported")
        return node

    def _simplify(self, node: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        """Rewrite `oneOf` and `allOf`, which strict mode does not accept."""
        if "oneOf" in node:
            node["anyOf"] = [*node.get("anyOf", ()), *node.pop("oneOf")]
        all_of = node.pop("allOf", None)
        if all_of is not None:
            if len(all_of) == 1:
                node = {**all_of[0], **node}
            else:
                self.reject(path, "'allOf' with several schemas is not supported")
        return node

    def _resolve(self, ref: str, path: tuple[str, ...]) -> dict[str, Any]:
        target: Any = self.root
        if ref.startswith("#/"):
            for part in ref[2:].split("/"):
                target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            self.reject(path, f"the reference {ref!r} cannot be resolved")
            return {"type": "null"}
        return target


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    """Let an optional root property be null, which stands for its default."""
    prop = {k: v for k, v in prop.items() if k != "default"}
    any_of = prop.get("anyOf")
    if isinstance(any_of, list):
        if _NULL not in any_of:
            prop["anyOf"] = [*any_of, _NULL]
        return prop
    kind = prop.get("type")
    if not prop.keys() & {"enum", "const", "$ref"}:
        # A primitive type takes the short form; null needs no format or pattern.
        if isinstance(kind, str) and kind in _NULLABLE_TYPES:
            return {**prop, "type": [kind, "null"]}
        if isinstance(kind, list) and set(kind) <= _NULLABLE_TYPES | {"null"}:
            return {**prop, "type": [*kind, "null"] if "null" not in kind else kind}
        if kind == "null":
            return prop
    description = prop.pop("description", None)
    wrapped: dict[str, Any] = {"anyOf": [prop, dict(_NULL)]}
    if description is not None:
        wrapped["description"] = description
    return wrapped


def _prune_defs(root: dict[str, Any]) -> None:
    """Drop definitions no longer referenced once `$ref`s were inlined."""
    defs = root.get("$defs")
    if not isinstance(defs, dict):
        return
    seen: set[str] = set()
    pending = list(_refs({k: v for k, v in root.items() if k != "$defs"}))
    while pending:
        name = pending.pop()
        if name not in seen and name in defs:
            seen.add(name)
            pending.extend(_refs(defs[name]))
    for name in [n for n in defs if n not in seen]:
        del defs[name]
    if not defs:
        del root["$defs"]


def _refs(schema: dict[str, Any]) -> Iterator[str]:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        yield ref[len("#/$defs/") :]
    for _, child in schema_children(schema):
        yield from _refs(child)


def _describe(path: tuple[str, ...]) -> str:
    """Name the parameter or model field a schema path points into."""
    if not path:
        return "parameters"
    last = max((i for i, part in enumerate(path[:-1]) if part == "properties"), default=None)
    if last is None:
        return f"model {path[1]!r}" if path[0] == "$defs" else "parameters"
    field = path[last + 1]
    if last == 0:
        return f"parameter {field!r}"
    if path[0] == "$defs":
        return f"field {field!r} of model {path[1]!r}"
    return f"field {field!r} of parameter {path[1]!r}"
