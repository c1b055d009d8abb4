"""Finding the agent a command names: `MODULE:ATTRIBUTE`, from the user's own code."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from agentkit import Agent, UserError

__all__ = ["load_agent"]


def load_agent(spec: str) -> Agent[Any, Any]:
    """The agent `spec` names.

    Args:
        spec: `MODULE:ATTRIBUTE`. The module is a dotted name importable from the
            current directory (`myapp.agents`) or a path to a Python file
            (`examples/clock.py`); without `:ATTRIBUTE`, the attribute `agent`.
            The attribute is an `Agent`, or a function taking no arguments that
            returns one.

    Raises:
        UserError: The module cannot be found, it has no such attribute, or the
            attribute is not an agent; the message says which.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name:
        raise UserError(f"{spec!r} names no module: write MODULE:AGENT, such as myapp:agent")
    attribute = attribute or "agent"
    module = _import(module_name)
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            found = sorted(name for name, value in vars(module).items() if isinstance(value, Agent))
            hint = f"; its agents: {', '.join(found)}" if found else ""
            raise UserError(f"{module_name} has no attribute {attribute!r}{hint}")
        target = getattr(target, part)
    if isinstance(target, Agent):
        return target
    if callable(target):
        try:
            made = target()
        except TypeError as exc:
            raise UserError(
                f"{spec} is a function, called with no arguments to make the agent, but: {exc}"
            ) from None
        if isinstance(made, Agent):
            return made
        raise UserError(f"{spec}() returned {type(made).__name__}, not an agentkit.Agent")
    raise UserError(
        f"{spec} is {type(target).__name__}, not an agentkit.Agent (or a function making one)"
    )


def _import(name: str) -> ModuleType:
    """A module by dotted name (found from the current directory too) or by file path."""
    if name.endswith(".py") or os.sep in name or "/" in name:
        return _import_file(Path(name))
    # As `python -m` and uvicorn do: the user's modules are found from where they are.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name) and "." not in name[len(exc.name) :]:
            raise UserError(
                f"no module named {name!r} (looked in the current directory and on sys.path); "
                "give a dotted module name or a path to a .py file"
            ) from None
        raise


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    name = path.stem if path.stem.isidentifier() else "agentkit_cli_target"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered first, so that the module's own dataclasses and pickles can find it.
    sys.modules[name] = module
    # Its own directory first, as `python path/to/file.py` would have it.
    sys.path.insert(0, str(path.resolve().parent))
    spec.loader.exec_module(module)
    return module
