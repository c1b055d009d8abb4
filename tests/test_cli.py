"""The `agentkit` command: `agentkit run` as a subprocess (stdout, stderr, exit status),
finding agents, saved conversations, and what the command costs `import agentkit`.
The interactive chat is driven in a real terminal in `test_cli_terminal.py`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from agentkit import Agent, AssistantMessage, ToolMessage, UserError, UserMessage
from agentkit.cli import main
from agentkit.cli._history import load_history, save_history
from agentkit.cli._load import load_agent
from agentkit.cli._screen import call_label

ROOT = Path(__file__).parent.parent
CLOCK = "examples/clock.py:build_agent"
ENV = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}


def agentkit(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`agentkit ARGS` run from the repository's root, without any endpoint configured."""
    return subprocess.run(
        [sys.executable, "-m", "agentkit.cli", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env={**ENV, **(env or {})},
    )


def test_console_script_is_declared() -> None:
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "agentkit"]
    assert script.value == "agentkit.cli:main"


def test_run_prints_only_the_answer() -> None:
    done = agentkit("run", CLOCK, "What time is it in Tokyo and in Paris?")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("It is ") and "in Tokyo" in line and line.endswith("in Paris.")
    # The agent's own event handler (which prints tool calls) is replaced by the command's.
    assert "get_current_time" not in done.stdout
    assert "running offline" in done.stderr


def test_run_verbose_shows_tool_calls_on_stderr() -> None:
    done = agentkit("run", CLOCK, "Tokyo?", "-v")
    assert done.returncode == 0, done.stderr
    assert 'get_current_time({"timezone": "Asia/Tokyo"}) -> ' in done.stderr
    assert "in Tokyo." in done.stdout


def test_run_reads_the_prompt_from_stdin() -> None:
    done = agentkit("run", "tests/cli_agents.py:slow", stdin="from a pipe\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo (scripted): from a pipe\n"


def test_run_model_option() -> None:
    done = agentkit("run", "tests.cli_agents:slow", "hi", "--model", "other-model")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "echo (other-model): hi\n"


def test_run_json_is_the_whole_result(tmp_path: Path) -> None:
    done = agentkit("run", CLOCK, "What time is it in Tokyo?", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {"output", "messages", "usage", "turns"}
    assert result["turns"] == 2 and "in Tokyo" in result["output"]
    assert [m["role"] for m in result["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert result["usage"]["total_tokens"] >= 0
    # A conversation printed by --json can be loaded into a chat (/load, --load).
    saved = tmp_path / "run.json"
    saved.write_text(done.stdout)
    assert len(load_history(saved)) == 4


def test_run_structured_output_prints_json() -> None:
    done = agentkit("run", "tests/cli_agents.py:structured", "Tokyo?")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"name": "Tokyo", "population": 14000000}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("tests/missing.py:agent", "no such file: tests/missing.py"),
        ("no_such_module:agent", "no module named 'no_such_module'"),
        (
            "tests/cli_agents.py:nothing",
            "has no attribute 'nothing'; its agents: desk, slow, structured",
        ),
        ("tests/cli_agents.py", "has no attribute 'agent'"),
        ("tests/cli_agents.py:not_an_agent", "is int, not an agentkit.Agent"),
        ("tests/cli_agents.py:broken", "this factory refuses, on purpose"),
        (":agent", "names no module"),
    ],
)
def test_run_errors_are_one_line_without_a_traceback(spec: str, expected: str) -> None:
    done = agentkit("run", spec, "hi")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith("agentkit: error: ")
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_run_without_a_key_for_openai_says_what_to_do() -> None:
    done = agentkit("run", CLOCK, "hi", "--base-url", "https://api.openai.com/v1")
    assert done.returncode == 1
    assert "OPENAI_API_KEY" in done.stderr and "Traceback" not in done.stderr


def test_run_against_a_closed_port_names_the_url(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    done = agentkit("run", CLOCK, "hi", "--base-url", f"http://127.0.0.1:{port}/v1")
    assert done.returncode == 1
    assert f"cannot connect to http://127.0.0.1:{port}/v1" in done.stderr
    assert "OPENAI_BASE_URL" in done.stderr and "Traceback" not in done.stderr


def test_usage_errors() -> None:
    assert agentkit().returncode == 2
    done = agentkit("run", "tests/cli_agents.py:slow", stdin="  \n")
    assert done.returncode == 2 and "the prompt is empty" in done.stderr
    done = agentkit("--version")
    assert done.returncode == 0 and done.stdout.startswith("agentkit ")


def test_chat_without_rich_says_which_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "rich.console", None)
    assert main(["chat", "tests/cli_agents.py:slow"]) == 1
    assert "pip install 'agentkit[cli]'" in capsys.readouterr().err


def test_import_agentkit_loads_neither_the_cli_nor_rich() -> None:
    code = "import sys, agentkit; print(sorted(m for m in sys.modules if m.startswith(('rich', 'agentkit.cli'))))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


# --- finding the agent -----------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    ["tests.cli_agents:slow", "tests/cli_agents.py:slow", str(ROOT / "tests/cli_agents.py:slow")],
)
def test_load_agent_by_module_or_path(spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))
    agent = load_agent(spec)
    assert isinstance(agent, Agent) and agent.model == "scripted"


