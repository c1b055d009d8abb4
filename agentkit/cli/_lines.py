"""Lines typed at the terminal, read without blocking the chat's event loop."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import anyio.to_thread
from rich.console import Console

__all__ = ["LineReader"]


class LineReader:
    """Reads one line at a time in a thread of its own, so the event loop goes on.

    A read that is cancelled (Ctrl-C during a question) leaves its thread waiting
    on the terminal; the next read takes the line that thread gets, after showing
    its own prompt, so that two threads never compete for what is typed.
    """

    def __init__(self, console: Console) -> None:
        self.console = console
        self._pending: Future[str] | None = None

    async def read(self, prompt: str) -> str:
        """The next line typed after `prompt`, without its line break.

        Raises:
            EOFError: The input has ended (Ctrl-D).
        """
        if self._pending is None:
            self._pending = self._start(prompt)
        else:
            self.console.print(prompt, end="")
        pending = self._pending
        # Waited for in a worker thread, given up if cancelled: the line then stays
        # pending for the next read (and that thread ends when it comes).
        line = await anyio.to_thread.run_sync(pending.result, abandon_on_cancel=True)
        self._pending = None
        return line

    def _start(self, prompt: str) -> Future[str]:
        future: Future[str] = Future()

        def read() -> None:
            try:
                future.set_result(self.console.input(prompt))
            except BaseException as exc:  # EOFError, or the terminal gone: for the reader
                future.set_exception(exc)

        # A daemon: a read still waiting when the session ends must not hold the exit.
        threading.Thread(target=read, name="agentkit-chat-input", daemon=True).start()
        return future
