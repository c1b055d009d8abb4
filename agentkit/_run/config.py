"""`RunConfig`: an agent's settings as one run sees them, validated once and frozen.

`Agent` builds one when it is made and a new one whenever one of its settings
is changed, so a bad value is refused where it is set. A run takes the
configuration current at its start and keeps it to its end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from agentkit._client.encode import WireList, dump_wire
from agentkit._exceptions import UserError
from agentkit._tools.output import OutputSpec
from agentkit._tools.tool import Tool, tools_by_name
from agentkit._wire.messages import NamedToolChoice

if TYPE_CHECKING:
    from agentkit._wire.settings import ModelSettings

__all__ = ["DEFAULT_MAX_TOOL_RESULT_CHARS", "RunConfig"]

DEFAULT_MAX_TOOL_RESULT_CHARS = 100_000
"""Characters of one tool message sent to the model unless an agent says otherwise."""


class RunConfig:
    """What the loop needs of an agent; see `Agent` for what each setting means.

    Build it with `RunConfig.build`, which validates every setting, and change
    it with `replace`, which validates again. It cannot be changed in place.
    """

    __slots__ = (
        "max_tool_result_chars",
        "max_tool_retries",
        "max_turns",
        "model",
        "on_max_turns",
        "output_retries",
        "output_spec",
        "parallel_tool_calls",
        "repeat_limit",
        "repeated_tool_calls",
        "request_params",
        "reset_tool_choice",
        "settings",
        "tool_choice",
        "tool_concurrency",
        "tool_definitions",
        "tool_errors",
        "tools",
    )

    model: str
    tools: Mapping[str, Tool[..., Any]]
    tool_choice: str | NamedToolChoice
    max_turns: int
    output_spec: OutputSpec[Any]
    settings: ModelSettings
    parallel_tool_calls: bool | None
    max_tool_retries: int
    output_retries: int
    tool_errors: Literal["return", "raise"]
    repeated_tool_calls: Literal["raise", "tell"]
    repeat_limit: int
    on_max_turns: Literal["raise", "answer"]
    reset_tool_choice: bool
    tool_concurrency: int | None
    max_tool_result_chars: int | None
    # Derived from the settings above when the configuration is built.
    tool_definitions: WireList
    """The tools' definitions in wire form, sent with every request."""
    request_params: Mapping[str, Any]
    """The request fields every request of a run carries besides the conversation
    and the tools: the model settings and the response format."""

    def __init__(self, **fields: Any) -> None:
        # Called by `build` only, with every field.
        for name in self.__slots__:
            object.__setattr__(self, name, fields[name])

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a RunConfig cannot be changed; use .replace({name}=...)")

    def __repr__(self) -> str:
        return f"RunConfig(model={self.model!r}, tools={list(self.tools)!r})"

    @property
    def output_type(self) -> Any:
        """The type a run's final answer is validated against."""
        return self.output_spec.output_type

    @classmethod
    def build(
        cls,
        *,
        model: str,
        tools: Iterable[Tool[..., Any] | Callable[..., Any]] = (),
        tool_choice: Any = "auto",
        max_turns: int = 10,
        output_type: Any = str,
        settings: ModelSettings | None = None,
        parallel_tool_calls: bool | None = None,
        max_tool_retries: int = 2,
        output_retries: int = 2,
        tool_errors: Literal["return", "raise"] = "return",
        repeated_tool_calls: Literal["raise", "tell"] = "raise",
        repeat_limit: int = 3,
        on_max_turns: Literal["raise", "answer"] = "raise",
        reset_tool_choice: bool = True,
        tool_concurrency: int | None = None,
        max_tool_result_chars: int | None = DEFAULT_MAX_TOOL_RESULT_CHARS,
    ) -> RunConfig:
        """A validated configuration.

        Raises:
            UserError: A setting is out of range or of the wrong kind; the
                message names it.
        """
        if not isinstance(model, str) or not model:
            raise UserError(f"model must be a non-empty model name, got {model!r}")
        by_name = MappingProxyType(dict(tools_by_name(tools)))
        _check_int("max_turns", max_turns, 1)
        _check_int("max_tool_retries", max_tool_retries, 0)
        _check_int("output_retries", output_retries, 0)
        _check_int("repeat_limit", repeat_limit, 2)
        if tool_concurrency is not None:
            _check_int("tool_concurrency", tool_concurrency, 1)
        if max_tool_result_chars is not None:
            _check_int("max_tool_result_chars", max_tool_result_chars, 1)
        _check_choice("tool_errors", tool_errors, ("return", "raise"))
        _check_choice("repeated_tool_calls", repeated_tool_calls, ("raise", "tell"))
        _check_choice("on_max_turns", on_max_turns, ("raise", "answer"))
        if not isinstance(reset_tool_choice, bool):
            raise UserError(f"reset_tool_choice must be True or False, got {reset_tool_choice!r}")
        if parallel_tool_calls is not None and not isinstance(parallel_tool_calls, bool):
            raise UserError(
                f"parallel_tool_calls must be True, False or None, got {parallel_tool_calls!r}"
            )
        if settings is None:
            from agentkit._wire.settings import ModelSettings  # loads with the first agent

            settings = ModelSettings()
        elif not hasattr(settings, "to_params"):
            raise UserError(f"settings must be a ModelSettings, got {type(settings).__name__}")
        output_spec: OutputSpec[Any] = OutputSpec(output_type)
        params = settings.to_params()
        if output_spec.response_format is not None:
            params["response_format"] = output_spec.response_format
        return cls(
            model=model,
            tools=by_name,
            tool_choice=_tool_choice(tool_choice, by_name),
            max_turns=max_turns,
            output_spec=output_spec,
            settings=settings,
            parallel_tool_calls=parallel_tool_calls,
            max_tool_retries=max_tool_retries,
            output_retries=output_retries,
            tool_errors=tool_errors,
            repeated_tool_calls=repeated_tool_calls,
            repeat_limit=repeat_limit,
            on_max_turns=on_max_turns,
            reset_tool_choice=reset_tool_choice,
            tool_concurrency=tool_concurrency,
            max_tool_result_chars=max_tool_result_chars,
            tool_definitions=WireList(dump_wire(t.definition) for t in by_name.values()),
            request_params=MappingProxyType(params),
        )

    def replace(self, **changes: Any) -> RunConfig:
        """This configuration with `changes` applied, validated as `build` validates.

        Raises:
            UserError: A changed setting is invalid, or is not a setting.
        """
        settings = {
            "model": self.model,
            "tools": tuple(self.tools.values()),
            "tool_choice": _choice_name(self.tool_choice),
            "max_turns": self.max_turns,
            "output_type": self.output_type,
            "settings": self.settings,
            "parallel_tool_calls": self.parallel_tool_calls,
            "max_tool_retries": self.max_tool_retries,
            "output_retries": self.output_retries,
            "tool_errors": self.tool_errors,
            "repeated_tool_calls": self.repeated_tool_calls,
            "repeat_limit": self.repeat_limit,
            "on_max_turns": self.on_max_turns,
            "reset_tool_choice": self.reset_tool_choice,
            "tool_concurrency": self.tool_concurrency,
            "max_tool_result_chars": self.max_tool_result_chars,
        }
        unknown = set(changes) - set(settings)
        if unknown:
            raise UserError(f"not an agent setting: {', '.join(sorted(unknown))}")
        return self.build(**{**settings, **changes})


def _tool_choice(choice: Any, tools: Mapping[str, Tool[..., Any]]) -> str | NamedToolChoice:
    if isinstance(choice, NamedToolChoice):
        choice = choice.function.name
    if choice in ("auto", "none", "required"):
        if choice == "required" and not tools:
            raise UserError('tool_choice="required" needs at least one tool')
        return str(choice)
    if isinstance(choice, str):
        if choice not in tools:
            known = ", ".join(tools) or "none"
            raise UserError(f"tool_choice {choice!r} is not a tool of this agent (tools: {known})")
        return NamedToolChoice.of(choice)
    raise UserError(f'tool_choice must be "auto", "none", "required" or a tool name: {choice!r}')


def _choice_name(choice: str | NamedToolChoice) -> str:
    return choice if isinstance(choice, str) else choice.function.name


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
