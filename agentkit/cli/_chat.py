"""`agentkit chat`: an interactive conversation with an agent, drawn with rich."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from rich.console import Console
from rich.markup import escape

from agentkit import (
    Agent,
    AgentKitError,
    Message,
    Paused,
    PendingCall,
    Reject,
    RunComplete,
    TextDelta,
    ToolCallEnd,
    ToolCallStart,
)
from agentkit.cli._history import load_history, save_history
from agentkit.cli._lines import LineReader
from agentkit.cli._screen import Turn, call_label

__all__ = ["HELP", "ChatSession"]

HELP = (
    "/reset  forget the conversation · /save FILE · /load FILE · /help · /exit\n"
    "Ctrl-C cancels an answer; Ctrl-D (or /exit) ends the session."
)
_PROMPT = "[bold magenta]you>[/] "
_YES = ("y", "yes")
_NO = ("", "n", "no")


class ChatSession:
    """A conversation with one agent: each line the user types is a run, streamed, that
    continues the conversation so far.

    The whole session is one event loop, so a client the agent keeps (and its
    connection pool) serves every answer. Lines are read in a thread; Ctrl-C
    (SIGINT) is received by the loop, and cancels the answer in progress, if any.
    A run that pauses asks at the prompt: a call that requires approval is
    approved with `y`, refused with `n` or Enter, or with a reason (any other text,
    which the model is told); an external tool's result is typed in.

    Args:
        agent: The agent to talk to.
        console: Where the session is drawn.
    """

    def __init__(self, agent: Agent[Any, Any], console: Console) -> None:
        self.agent = agent
        self.console = console
        self.messages: list[Message] = []
        self.lines = LineReader(console)
        self._answering: anyio.CancelScope | None = None

    async def run(self) -> None:
        """Read prompts and answer them until the end of input or `/exit`."""
        async with anyio.create_task_group() as group:
            if sys.platform != "win32":  # no SIGINT receiver there: Ctrl-C ends the session
                await group.start(self._interrupts)
            await self._loop()
            group.cancel_scope.cancel()

    async def _interrupts(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        with anyio.open_signal_receiver(signal.SIGINT) as signals:
            task_status.started()
            async for _ in signals:
                if self._answering is not None:
                    self._answering.cancel()
                else:
                    # At the prompt: the line being typed is kept; say how to leave.
                    self.console.print("\n[dim](Ctrl-D or /exit to quit)[/]")
                    self.console.print(_PROMPT, end="")

    async def _loop(self) -> None:
        while True:
            try:
                line = (await self.lines.read(_PROMPT)).strip()
            except EOFError:
                self.console.print()
                return
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    return
                continue
            await self.answer(line)

    def command(self, line: str) -> bool:
        """Carry out a `/command`; False for `/exit`."""
        name, _, argument = line.partition(" ")
        argument = argument.strip()
        if name in ("/exit", "/quit"):
            return False
        if name == "/reset":
            self.messages = []
            self.console.print("[dim]conversation reset[/]")
        elif name == "/help":
            self.console.print(HELP, highlight=False)
        elif name in ("/save", "/load") and not argument:
            self.console.print(f"[red]{name} needs a file name, such as {name} chat.json[/]")
        elif name == "/save":
            if self._try(lambda: _saved(Path(argument), self.messages)):
                shown = escape(argument)
                self.console.print(f"[dim]saved {len(self.messages)} messages to {shown}[/]")
        elif name == "/load":
            loaded = self._try(lambda: load_history(Path(argument)))
            if loaded is not None:
                self.messages = loaded
                self.console.print(f"[dim]loaded {len(loaded)} messages from {escape(argument)}[/]")
        else:
            self.console.print(f"[red]unknown command {escape(name)}[/]; /help lists them")
        return True

    def _try(self, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except AgentKitError as exc:
            self.console.print(f"[red]{escape(str(exc))}[/]", highlight=False)
            return None

    async def answer(self, prompt: str) -> None:
        """One streamed answer; Ctrl-C cancels it and leaves the conversation as it was."""
        turn = Turn(self.console)
        try:
            with anyio.CancelScope() as scope:
                self._answering = scope
                await self._answer(prompt, turn)
        except AgentKitError as exc:
            turn.close()
            self.console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            return
        finally:
            self._answering = None
        turn.close()
        if scope.cancelled_caught:
            self.console.print("[yellow](answer cancelled)[/]")

    async def _answer(self, prompt: str, turn: Turn) -> None:
        paused = await self._show(
            self.agent.run_stream(prompt, message_history=self.messages, event_handler=_shown_here),
            turn,
        )
        while paused is not None:
            turn.close()
            approvals, results = await self._decide(paused.pending)
            resumed = self.agent.resume_stream(
                paused.state, approvals, results=results, event_handler=_shown_here
            )
            paused = await self._show(resumed, turn)

    async def _show(self, run: AbstractAsyncContextManager[Any], turn: Turn) -> Paused | None:
        """Draw a streamed run's events; the `Paused` result if it pauses."""
        failure: Exception | None = None
        async with anyio.create_task_group() as drawing:
            drawing.start_soon(turn.keep_drawing)
            try:
                async with run as stream:
                    async for event in stream:
                        if isinstance(event, TextDelta):
                            turn.text_delta(event.text)
                        elif isinstance(event, ToolCallStart):
                            turn.tool_start(event)
                        elif isinstance(event, ToolCallEnd):
                            turn.tool_end(event)
                        elif isinstance(event, RunComplete):
                            self._complete(event, turn)
            except Exception as exc:
                # Raised as itself below, not inside the task group's exception group.
                failure = exc
            finally:
                drawing.cancel_scope.cancel()
        if failure is not None:
            raise failure
        paused: Paused | None = stream.paused
        return paused

    async def _decide(
        self, pending: list[PendingCall]
    ) -> tuple[dict[str, bool | Reject], dict[str, Any]]:
        """The user's decision on each call that requires approval, and the result of
        each external tool's call, asked for at the prompt."""
        approvals: dict[str, bool | Reject] = {}
        results: dict[str, Any] = {}
        for call in pending:
            label = escape(call_label(call.tool_name, _json(call.arguments)))
            if call.kind == "external":
                question = f"[yellow]result of[/] [cyan]{label}[/]> "
                results[call.tool_call_id] = await self.lines.read(question)
                continue
            question = f"[yellow]allow[/] [cyan]{label}[/]? [dim](y, or a reason to refuse)[/] "
            answer = (await self.lines.read(question)).strip()
            if answer.lower() in _YES:
                approvals[call.tool_call_id] = True
            elif answer.lower() in _NO:
                approvals[call.tool_call_id] = Reject()
            else:
                approvals[call.tool_call_id] = Reject(answer)
        return approvals, results

    def _complete(self, event: RunComplete[Any], turn: Turn) -> None:
        result = event.result
        self.messages = list(result.messages)
        if not isinstance(result.output, str) and not turn.streamed_text:
            # Structured output: shown as the JSON it is, since no text was streamed.
            turn.close()
            from pydantic_core import to_json

            self.console.print_json(to_json(result.output).decode())


def _saved(path: Path, messages: list[Message]) -> bool:
    save_history(path, messages)
    return True


def _json(arguments: Mapping[str, Any]) -> str:
    from pydantic_core import to_json

    return to_json(arguments).decode()


def _shown_here(event: object) -> None:
    """The session draws every event itself: the agent's own handler (which may print
    to the same terminal) is replaced for the session's runs."""
