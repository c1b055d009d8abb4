"""Request values in wire form: messages from models or dicts, tools by their definition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from agentkit._exceptions import UserError
from agentkit._lazy import on_first_use

if TYPE_CHECKING:
    from agentkit._wire import messages as _messages
    from agentkit._wire.messages import Message
else:
    _messages = on_first_use(globals(), "_messages", "agentkit._wire.messages")

__all__ = ["WireList", "as_message", "dump_messages", "dump_wire"]


def as_message(item: Message | Mapping[str, Any], where: str) -> Message:
    """A message model from a model (returned as it is) or a wire-form dict.

    Raises:
        UserError: The dict is not a valid message; the message names `where`
            (such as `messages[3]`) and every failing field.
    """
    if isinstance(item, BaseModel):
        return item
    try:
        return _messages.MESSAGE_ADAPTER.validate_python(item)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(message)'}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"{where} is not a valid message: {problems}") from None


_PLAIN = (str, int, float, bool, type(None))


class WireList(list[Any]):
    """A list known to be in wire form already (plain JSON): `dump_wire` returns it as it
    is. An agent sends its tool definitions so, with every request, without a walk."""


def dump_wire(value: Any) -> Any:
    """A request value in wire form: models dumped without unset fields, tools by definition."""
    # Plain JSON (such as the tools' definitions, sent with every request) is the common
    # case: exact types first, before the isinstance checks against ABCs below.
    kind = type(value)
    if kind in _PLAIN or kind is WireList:
        return value
    if kind is dict:
        return {key: dump_wire(item) for key, item in value.items()}
    if kind is list:
        return [dump_wire(item) for item in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True, by_alias=True)
    definition = getattr(value, "definition", None)
    if definition is not None:
        return dump_wire(definition)
    if isinstance(value, (list, tuple)):
        return [dump_wire(item) for item in value]
    if isinstance(value, Mapping):
        # A dict may hold models too, such as a JSONSchemaFormat inside a response_format dict;
        # left to the JSON encoder they would be sent with their unset fields as nulls.
        return {key: dump_wire(item) for key, item in value.items()}
    return value


def dump_messages(messages: Sequence[Message | Mapping[str, Any]]) -> list[Any]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise UserError(f"messages must be a list of messages, got {type(messages).__name__}")
    if not messages:
        raise UserError("messages must hold at least one message")
    # A model is taken as it is (as `as_message` would) without formatting its place.
    models = [
        item if isinstance(item, BaseModel) else as_message(item, f"messages[{i}]")
        for i, item in enumerate(messages)
    ]
    return _messages.wire_messages(models)
