"""A function's signature and docstring → an argument validator and a JSON schema.

Everything goes through public pydantic APIs: the parameters become a
`TypedDict` (so a parameter may be called `json` or `model_config` without
clashing with `BaseModel` attributes), a `TypeAdapter` validates the model's
JSON arguments in one pass, and a `GenerateJsonSchema` subclass produces the
schema without pydantic's `title` noise. docstring-parser reads the tool
description and the parameter descriptions in Google, NumPy, reST and Epydoc
styles.

Numbers must be finite: a `float` (or `Decimal`) argument of NaN or ±Infinity,
whether sent as a JSON token (`NaN`, `Infinity`), a string (`"nan"`) or a
number too large for a float (`1e999`), is an argument error, since a check
such as `amount > limit` is false for NaN and would be silently passed. This
holds inside pydantic models taken as parameters too. A parameter that should
accept them says so with pydantic's own setting:
`Annotated[float, Field(allow_inf_nan=True)]`, or
`model_config = ConfigDict(allow_inf_nan=True)` on a model.
"""

from __future__ import annotations

import inspect
import itertools
import threading
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import ConfigDict, Field, TypeAdapter, WrapValidator, with_config
from pydantic.fields import FieldInfo
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema, SchemaValidator, to_jsonable_python
from typing_extensions import NotRequired, Required, TypedDict

from agentkit._exceptions import ToolDefinitionError
from agentkit._tools.context import RunContext
from agentkit._tools.strict import make_strict, schema_children

__all__ = ["FunctionSchema", "clean_schema", "function_schema"]


class FunctionSchema:
    """What a tool needs to know about its function, computed once when it is defined.

    Attributes:
        description: The docstring's summary and body, or `None` when there is none.
        parameters: The JSON schema of the arguments object (already strict when asked for).
        adapter: The arguments' `TypeAdapter`, for their JSON schema.
        validator: Parses and validates the model's JSON arguments into keyword
            arguments; non-finite numbers are refused in every model among them.
        core_schema: The pydantic-core schema `validator` was built from.
        positional_only: Positional-only parameters, in order: they cannot be passed by name.
        defaults: The default of every parameter that has one.
        context_param: The name of the `RunContext` parameter, if the function takes one.
        context_by_name: Whether the `RunContext` parameter is keyword-only.
    """

    __slots__ = (
        "_fail_fast",
        "adapter",
        "context_by_name",
        "context_param",
        "core_schema",
        "defaults",
        "description",
        "parameters",
        "positional_only",
        "validator",
    )

    def __init__(
        self,
        *,
        description: str | None,
        parameters: dict[str, Any],
        adapter: TypeAdapter[dict[str, Any]],
        validator: Any,
        core_schema: CoreSchema,
        positional_only: tuple[str, ...],
        defaults: dict[str, Any],
        context_param: str | None,
        context_by_name: bool,
    ) -> None:
        self.description = description
        self.parameters = parameters
        self.adapter = adapter
        self.validator: SchemaValidator = validator
        self.core_schema = core_schema
        self._fail_fast: SchemaValidator | None = None
        self.positional_only = positional_only
        self.defaults = defaults
        self.context_param = context_param
        self.context_by_name = context_by_name

    def fail_fast_validator(self) -> SchemaValidator:
        """`validator`, except that each list, tuple, set or dict stops at its first
        invalid item, and unknown arguments are ignored (see `unknown_arguments`): for
        arguments with too many errors to list, whose first ones are found without
        validating, and collecting errors for, the rest. Built on first use.
        """
        if self._fail_fast is None:
            schema = _ignore_unknown_arguments(self.core_schema)
            _, validator = _validator_for(schema, _stop_at_first_error)
            self._fail_fast = validator or SchemaValidator(schema)
        return self._fail_fast

    def unknown_arguments(self, arguments: Any, limit: int) -> list[str]:
        """The first `limit` names in `arguments` (parsed JSON) that are no parameter."""
        if not isinstance(arguments, dict):
            return []
        known = self.parameters.get("properties", {})
        unknown = (name for name in arguments if name not in known)
        return list(itertools.islice(unknown, limit))


