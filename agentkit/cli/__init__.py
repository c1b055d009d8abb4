"""`agentkit`, the command line: chat with an agent from your code, or ask it once.

    agentkit chat examples/clock.py:build_agent     # an interactive chat with that agent
    agentkit chat --model llama3.2 --base-url http://localhost:11434/v1   # no agent: plain chat
    agentkit run myapp.agents:support "Where is my order?"   # one answer to stdout
    agentkit run myapp.agents:support "…" --json             # the whole result, as JSON

Needs the `cli` extra (`pip install 'agentkit[cli]'`) for rich, which draws the
chat. See docs/cli.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

__all__ = ["main"]

T = TypeVar("T")

_EXIT_ERROR = 1
_EXIT_USAGE = 2
_EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `agentkit` command; the exit status.

    Args:
        argv: The arguments after the program name; default `sys.argv[1:]`.
    """
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return _EXIT_USAGE
    try:
        command: Callable[[argparse.Namespace], int] = args.run
        return command(args)
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return _EXIT_INTERRUPTED
    except Exception as exc:
        from agentkit import AgentKitError

        if not isinstance(exc, AgentKitError):
            raise
        # The message says what to do; a traceback through agentkit would not help.
        print(f"agentkit: error: {exc}", file=sys.stderr)
        return _EXIT_ERROR


def _parser() -> argparse.ArgumentParser:
    from agentkit._version import __version__

    parser = argparse.ArgumentParser(
        prog="agentkit", description="Chat with an agentkit agent, or ask it once."
    )
    parser.add_argument("--version", action="version", version=f"agentkit {__version__}")
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    chat = commands.add_parser(
        "chat",
        help="an interactive chat with an agent (or, without one, with the model)",
        description="An interactive chat: answers stream in as Markdown, each tool call "
        "is shown with its arguments and result. /reset, /save FILE, /load FILE, /exit; "
        "Ctrl-C cancels an answer, Ctrl-D quits.",
    )
    chat.add_argument(
        "agent",
        nargs="?",
        metavar="MODULE:AGENT",
        help="the agent: a module (dotted name or .py path) and the name of an Agent in it, "
        "or of a function returning one; without it, a plain chat with the model",
    )
    _add_endpoint_options(chat)
    chat.add_argument("--load", metavar="FILE", help="start from a conversation saved with /save")
    chat.set_defaults(command="chat", run=_chat_command)

    run = commands.add_parser(
        "run",
        help="one answer from an agent, printed to stdout",
        description="Run an agent once on a prompt and print its answer.",
    )
    run.add_argument("agent", metavar="MODULE:AGENT", help="the agent, as for `chat`")
    run.add_argument(
        "prompt", nargs="?", default="-", help="the prompt; '-' or none reads it from stdin"
    )
    run.add_argument(
        "--json",
        action="store_true",
        help="print the whole result as JSON: output, messages, usage, turns",
    )
    run.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="show each tool call and its result on stderr",
    )
    _add_endpoint_options(run)
    run.set_defaults(command="run", run=_run_command)
    return parser


def _add_endpoint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        help="the model to ask (default: the agent's; without an agent, $AGENTKIT_MODEL "
        "or gpt-4o-mini)",
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="the OpenAI-compatible API root, such as http://localhost:11434/v1 (default: "
        "the agent's client, else $OPENAI_BASE_URL, else api.openai.com); the key comes "
        "from $OPENAI_API_KEY",
    )


def _agent_for(args: argparse.Namespace) -> Any:
    """The agent the arguments name, with `--model` applied."""
    from agentkit import Agent

    if args.agent:
        from agentkit.cli._load import load_agent

        agent: Agent[Any, Any] = load_agent(args.agent)
    else:
        agent = Agent(os.environ.get("AGENTKIT_MODEL") or "gpt-4o-mini")
    if args.model:
        agent.model = args.model
    return agent


def _client_for(args: argparse.Namespace) -> Any:
    """For `--base-url`: the client the agent uses instead of its own (made now, so a
    bad URL or a missing key is reported before anything else happens)."""
    if not args.base_url:
        return None
    from agentkit import ChatClient

    return ChatClient(base_url=args.base_url)


async def _with_client(agent: Any, client: Any, run: Callable[[], Awaitable[T]]) -> T:
    """`run()`, with `client` (when there is one) given to the agent and closed after."""
    if client is None:
        return await run()
    agent.client = client
    async with client:
        return await run()


def _chat_command(args: argparse.Namespace) -> int:
    try:
        from rich.console import Console
    except ImportError:
        print(
            "agentkit: error: `agentkit chat` needs rich: pip install 'agentkit[cli]'",
            file=sys.stderr,
        )
        return _EXIT_ERROR
    from agentkit.cli._chat import HELP, ChatSession

    try:
        import readline  # noqa: F401  # line editing and history for the prompt
    except ImportError:  # pragma: no cover - Windows
        pass
    agent = _agent_for(args)
    client = _client_for(args)
    session = ChatSession(agent, Console(highlight=False))
    if args.load:
        from pathlib import Path

        from agentkit.cli._history import load_history

        session.messages = load_history(Path(args.load))
    from rich.markup import escape

    who = escape(args.agent or "no agent: a plain chat")
    session.console.print(f"[bold]agentkit chat[/] · model {escape(agent.model)} · {who}")
    session.console.print(f"[dim]{HELP}[/]")
    import anyio

    anyio.run(_with_client, agent, client, session.run)
    return 0


def _run_command(args: argparse.Namespace) -> int:
    # A piped prompt ends with a newline that is not part of it.
    prompt = sys.stdin.read().rstrip("\n") if args.prompt == "-" else args.prompt
    if not prompt.strip():
        print("agentkit: error: the prompt is empty", file=sys.stderr)
        return _EXIT_USAGE
    agent = _agent_for(args)
    client = _client_for(args)
    import anyio

    return anyio.run(_with_client, agent, client, lambda: _run_once(agent, prompt, args))


async def _run_once(agent: Any, prompt: str, args: argparse.Namespace) -> int:
    from pydantic_core import to_json

    from agentkit import Paused, ToolCallEnd

    def show_call(event: object) -> None:
        # Replaces the agent's own handler: stdout is for the answer only.
        if args.verbose and isinstance(event, ToolCallEnd):
            outcome = f"error: {event.error}" if event.error else event.result
            print(f"{event.tool_name}({event.arguments}) -> {outcome}", file=sys.stderr)

    result = await agent.run(prompt, event_handler=show_call)
    if isinstance(result, Paused):
        waiting = ", ".join(p.tool_name for p in result.pending)
        print(
            f"agentkit: error: the run paused for {waiting}, which need approval or an "
            "outside result; agentkit run cannot give them: use agentkit chat, which asks, "
            "or Agent.resume in code",
            file=sys.stderr,
        )
        return _EXIT_ERROR
    if args.json:
        whole = {
            "output": result.output,
            "messages": result.messages,
            "usage": result.usage,
            "turns": result.turns,
        }
        sys.stdout.write(to_json(whole, indent=2, exclude_none=True).decode() + "\n")
    elif isinstance(result.output, str):
        sys.stdout.write(result.output + "\n")
    else:
        sys.stdout.write(to_json(result.output).decode() + "\n")
    return 0
