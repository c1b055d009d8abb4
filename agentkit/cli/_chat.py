"""`agentkit chat`: an interactive conversation with an agent, drawn with rich."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text

from agentkit import (
    Agent,
    AgentKitError,
    Message,
    RunComplete,
    RunPaused,
    TextDelta,
    ToolCallEnd,
    ToolCallStart,
)
from agentkit.cli._history import load_history, save_history

__all__ = ["HELP", "ChatSession", "call_label", "settled"]

HELP = (
    "/reset  forget the conversation · /save FILE · /load FILE · /help · /exit\n"
    "Ctrl-C cancels an answer; Ctrl-D (or /exit) ends the session."
)
_PROMPT = "[bold magenta]you>[/] "
_MAX_RESULT = 300
"""Characters of a tool's result shown under its call; the model gets all of them."""


def call_label(name: str, arguments: str) -> str:
    """`name(key=value, …)` for a tool call whose arguments are a JSON object."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return f"{name}({arguments})"
    if not isinstance(parsed, dict):
        return f"{name}({arguments})"
    shown = ", ".join(
        f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in parsed.items()
    )
    return f"{name}({shown})"


def settled(text: str, height: int, width: int) -> tuple[str, str]:
    """`text` split into the Markdown blocks that are complete, which will not change
    as more text streams in, and the rest; a rest taller than `height` lines (of
    `width` characters) is split at its last line, even inside a code block (which
    is then closed in the first part and opened again in the second)."""
    done = ""
    fence = _open_fence(text)
    # The last blank line outside a code block ends the complete blocks.
    cut = text.rfind("\n\n")
    while cut > 0 and _open_fence(text[:cut]):
        cut = text.rfind("\n\n", 0, cut)
    if cut > 0:
        done, text = text[: cut + 2], text[cut + 2 :]
    if sum(1 + len(line) // max(width, 1) for line in text.split("\n")) <= height:
        return done, text
    line_end = text.rfind("\n")
    if line_end <= 0:
        return done, text
    head, tail = text[:line_end], text[line_end + 1 :]
    fence = _open_fence(done + head)
    if fence:
        head, tail = f"{head}\n```", f"{fence}\n{tail}"
    return done + head, tail


def _open_fence(text: str) -> str:
    """The opening line of the code block `text` ends inside of, or ""."""
    opening = ""
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            opening = "" if opening else line.strip()
    return opening


def _cut(text: str, limit: int = _MAX_RESULT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Turn:
    """What one answer puts on the screen: its text as Markdown, re-rendered as it
    streams, and a spinner for each tool call running; a finished call is printed
    above, with its arguments and result."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.text = ""
        self.streamed_text = False
        self.running: dict[str, str] = {}
        self.live: Live | None = None

    def _render(self) -> RenderableType:
        parts: list[RenderableType] = []
        if self.text:
            parts.append(Markdown(self.text))
        parts.extend(
            Spinner("dots", text=Text(f"{label} …", style="cyan"))
            for label in self.running.values()
        )
        return Group(*parts)

    def _refresh(self) -> None:
        if self.live is None:
            self.live = Live(
                self._render(),
                console=self.console,
                refresh_per_second=12,
                vertical_overflow="visible",
            )
            self.live.start()
        else:
            self.live.update(self._render())

    def text_delta(self, text: str) -> None:
        self.text += text
        self.streamed_text = True
        done, self.text = settled(self.text, max(self.console.height - 4, 4), self.console.width)
        if done:
            # Printed for good above the live area, which keeps only the rest: a live area
            # taller than the screen leaves a copy of itself in the scrollback at each redraw.
            self.console.print(Markdown(done))
        self._refresh()

    def tool_start(self, event: ToolCallStart) -> None:
        self._finish_text()
        self.running[event.tool_call_id] = call_label(event.tool_name, event.arguments)
        self._refresh()

    def tool_end(self, event: ToolCallEnd) -> None:
        label = self.running.pop(event.tool_call_id, None) or call_label(
            event.tool_name, event.arguments
        )
        if event.error:
            outcome = f"[red]✗ {escape(label)} → error: {escape(_cut(event.error))}[/]"
        else:
            outcome = f"[green]✓[/] [cyan]{escape(label)}[/] → {escape(_cut(event.result))}"
        self.console.print(outcome, highlight=False)
        self._refresh()

    def _finish_text(self) -> None:
        """End the text shown so far, so tool calls print below it."""
        if self.text:
            self.text_done()

    def text_done(self) -> None:
        if self.live is not None:
            self.live.update(self._render(), refresh=True)
            self.live.stop()
            self.live = None
        self.text = ""

    def close(self) -> None:
        self.running.clear()
        self.text_done()


class ChatSession:
    """A conversation with one agent: each line the user types is a run, streamed, that
    continues the conversation so far.

    The whole session is one event loop, so a client the agent keeps (and its
    connection pool) serves every answer. Lines are read in a worker thread; Ctrl-C
    (SIGINT) is received by the loop, and cancels the answer in progress, if any.

    Args:
        agent: The agent to talk to.
        console: Where the session is drawn.
    """

    def __init__(self, agent: Agent[Any, Any], console: Console) -> None:
        self.agent = agent
        self.console = console
        self.messages: list[Message] = []
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
                line = await anyio.to_thread.run_sync(self._read, abandon_on_cancel=True)
            except EOFError:
                self.console.print()
                return
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    return
                continue
            await self.answer(line)

    def _read(self) -> str:
        return self.console.input(_PROMPT)

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
            self._try(lambda: save_history(Path(argument), self.messages))
            self.console.print(f"[dim]saved {len(self.messages)} messages to {escape(argument)}[/]")
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
        turn = _Turn(self.console)
        try:
            with anyio.CancelScope() as scope:
                self._answering = scope
                await self._stream(prompt, turn)
        except AgentKitError as exc:
            turn.close()
            self.console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
            return
        finally:
            self._answering = None
        turn.close()
        if scope.cancelled_caught:
            self.console.print("[yellow](answer cancelled)[/]")

    async def _stream(self, prompt: str, turn: _Turn) -> None:
        async with self.agent.run_stream(
            prompt, message_history=self.messages, event_handler=_shown_here
        ) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    turn.text_delta(event.text)
                elif isinstance(event, ToolCallStart):
                    turn.tool_start(event)
                elif isinstance(event, ToolCallEnd):
                    turn.tool_end(event)
                elif isinstance(event, RunComplete):
                    self._complete(event, turn)
                elif isinstance(event, RunPaused):
                    turn.close()
                    waiting = ", ".join(p.tool_name for p in event.paused.pending)
                    self.console.print(
                        f"[yellow]the run paused for approval of {escape(waiting)}; "
                        "agentkit chat does not approve calls: give the agent an "
                        "approval_handler to decide them in the session[/]"
                    )

    def _complete(self, event: RunComplete[Any], turn: _Turn) -> None:
        result = event.result
        self.messages = list(result.messages)
        if not isinstance(result.output, str) and not turn.streamed_text:
            # Structured output: shown as the JSON it is, since no text was streamed.
            turn.close()
            from pydantic_core import to_json

            self.console.print_json(to_json(result.output).decode())


def _shown_here(event: object) -> None:
    """The session draws every event itself: the agent's own handler (which may print
    to the same terminal) is replaced for the session's runs."""
