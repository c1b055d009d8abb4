"""`python -m agentkit.durable.temporal worker MODULE:AGENTS`: a Temporal worker for
the durable agents a module makes.

MODULE is imported (it makes the `TemporalEngine` and the `DurableAgent`s); AGENTS
names one of its attributes: a `DurableAgent`, or a list of them on one engine.
The worker polls the engine's task queue until SIGINT or SIGTERM, then stops
taking tasks and waits for those it runs (at most `--grace` seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

__all__ = ["main"]


def _agents(target: str) -> list[Any]:
    from agentkit.durable.agent import DurableAgent

    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"expected MODULE:AGENTS (such as myapp.agents:support), got {target!r}")
    sys.path.insert(0, "")  # the working directory, as `python -m` has it for the module
    module = importlib.import_module(module_name)
    try:
        found = getattr(module, attribute)
    except AttributeError:
        raise SystemExit(f"module {module_name!r} has no attribute {attribute!r}") from None
    agents = list(found) if isinstance(found, (list, tuple)) else [found]
    wrong = [type(a).__name__ for a in agents if not isinstance(a, DurableAgent)]
    if wrong or not agents:
        raise SystemExit(
            f"{target} must be a DurableAgent or a list of them; it holds {wrong or 'nothing'}"
        )
    return agents


async def _serve(agents: list[Any], args: argparse.Namespace) -> None:
    from agentkit.durable.temporal.engine import TemporalEngine

    engines = {id(a.engine): a.engine for a in agents}
    if len(engines) != 1 or not isinstance(agents[0].engine, TemporalEngine):
        raise SystemExit("the agents must all be on one TemporalEngine")
    engine: TemporalEngine = agents[0].engine
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    options: dict[str, Any] = {"graceful_shutdown_timeout": timedelta(seconds=args.grace)}
    async with engine.worker(
        task_queue=args.task_queue,
        max_concurrent_activities=args.max_activities,
        **options,
    ):
        names = ", ".join(a.name for a in agents)
        logging.getLogger("agentkit.durable").warning(
            "worker of task queue %r for %s: running", args.task_queue or engine.task_queue, names
        )
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: `worker MODULE:AGENTS [--task-queue Q] [--max-activities N]`."""
    parser = argparse.ArgumentParser(prog="python -m agentkit.durable.temporal")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run a worker for a module's durable agents")
    worker.add_argument("target", metavar="MODULE:AGENTS")
    worker.add_argument("--task-queue", default=None, help="the engine's queue by default")
    worker.add_argument("--max-activities", type=int, default=None, help="steps at a time")
    worker.add_argument("--grace", type=float, default=30.0, help="seconds to finish on stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(_agents(args.target), args))
    # The worker has stopped cleanly. Tearing down the interpreter with Temporal's
    # native runtime still loaded crashes it now and then (SIGSEGV at exit), which a
    # supervisor would take for a failure: leave without that teardown.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
