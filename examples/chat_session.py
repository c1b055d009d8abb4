"""A chat that remembers: each call continues the conversation stored in SQLite.

    python examples/chat_session.py "My name is Ada."
    python examples/chat_session.py "What is my name?"
    python examples/chat_session.py --undo        # forget the last turn
    python examples/chat_session.py --forget      # forget everything

The conversation is kept in `chat_sessions.db` (or `--db`), under `--session`
(default "default"); the last 20 messages are sent (`Trim`). With
`OPENAI_API_KEY` or `OPENAI_BASE_URL` set it asks that endpoint (model from
`AGENTKIT_MODEL`, default gpt-4o-mini); with neither, it runs offline on a stand-in
model that repeats what it remembers, and says so on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

import anyio

from agentkit import Agent
from agentkit.sessions import SQLiteSession, Trim
from agentkit.testing import FunctionModel, ModelRequest, Reply


def offline(request: ModelRequest) -> Reply:
    said = [str(m.content) for m in request.messages if m.role == "user"]
    if len(said) == 1:
        return f"Noted: {said[0]!r}. This is the first thing you told me."
    return f"Noted: {said[-1]!r}. Before that you said: " + "; ".join(repr(s) for s in said[:-1])


def build_agent() -> Agent[str]:
    instructions = "You are a helpful assistant. Answer in one or two sentences."
    if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
        return Agent(os.environ.get("AGENTKIT_MODEL", "gpt-4o-mini"), instructions=instructions)
    print(
        "(offline: no OPENAI_API_KEY or OPENAI_BASE_URL; a stand-in model answers)", file=sys.stderr
    )
    return Agent("offline", client=FunctionModel(offline), instructions=instructions)


async def main(args: argparse.Namespace) -> None:
    session = SQLiteSession(args.session, args.db, trim=Trim(max_messages=20))
    if args.forget:
        await session.clear()
        print("Forgotten.")
        return
    if args.undo:
        removed = await session.pop_turn()
        print(f"Removed the last turn ({len(removed)} messages).")
        return
    if not args.prompt:
        raise SystemExit("say something, or pass --undo or --forget")
    result = await build_agent().run(args.prompt, session=session)
    print(result.output)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="A chat that remembers, in SQLite.")
    parser.add_argument("prompt", nargs="?")
    parser.add_argument("--session", default="default")
    parser.add_argument("--db", default="chat_sessions.db")
    parser.add_argument("--undo", action="store_true", help="forget the last turn")
    parser.add_argument("--forget", action="store_true", help="forget the conversation")
    anyio.run(main, parser.parse_args())
