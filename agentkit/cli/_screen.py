"""What `agentkit chat` draws of an answer: Markdown as it streams, and tool calls."""

from __future__ import annotations

import json

import anyio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markdown import Markdown
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text

from agentkit import ToolCallEnd, ToolCallStart

__all__ = ["Turn", "call_label", "settled"]

_REDRAW = 1 / 12
"""Seconds between redraws of the live area."""
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


class Turn:
    """What one answer puts on the screen: its text as Markdown, re-rendered as it
    streams, and a spinner for each tool call running; a finished call is printed
    above, with its arguments and result.

    Everything is drawn from the thread of the event loop: `keep_drawing` redraws
    the live area 12 times a second (rich's own refresh thread would race with the
    lines printed above the live area, and lose or repeat some of them).
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self.text = ""
        self.streamed_text = False
        self.running: dict[str, str] = {}
        self.live: Live | None = None
        self._changed = False

    async def keep_drawing(self) -> None:
        """Redraw the live area (the latest text, the spinners turning) until cancelled."""
        while True:
            await anyio.sleep(_REDRAW)
            self.draw()

    def draw(self) -> None:
        """Bring the live area up to date now."""
        if self.live is None:
            return
        if self._changed:
            # Parsed here, at most at the redraw rate, rather than at every piece of text.
            self.live.update(self._render())
            self._changed = False
        self.live.refresh()

    def _render(self) -> RenderableType:
        parts: list[RenderableType] = []
        if self.text:
            parts.append(Markdown(self.text))
        parts.extend(
            Spinner("dots", text=Text(f"{label} …", style="cyan"))
            for label in self.running.values()
        )
        return Group(*parts)

    def _show(self) -> None:
        self._changed = True
        if self.live is None:
            self.live = Live(console=self.console, auto_refresh=False, vertical_overflow="visible")
            self.live.start()
            self.draw()

    def text_delta(self, text: str) -> None:
        self.text += text
        self.streamed_text = True
        done, self.text = settled(self.text, max(self.console.height - 4, 4), self.console.width)
        if done:
            # Printed for good above the live area, which keeps only the rest: a live area
            # taller than the screen leaves a copy of itself in the scrollback at each redraw.
            # The live area drops it first, or printing would draw it there once more.
            if self.live is not None:
                self.live.update(self._render())
            self.console.print(Markdown(done))
        self._show()

    def tool_start(self, event: ToolCallStart) -> None:
        self._finish_text()
        self.running[event.tool_call_id] = call_label(event.tool_name, event.arguments)
        self._show()
        self.draw()

    def tool_end(self, event: ToolCallEnd) -> None:
        label = self.running.pop(event.tool_call_id, None) or call_label(
            event.tool_name, event.arguments
        )
        if event.error:
            outcome = f"[red]✗ {escape(label)} → error: {escape(_cut(event.error))}[/]"
        else:
            outcome = f"[green]✓[/] [cyan]{escape(label)}[/] → {escape(_cut(event.result))}"
        if self.live is not None:
            self.live.update(self._render())
        self.console.print(outcome, highlight=False)
        self._show()

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
