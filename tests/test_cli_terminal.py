"""`agentkit chat` in a real terminal: typed into through tmux, its screen read back.

Against the scripted clock agent (`examples/clock.py`, offline), the test agents
of `tests/cli_agents.py`, and, for the chat without an agent, the clock agent
served on 127.0.0.1 by `agentkit.serve`. Each test waits for text with a
deadline (`tests/terminal.py`); none waits longer than 20 s for any one screen.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest

from agentkit.serve import create_app
from tests.serve_server import serving
from tests.terminal import terminal

ROOT = Path(__file__).parent.parent
ENV = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "PYTHONPATH": str(ROOT)}
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
PROMPT = "you>"


def _command(*args: str) -> list[str]:
    """`agentkit ARGS`: the console script beside this interpreter, else `-m agentkit.cli`."""
    script = Path(sys.executable).parent / "agentkit"
    launcher = [str(script)] if script.exists() else [sys.executable, "-m", "agentkit.cli"]
    return ["env", "-C", str(ROOT), *launcher, *args]


@pytest.fixture(autouse=True)
def _no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    # The clock agent runs offline only when neither variable is set.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def _env() -> dict[str, str]:
    return {k: v for k, v in ENV.items() if v}


def test_chat_with_the_clock_agent(tmp_path: Path) -> None:
    saved = tmp_path / "chat.json"
    with terminal(_command("chat", "examples/clock.py:build_agent"), env=_env()) as term:
        screen = term.wait_for(PROMPT)
        assert "agentkit chat · model gpt-4o-mini · examples/clock.py:build_agent" in screen
        assert "/reset" in screen and "Ctrl-C cancels an answer" in screen

        term.type("What time is it in Tokyo and in Paris?")
        screen = term.wait_for(PROMPT, count=2)
        tokyo = screen.index('✓ get_current_time(timezone="Asia/Tokyo") → ')
        paris = screen.index('✓ get_current_time(timezone="Europe/Paris") → ')
        answer = screen.index("It is ")
        # Each call is shown with its arguments and result (as it ends: the two run at
        # once, so in either order), before the answer.
        assert max(tokyo, paris) < answer
        assert "JST (UTC+0900)" in screen[tokyo : screen.index("\n", tokyo)]
        assert "in Paris." in screen[answer:]

        term.type(f"/save {saved}")
        term.wait_for(f"saved 5 messages to {saved}")
        term.type("/reset")
        term.wait_for("conversation reset")
        term.type(f"/load {saved}")
        term.wait_for(f"loaded 5 messages from {saved}")
        term.type("And in Sydney?")
        term.wait_for('get_current_time(timezone="Australia/Sydney")')
        term.wait_for(PROMPT, count=6)
        term.type(f"/save {saved}")
        term.wait_for(f"saved 9 messages to {saved}")
        # The loaded conversation went on: the first question is still in it.
        contents = [m.get("content") for m in json.loads(saved.read_text())]
        assert contents[0] == "What time is it in Tokyo and in Paris?"
        assert contents[5] == "And in Sydney?"

        term.type("/load")
        term.wait_for("/load needs a file name")
        term.type("/nonsense")
        term.wait_for("unknown command /nonsense")
        term.keys("C-d")
        assert term.exited()
        assert "[exited 0]" in term.screen()


def test_spinner_markdown_and_ctrl_c(tmp_path: Path) -> None:
    saved = tmp_path / "after-cancel.json"
    with terminal(_command("chat", "tests/cli_agents.py:slow"), env=_env()) as term:
        term.wait_for(PROMPT)
        term.type("wait 30")
        screen = term.wait_for("wait(seconds=30.0) …")
        line = next(line for line in screen.splitlines() if "wait(seconds=30.0) …" in line)
        assert line.lstrip()[0] in SPINNER
        # Ctrl-C cancels the answer (the tool's 30 s are not waited out), not the session.
        term.keys("C-c")
        term.wait_for("(answer cancelled)")
        term.wait_for(PROMPT, count=2)

        term.type("markdown")
        screen = term.wait_for("second item")
        # Rendered, not shown as source: no `#`, `**` or backticks; bullets drawn.
        assert "Heading one" in screen and "# Heading" not in screen
        assert "Some bold words and code." in screen
        assert "**" not in screen and "`" not in screen
        assert "• first item" in screen

        term.type("wait 0.2")
        term.wait_for("✓ wait(seconds=0.2) → waited 0.2 s")
        term.wait_for("The tool said: waited 0.2 s")

        term.type(f"/save {saved}")
        term.wait_for("saved 6 messages")
        roles = [m["role"] for m in json.loads(saved.read_text())]
        # The cancelled turn left nothing behind: the conversation is as it was before it.
        assert roles == ["user", "assistant", "user", "assistant", "tool", "assistant"]

        term.keys("C-c")
        term.wait_for("(Ctrl-D or /exit to quit)")
        term.type("/exit")
        assert term.exited()
        assert "[exited 0]" in term.screen()


def test_plain_chat_with_a_served_endpoint() -> None:
    # No agent: a plain chat with whatever --base-url serves, here the clock agent
    # served by agentkit.serve on 127.0.0.1 (its tools run on the server).
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import clock
    finally:
        sys.path.remove(str(ROOT / "examples"))
    app = create_app({"clock": clock.build_agent()}, api_keys=None)
    with serving(app) as served:
        command = _command("chat", "--base-url", served.url, "--model", "clock")
        with terminal(command, env=_env()) as term:
            screen = term.wait_for(PROMPT)
            assert "model clock · no agent: a plain chat" in screen
            term.type("What time is it in Tokyo?")
            screen = term.wait_for(PROMPT, count=2)
            assert "in Tokyo." in screen
            term.type("/exit")
            assert term.exited()


def test_errors_are_shown_and_the_session_goes_on() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = _command("chat", "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "m")
    with terminal(command, env=_env()) as term:
        term.wait_for(PROMPT)
        term.type("hello?")
        screen = term.wait_for(PROMPT, count=2)
        assert f"error: cannot connect to http://127.0.0.1:{port}/v1" in screen
        assert "OPENAI_BASE_URL" in screen and "Traceback" not in screen
        term.type("/exit")
        assert term.exited()


def test_chat_that_cannot_start_says_why() -> None:
    with terminal(_command("chat", "tests/cli_agents.py:broken"), env=_env()) as term:
        assert term.exited()
        screen = term.screen()
        assert "agentkit: error: this factory refuses, on purpose" in screen
        assert "[exited 1]" in screen


def test_a_long_answer_leaves_one_copy_in_the_scrollback() -> None:
    # 80 lines on a 24-line screen: the live area must never outgrow the screen, or
    # each redraw leaves a copy of it behind.
    command = _command("chat", "tests/cli_agents.py:slow")
    with terminal(command, env=_env(), width=80, height=24) as term:
        term.wait_for(PROMPT)
        term.type("long")
        screen = term.wait_for(PROMPT, count=2)
        assert screen.count("line number") == 80
        assert screen.index(" 1 line number 1 ") < screen.index("80 line number 80")
        assert screen.index("80 line number 80") < screen.index("The end.")
        term.type("/exit")
        assert term.exited()


def test_a_paused_run_asks_at_the_prompt(tmp_path: Path) -> None:
    saved = tmp_path / "desk.json"
    with terminal(_command("chat", "tests/cli_agents.py:desk"), env=_env()) as term:
        term.wait_for(PROMPT)
        term.type("refund please")
        term.wait_for('allow refund(order="A-1", amount=40)? (y, or a reason to refuse)')
        term.type("y")
        term.wait_for('result of get_location(precision="city")>')
        term.type("Lisbon, Portugal")
        term.wait_for("Done: refunded 40 EUR on A-1; Lisbon, Portugal")
        assert '✓ refund(order="A-1", amount=40) → refunded 40 EUR on A-1' in term.screen()

        term.type("again")
        term.wait_for("allow refund", count=2)
        term.type("over the limit")  # any other text refuses, and is the reason
        term.wait_for("result of get_location", count=2)
        term.type("Porto")
        term.wait_for("the call was rejected: over the limit; Porto")

        # Ctrl-C during a question cancels the answer; the next line is a new prompt.
        term.type("and again")
        term.wait_for("allow refund", count=3)
        term.keys("C-c")
        term.wait_for("(answer cancelled)")
        term.type(f"/save {saved}")
        term.wait_for("saved 10 messages")
        term.type("/exit")
        assert term.exited()
    roles = [m["role"] for m in json.loads(saved.read_text())]
    assert roles == ["user", "assistant", "tool", "tool", "assistant"] * 2


def test_chat_starts_from_a_saved_conversation(tmp_path: Path) -> None:
    saved, again = tmp_path / "before.json", tmp_path / "after.json"
    saved.write_text(
        json.dumps(
            [
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "echo (scripted): first"},
            ]
        )
    )
    command = _command("chat", "tests/cli_agents.py:slow", "--load", str(saved), "--model", "m2")
    with terminal(command, env=_env()) as term:
        assert "model m2 · tests/cli_agents.py:slow" in term.wait_for(PROMPT)
        term.type("second")
        term.wait_for("echo (m2): second")
        term.type(f"/save {again}")
        term.wait_for("saved 4 messages")
        term.type("/exit")
        assert term.exited()
    contents = [m["content"] for m in json.loads(again.read_text())]
    assert contents == ["first", "echo (scripted): first", "second", "echo (m2): second"]
