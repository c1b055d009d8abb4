"""Modules loaded when first used: the one way agentkit defers an import of its own.

Importing agentkit and configuring an agent should not pay for what only a run
needs: the run machinery, and the wire models (pydantic model classes, about
0.2 ms each to create). A module that needs one of these modules at run time
holds a stand-in for it instead of importing it::

    if TYPE_CHECKING:
        from agentkit._wire import messages as _messages
    else:
        _messages = on_first_use(globals(), "_messages", "agentkit._wire.messages")

and reaches its names through it (`_messages.UserMessage(...)`). The first
attribute read imports the module and puts it in the stand-in's place, so that
later reads go straight to the module, as after an `import` statement: the
cost per run does not grow. Type checkers and the layer contract see the
import under `TYPE_CHECKING`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = ["on_first_use"]


class _OnFirstUse:
    """Stands for a module until an attribute of it is first read."""

    __slots__ = ("_alias", "_module", "_namespace")

    def __init__(self, namespace: dict[str, Any], alias: str, module: str) -> None:
        self._namespace = namespace
        self._alias = alias
        self._module = module

    def __getattr__(self, name: str) -> Any:
        module = importlib.import_module(self._module)
        self._namespace[self._alias] = module
        return getattr(module, name)

    def __repr__(self) -> str:
        return f"<{self._module}, imported when first used>"


def on_first_use(namespace: dict[str, Any], alias: str, module: str) -> ModuleType:
    """A stand-in for `module`, bound to `alias` in `namespace` (a module's
    `globals()`), which imports the module and takes its place there when one of
    its attributes is first read.

    Args:
        namespace: The globals of the module that holds the stand-in.
        alias: The name the stand-in is bound to there.
        module: The full name of the module to import.
    """
    return _OnFirstUse(namespace, alias, module)  # type: ignore[return-value]