class _CleanJsonSchema(GenerateJsonSchema):
    """pydantic's schema without `title`s, empty descriptions or default warnings."""

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        return clean_schema(super().generate(schema, mode))

    def emit_warning(self, kind: Any, detail: str) -> None:
        # A default pydantic cannot encode is simply left out of the schema;
        # the default still applies when the argument is omitted.
        if kind != "non-serializable-default":
            super().emit_warning(kind, detail)


def clean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Remove `title` keywords and empty descriptions from a JSON schema, in place.

    Only keywords are removed: a property that happens to be called `title`
    stays, because the walk follows the schema's structure.

    Args:
        schema: A JSON schema as produced by pydantic.

    Returns:
        The same dict, cleaned.
    """
    schema.pop("title", None)
    if schema.get("description") == "":
        del schema["description"]
    for _, child in schema_children(schema):
        clean_schema(child)
    return schema


def function_schema(
    fn: Callable[..., Any], *, name: str, description: str | None, strict: bool
) -> FunctionSchema:
    """Build the schema and validator of a function's parameters.

    Args:
        fn: The function.
        name: The tool name, used in error messages.
        description: An explicit description; `None` takes it from the docstring.
        strict: Whether to make the schema follow OpenAI's strict-mode rules.

    Returns:
        The function's schema.

    Raises:
        ToolDefinitionError: Listing every parameter that cannot be part of a tool.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ToolDefinitionError(name, [f"cannot read the signature: {exc}"]) from None
    hints, problems = _type_hints(fn, signature)

    # Imported on the first tool: the parser loads every docstring style it knows.
    import docstring_parser

    docstring = docstring_parser.parse(inspect.getdoc(fn) or "")
    param_docs = {p.arg_name: p.description for p in docstring.params if p.description}
    if description is None:
        description = (docstring.description or "").strip() or None

    fields: dict[str, Any] = {}
    positional_only: list[str] = []
    defaults: dict[str, Any] = {}
    context_param: str | None = None
    context_by_name = False
    for index, (pname, param) in enumerate(signature.parameters.items()):
        if param.kind is param.VAR_POSITIONAL:
            problems.append(f"parameter '*{pname}': *args cannot be sent by a model; name each one")
            continue
        if param.kind is param.VAR_KEYWORD:
            problems.append(
                f"parameter '**{pname}': **kwargs cannot be sent by a model; name each one"
            )
            continue
        if pname not in hints:
            if param.annotation is param.empty:  # else: unresolvable, already reported
                problems.append(f"parameter {pname!r} has no type annotation")
            continue
        hint = hints[pname]
        if _is_run_context(hint):
            if index == 0:
                context_param, context_by_name = pname, param.kind is param.KEYWORD_ONLY
            else:
                problems.append(f"parameter {pname!r}: RunContext must be the first parameter")
            continue
        if param.kind is param.POSITIONAL_ONLY:
            positional_only.append(pname)
        doc = param_docs.get(pname)
        if doc and not _has_description(hint):
            hint = Annotated[hint, Field(description=doc.strip())]
        if param.default is param.empty:
            fields[pname] = Required[hint]
        else:
            defaults[pname] = param.default
            if strict:
                # Strict mode lists every parameter as required and nullable;
                # a null then stands for "use the default".
                hint = Annotated[hint, _null_means(param.default)]
            fields[pname] = NotRequired[hint]
    problems += _undocumented_names(docstring.params, signature)
    if problems:
        problems += _type_problems({p: hints[p] for p in fields})
        raise ToolDefinitionError(name, problems)

    adapter, parameters = _build(name, fields, hints)
    core_schema, validator = _validator_for(adapter.core_schema, _refuse_inf_nan)
    for pname, default in defaults.items():
        _add_default(parameters["properties"][pname], default)
    if strict:
        parameters, strict_problems = make_strict(parameters)
        if strict_problems:
            raise ToolDefinitionError(name, strict_problems)
    return FunctionSchema(
        description=description,
        parameters=parameters,
        adapter=adapter,
        validator=validator or adapter.validator,
        core_schema=core_schema,
        positional_only=tuple(positional_only),
        defaults=defaults,
        context_param=context_param,
        context_by_name=context_by_name,
    )