def test_load_agent_from_a_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    agent = load_agent(CLOCK)
    assert set(agent.tools) == {"get_current_time", "convert_time", "find_timezones"}


def test_load_agent_factory_needing_arguments(tmp_path: Path) -> None:
    module = tmp_path / "needs_args.py"
    module.write_text("def make(model):\n    raise AssertionError('not called')\n")
    with pytest.raises(UserError, match="called with no arguments"):
        load_agent(f"{module}:make")


# --- saved conversations ----------------------------------------------------------------


def _conversation() -> list[object]:
    return [
        UserMessage(content="What time is it in Tokyo?"),
        AssistantMessage.model_validate(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_current_time", "arguments": "{}"},
                    }
                ],
            }
        ),
        ToolMessage(tool_call_id="call_1", content="16:00 JST"),
        AssistantMessage(content="It is 16:00 in Tokyo."),
    ]


def test_history_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "chat.json"
    messages = _conversation()
    save_history(path, messages)  # type: ignore[arg-type]
    assert load_history(path) == messages
    assert json.loads(path.read_text())[0] == {
        "role": "user",
        "content": "What time is it in Tokyo?",
    }
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("not json", "is not JSON"),
        ('{"a": 1}', "does not hold a conversation"),
        ('[{"role": "wizard", "content": "x"}]', "at 0"),
        (
            '[{"role": "tool", "tool_call_id": "call_9", "content": "x"}]',
            "an agent cannot continue",
        ),
    ],
)
def test_history_load_errors(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(UserError, match=expected):
        load_history(path)


def test_history_missing_file_and_unwritable_place(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read"):
        load_history(tmp_path / "absent.json")
    with pytest.raises(UserError, match="cannot save"):
        save_history(tmp_path / "no-such-dir" / "chat.json", [])


@pytest.mark.parametrize(
    ("arguments", "label"),
    [
        ('{"timezone": "Asia/Tokyo"}', 'get_time(timezone="Asia/Tokyo")'),
        ('{"n": 2, "flag": true}', "get_time(n=2, flag=true)"),
        ("", "get_time()"),
        ("not json", "get_time(not json)"),
        ("[1]", "get_time([1])"),
    ],
)
def test_call_label(arguments: str, label: str) -> None:
    assert call_label("get_time", arguments) == label


# --- one event loop for a whole chat ---------------------------------------------------


@pytest.mark.anyio
async def test_chat_session_keeps_one_client_for_every_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A client kept by the agent holds a connection pool, which belongs to one event
    # loop: every answer of a session runs on the session's loop, so it serves them all.
    import io

    from rich.console import Console

    from agentkit import ChatClient
    from agentkit.cli._chat import ChatSession
    from agentkit.serve import create_app
    from tests.cli_agents import slow
    from tests.serve_server import serving

    app = create_app({"scripted": slow}, api_keys=None)
    with serving(app) as served:
        async with ChatClient(base_url=served.url, max_retries=0) as client:
            out = io.StringIO()
            session = ChatSession(Agent("scripted", client=client), Console(file=out, width=80))
            for prompt in ("one", "two", "three"):
                await session.answer(prompt)
    assert "Traceback" not in out.getvalue() and "error" not in out.getvalue()
    assert [m.content for m in session.messages if m.role == "assistant"] == [
        "echo (scripted): one",
        "echo (scripted): two",
        "echo (scripted): three",
    ]


# --- what of a streamed answer is printed for good ---------------------------------------


def test_settled_blocks_are_the_complete_ones() -> None:
    from agentkit.cli._screen import settled

    assert settled("One paragraph", 20, 80) == ("", "One paragraph")
    assert settled("First.\n\nSecond, still", 20, 80) == ("First.\n\n", "Second, still")
    # A blank line inside a code block does not end it.
    text = "Intro.\n\n```python\nx = 1\n\ny = 2\n"
    assert settled(text, 20, 80) == ("Intro.\n\n", "```python\nx = 1\n\ny = 2\n")


def test_settled_cuts_what_outgrows_the_screen() -> None:
    from agentkit.cli._screen import settled

    lines = "\n".join(f"- item {n}" for n in range(30))
    done, rest = settled(lines, 10, 80)
    assert done + "\n" + rest == lines and rest == "- item 29"
    # Inside a code block, the block is closed and opened again.
    code = "```python\n" + "\n".join(f"x{n} = {n}" for n in range(30))
    done, rest = settled(code, 10, 80)
    assert done.endswith("x28 = 28\n```") and rest == "```python\nx29 = 29"
    # Wrapped lines count as the lines they take.
    done, rest = settled("a" * 500 + "\n" + "b", 4, 80)
    assert done == "a" * 500 and rest == "b"


def test_run_of_a_paused_run_says_what_waits() -> None:
    done = agentkit("run", "tests/cli_agents.py:desk", "refund please")
    assert done.returncode == 1 and done.stdout == ""
    assert "the run paused for refund, get_location" in done.stderr
    assert "agentkit chat" in done.stderr and "Traceback" not in done.stderr
