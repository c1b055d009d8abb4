"""Pydantic models of the bodies a server sends besides completions: errors and the model list.

Apart from `_responses` so that they load only when first needed.
"""

# Annotations stay objects (no `from __future__ import annotations`): as strings,
# pydantic would have to compile each one when the model classes are built at import.
from agentkit._wire.messages import WireModel

__all__ = ["ErrorObject", "ErrorResponse", "Model", "ModelList"]


class ErrorObject(WireModel):
    """The `error` of an error body."""

    message: str
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(WireModel):
    """An error body: `{"error": {"message", "type", "param", "code"}}`."""

    error: ErrorObject


class Model(WireModel):
    """A model the server offers (`GET /models`)."""

    id: str
    object: str = "model"
    created: int | None = None
    owned_by: str | None = None


class ModelList(WireModel):
    """The body of `GET /models`."""

    object: str = "list"
    data: list[Model]
