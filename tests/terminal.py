"""A real terminal for command-line tests: a program run in tmux, typed into, its screen read.

Each `Terminal` has a tmux server of its own (its own socket, in a temporary
directory), so tests never touch a user's sessions, and a test's end kills
everything it started and removes the socket. When
tmux is missing the tests that need it are skipped, except under `CI=true`
(`tests/setup.sh` installs it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import pytest

WAIT = 20.0
"""Seconds a test waits for text to appear before it fails."""


class Terminal:
    """One program in a tmux window of a fixed size."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-S", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout

    def type(self, text: str, *, enter: bool = True) -> None:
        """Type `text` (literally), then Enter."""
        self._tmux("send-keys", "-t", "main", "-l", text)
        if enter:
            self._tmux("send-keys", "-t", "main", "Enter")

    def keys(self, *keys: str) -> None:
        """Press keys by tmux's names: `C-c`, `C-d`, `Enter`."""
        self._tmux("send-keys", "-t", "main", *keys)

    def screen(self) -> str:
        """What the window shows now, with its scrollback."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", "main")

    def wait_for(self, text: str, *, count: int = 1, timeout: float = WAIT) -> str:
        """The screen once `text` is on it `count` times; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if screen.count(text) >= count:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear; the screen:\n{screen}")
            time.sleep(0.1)

    def exited(self, timeout: float = WAIT) -> bool:
        """Whether the program ended within `timeout` seconds (its window then says so)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "[exited" in self.screen():
                return True
            time.sleep(0.1)
        return False


@contextmanager
def terminal(
    command: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    width: int = 100,
    height: int = 40,
) -> Iterator[Terminal]:
    """Run `command` in a new tmux server's window until the block ends."""
    if shutil.which("tmux") is None:
        message = "tmux is not installed (apt-get install tmux; tests/setup.sh does it)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    home = tempfile.mkdtemp(prefix="agentkit-tmux-")
    term = Terminal(os.path.join(home, "socket"))
    environment = {**os.environ, **(env or {}), "TERM": "xterm-256color"}
    # The window stays open after the program ends, so its last screen can be read.
    # The shell catches Ctrl-C (a trap, which its child does not inherit, unlike an
    # ignored signal) so that it outlives a Ctrl-C meant for the program.
    program = " ".join(_quote(part) for part in command)
    shell = f"trap : INT; {program}; echo '[exited '$?']'; sleep 60"
    try:
        subprocess.run(
            ["tmux", "-S", term.socket, "-f", "/dev/null", "new-session", "-d", "-s", "main",
             "-x", str(width), "-y", str(height), "sh", "-c", shell],
            env=environment,
            timeout=10,
            check=True,
        )  # fmt: skip
        yield term
    finally:
        subprocess.run(["tmux", "-S", term.socket, "kill-server"], capture_output=True, timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def _quote(part: str) -> str:
    return "'" + part.replace("'", "'\\''") + "'"