def _undocumented_names(documented: list[Any], signature: inspect.Signature) -> list[str]:
    """A problem for each parameter the docstring describes that the function does not
    have: a renamed or misspelt parameter whose description would be silently lost."""
    names = set(signature.parameters)
    problems = []
    for param in documented:
        if param.args and param.args[0] == "attribute":
            continue
        name = param.arg_name.lstrip("*")
        if name and name not in names:
            problems.append(
                f"the docstring describes a parameter {name!r} that the function does not "
                f"have (its parameters: {', '.join(names) or 'none'}); rename or remove "
                "that entry"
            )
    return problems


def _build(
    name: str, fields: dict[str, Any], hints: dict[str, Any]
) -> tuple[TypeAdapter[dict[str, Any]], dict[str, Any]]:
    """The adapter and clean schema of the arguments object, or every type problem."""
    make_typed_dict: Any = TypedDict
    # Unknown keys are rejected, so a misspelt optional argument is reported
    # to the model rather than silently dropped; NaN and Infinity too (see above).
    config = ConfigDict(extra="forbid", allow_inf_nan=False)
    arguments = with_config(config)(make_typed_dict("Arguments", fields))
    try:
        adapter: TypeAdapter[dict[str, Any]] = TypeAdapter(arguments)
        return adapter, adapter.json_schema(schema_generator=_CleanJsonSchema)
    except Exception as exc:  # pydantic raises several types; all mean "not expressible"
        whole = exc
    # Try each parameter alone to name every one that fails, not just the first.
    problems = _type_problems({p: hints[p] for p in fields})
    raise ToolDefinitionError(name, problems or [_first_line(whole)]) from None


def _validator_for(
    schema: CoreSchema, change: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> tuple[CoreSchema, SchemaValidator | None]:
    """`schema` rewritten by `change` (see `_rewrite`) and a validator built from it;
    the same schema and None when `change` applies nowhere."""
    classes: list[type] = []
    patched = _rewrite(schema, change, classes)
    if patched is schema:
        return schema, None
    # pydantic-core reuses a complete model's own validator (its "prebuilt" one)
    # instead of building the model's schema, which would drop the rewritten parts.
    # A model counts as complete by `__pydantic_complete__` in its class dict, so
    # the flag is lowered while the validator is built. Only schema building reads
    # it (pydantic's model_rebuild and pydantic-core's reuse); validating with the
    # model meanwhile, in any thread, is unaffected.
    # The lock keeps two tools defined at once in two threads from seeing each
    # other's lowered flags (and restoring one while the other still builds).
    with _LOWERING:
        lowered = [c for c in classes if vars(c).get("__pydantic_complete__") is True]
        for cls in lowered:
            setattr(cls, "__pydantic_complete__", False)  # noqa: B010
        try:
            return patched, SchemaValidator(patched)
        finally:
            for cls in lowered:
                setattr(cls, "__pydantic_complete__", True)  # noqa: B010


_LOWERING = threading.Lock()


def _rewrite(
    node: Any, change: Callable[[dict[str, Any]], dict[str, Any] | None], classes: list[type]
) -> Any:
    """`node` with `change` applied to every schema in it, bottom up (`change` returns a
    replacement, or None to keep a schema), and the class of every model or dataclass
    whose schema changed added to `classes`. Containers are copied where something
    changed; leaves are shared (they may be the user's validator functions)."""
    if isinstance(node, list):
        items = [_rewrite(item, change, classes) for item in node]
        return items if any(a is not b for a, b in zip(items, node, strict=True)) else node
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] | None = None
    for name, child in node.items():
        new = _rewrite(child, change, classes)
        if new is not child:
            out = dict(node) if out is None else out
            out[name] = new
    replaced = change(node if out is None else out)
    out = replaced if replaced is not None else out
    if out is not None and node.get("type") in ("model", "dataclass") and "cls" in node:
        classes.append(node["cls"])
    return node if out is None else out


