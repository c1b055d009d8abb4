"""Structured output: `output_type` → `response_format`, and the answer → a validated value."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json

from agentkit._exceptions import UserError
from agentkit._lazy import on_first_use
from agentkit._tools.schema import clean_schema
from agentkit._tools.strict import make_strict

if TYPE_CHECKING:
    from agentkit._wire import messages as _messages
    from agentkit._wire.messages import ResponseFormatJSONSchema
else:
    _messages = on_first_use(globals(), "_messages", "agentkit._wire.messages")

__all__ = ["OutputSpec"]

T = TypeVar("T")

_WRAPPER_KEY = "value"


class OutputSpec(Generic[T]):
    """How a run's final answer becomes its output.

    `str` means plain text. Any other type asks the model for JSON through a
    strict `json_schema` response format; a type whose schema is not an object
    (a list, a number, a union) is wrapped as `{"value": ...}` because OpenAI
    requires an object at the root.
    """

    def __init__(self, output_type: type[T]) -> None:
        self.output_type = output_type
        self.is_text = output_type is str
        self.response_format: ResponseFormatJSONSchema | None = None
        self._wrapped = False
        if self.is_text:
            return
        try:
            self._adapter: TypeAdapter[Any] = TypeAdapter(output_type)
            schema = clean_schema(self._adapter.json_schema())
        except Exception as exc:
            raise UserError(f"output_type {output_type!r} has no JSON schema: {exc}") from None
        self._wrapped = schema.get("type") != "object"
        if self._wrapped:
            defs = schema.pop("$defs", None)
            schema = {
                "type": "object",
                "properties": {_WRAPPER_KEY: schema},
                "required": [_WRAPPER_KEY],
            }
            if defs:
                schema["$defs"] = defs
        self._optional = set(schema.get("properties", {})) - set(schema.get("required", ()))
        strict_schema, problems = make_strict(schema)
        if problems:
            raise UserError(
                f"output_type {_name(output_type)} cannot be a strict JSON schema: "
                + "; ".join(problems)
            )
        self.response_format = _messages.ResponseFormatJSONSchema(
            json_schema=_messages.JSONSchemaFormat(
                name=_schema_name(output_type),
                description=(schema.get("description") or None),
                schema=strict_schema,
                strict=True,
            )
        )

    def unwrap(self, value: Any) -> Any:
        """The output part of a parsed (possibly partial) JSON answer."""
        if self._wrapped and isinstance(value, dict):
            return value.get(_WRAPPER_KEY)
        return value

    def parse(self, content: str | None) -> T:
        """The output from the final answer's text.

        Raises:
            ValueError: With a message for the model, when the text is not
                JSON or does not validate.
        """
        if self.is_text:
            return content or ""  # type: ignore[return-value]
        if not content:
            raise ValueError("the answer was empty; reply with JSON matching the schema")
        try:
            data = from_json(content)
        except ValueError as exc:
            raise ValueError(
                f"the answer is not valid JSON ({exc}); reply with JSON only"
            ) from None
        if isinstance(data, dict):
            # Strict mode makes optional fields nullable; null means "use the default".
            data = {k: v for k, v in data.items() if not (v is None and k in self._optional)}
        if self._wrapped:
            if not isinstance(data, dict) or _WRAPPER_KEY not in data:
                raise ValueError(f'the answer must be an object with the key "{_WRAPPER_KEY}"')
            data = data[_WRAPPER_KEY]
        try:
            return self._adapter.validate_python(data)  # type: ignore[no-any-return]
        except ValidationError as exc:
            lines = [
                f"- {'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()
            ]
            raise ValueError("the answer does not match the schema:\n" + "\n".join(lines)) from None


def _name(output_type: Any) -> str:
    return getattr(output_type, "__name__", repr(output_type))


def _schema_name(output_type: Any) -> str:
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", _name(output_type))[:64]
    return name or "output"
