"""`python -m benchmarks.instructions CONTENDER N`: a contender's runs, for callgrind.

Runs the in-process scenario (`MockTransport`, the fake model) 20 times to warm up,
then N times, and nothing else: under callgrind, the instructions of N runs are the
difference between the counts for N and for 0, which do not drift with the machine
as time does (kernel work, such as waking a thread, is not counted)::

    for n in 0 200; do
        PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
            python -m benchmarks.instructions agentkit-sync-tool $n 2>&1 | grep Collected
    done

`--anyio-hand-off` sends agentkit's sync tool calls through `anyio.to_thread.run_sync`
on asyncio too (as before agentkit had worker threads of its own), to compare.
"""

from __future__ import annotations

import argparse
import asyncio

from benchmarks.contenders import CONTENDERS
from benchmarks.scenario import FINAL_TEXT, FakeModel, mock_transport


def _anyio_hand_off() -> None:
    import agentkit._tools.threads as threads

    made = threads._Stuck.__init__

    def without_own_workers(self: threads._Stuck) -> None:
        made(self)
        self.loop = None  # what trio gets: anyio.to_thread.run_sync

    threads._Stuck.__init__ = without_own_workers  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contender", choices=sorted(CONTENDERS))
    parser.add_argument("runs", type=int)
    parser.add_argument("--anyio-hand-off", action="store_true")
    args = parser.parse_args()
    if args.anyio_hand_off:
        _anyio_hand_off()
    spec = CONTENDERS[args.contender]
    http_module = spec.http_module()
    model = FakeModel()
    http = http_module.AsyncClient(transport=mock_transport(model, http_module))
    run = spec.make(http, "http://model.invalid/v1", False)

    async def runs() -> None:
        for _ in range(20 + args.runs):
            if await run() != FINAL_TEXT:
                raise SystemExit(f"wrong answer from {args.contender}")

    asyncio.run(runs())
    if model.failures:
        raise SystemExit(f"{args.contender}: {model.failures} requests broke the scenario")


if __name__ == "__main__":
    main()