def _refuse_inf_nan(node: dict[str, Any]) -> dict[str, Any] | None:
    """A model or dataclass whose config is silent about `allow_inf_nan`, refusing them.

    The arguments' own config reaches plain types, TypedDicts and standard
    dataclasses, but a pydantic model (or pydantic dataclass) validates with
    its own config, whose default allows them. A model that sets it keeps its
    choice.
    """
    config = node.get("config")
    if (
        node.get("type") in ("model", "dataclass")
        and isinstance(config, dict)
        and "allow_inf_nan" not in config
    ):
        return {**node, "config": {**config, "allow_inf_nan": False}}
    return None


def _ignore_unknown_arguments(schema: CoreSchema) -> CoreSchema:
    """The arguments' schema with unknown arguments ignored rather than each an error."""
    if schema["type"] == "definitions":
        return {**schema, "schema": _ignore_unknown_arguments(schema["schema"])}
    if schema["type"] == "typed-dict":
        return {**schema, "extra_behavior": "ignore"}
    return schema


_SEQUENCES = frozenset({"list", "tuple", "set", "frozenset", "dict"})


def _stop_at_first_error(node: dict[str, Any]) -> dict[str, Any] | None:
    """A list, tuple, set or dict that stops at its first invalid item."""
    if node.get("type") in _SEQUENCES and not node.get("fail_fast"):
        return {**node, "fail_fast": True}
    return None


def _type_hints(
    fn: Callable[..., Any], signature: inspect.Signature
) -> tuple[dict[str, Any], list[str]]:
    """The resolved annotations of the parameters, and those that cannot be resolved."""
    try:
        return typing.get_type_hints(fn, include_extras=True), []
    except Exception:  # NameError, or a TypeError for a malformed annotation
        pass
    # Resolve each parameter alone to name the ones that fail; an unresolvable
    # return annotation does not matter, the result is serialised by its value.
    hints: dict[str, Any] = {}
    problems: list[str] = []
    globalns = getattr(inspect.unwrap(fn), "__globals__", {})
    for pname, param in signature.parameters.items():
        if param.annotation is param.empty:
            continue
        probe = types.SimpleNamespace(__annotations__={pname: param.annotation})
        try:
            hints.update(typing.get_type_hints(probe, globalns=globalns, include_extras=True))
        except Exception as exc:
            problems.append(f"parameter {pname!r}: cannot resolve its annotation ({exc})")
    return hints, problems


def _type_problems(hints: dict[str, Any]) -> list[str]:
    """One line for each parameter whose type has no JSON schema."""
    problems = []
    for pname, hint in hints.items():
        try:
            TypeAdapter(hint).json_schema(schema_generator=_CleanJsonSchema)
        except Exception as exc:
            problems.append(
                f"parameter {pname!r}: type {_type_name(hint)} cannot be expressed as "
                f"JSON schema ({_first_line(exc)})"
            )
    return problems


def _null_means(default: Any) -> WrapValidator:
    def validate(value: Any, handler: Callable[[Any], Any]) -> Any:
        return default if value is None else handler(value)

    return WrapValidator(validate)


def _add_default(prop: dict[str, Any], default: Any) -> None:
    """Show a parameter's default in the schema when it has a JSON form."""
    try:
        prop["default"] = to_jsonable_python(default)
    except Exception:  # an object with no JSON form: the model need not see it
        pass


def _is_run_context(hint: Any) -> bool:
    return hint is RunContext or typing.get_origin(hint) is RunContext


def _has_description(hint: Any) -> bool:
    """Whether `Annotated[..., Field(description=...)]` already describes the parameter."""
    if typing.get_origin(hint) is not Annotated:
        return False
    return any(isinstance(m, FieldInfo) and m.description for m in hint.__metadata__)


def _type_name(hint: Any) -> str:
    # On Python 3.10 a generic alias such as list[int] passes for a type.
    if isinstance(hint, type) and typing.get_origin(hint) is None:
        return hint.__qualname__
    return repr(hint).replace("typing.", "").replace("typing_extensions.", "")


def _first_line(exc: BaseException) -> str:
    """The gist of a pydantic error: its first sentence, without advice or links."""
    text = str(exc).strip()
    first = text.splitlines()[0].split(". ")[0].rstrip(".") if text else ""
    return first or type(exc).__name__
