"""In-process overhead: CPU time of one full run over `MockTransport`, no network.

Every contender gets its own `FakeModel` behind an in-process transport
(`httpx.MockTransport`, or `httpx2`'s for the peers) and is warmed up. Then,
for each round, each contender in turn (the order rotates every round) does
`runs` runs one after the other, and the CPU time of the batch
(`time.process_time`, so worker threads count too) divided by `runs` is one
sample. The figure is the median over rounds; the ratio is that median over
the floor's, measured in the same process and rounds. The fake model's own
work (parsing each request, building each response) is inside every figure,
the floor's included, so "µs over the floor" is the framework's own cost.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from typing import Any

from benchmarks.contenders import CONTENDERS, RunFn
from benchmarks.scenario import FINAL_TEXT, FakeModel, mock_transport

__all__ = ["run_inproc"]

_BASE_URL = "http://model.invalid/v1"


async def _prepare(names: list[str], stream: bool, warmup: int) -> dict[str, Any]:
    prepared: dict[str, Any] = {}
    for name in names:
        spec = CONTENDERS[name]
        model = FakeModel()
        http_module = spec.http_module()
        http = http_module.AsyncClient(transport=mock_transport(model, http_module))
        try:
            run = spec.make(http, _BASE_URL, stream)
            for _ in range(warmup):
                if await run() != FINAL_TEXT:
                    raise RuntimeError(f"wrong answer from {name}")
        except Exception as exc:
            prepared[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        prepared[name] = {"run": run, "model": model, "cpu_us": [], "wall_us": [], "failures": 0}
    return prepared


async def _batch(run: RunFn, runs: int) -> tuple[float, float, int]:
    failures = 0
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(runs):
        try:
            if await run() != FINAL_TEXT:
                failures += 1
        except Exception:
            failures += 1
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    return cpu / runs * 1e6, wall / runs * 1e6, failures


async def _measure(
    names: list[str], stream: bool, runs: int, rounds: int, warmup: int
) -> dict[str, Any]:
    prepared = await _prepare(names, stream, warmup)
    ready = [name for name in names if "run" in prepared[name]]
    for r in range(rounds):
        shift = r % max(len(ready), 1)
        for name in ready[shift:] + ready[:shift]:
            entry = prepared[name]
            cpu, wall, failures = await _batch(entry["run"], runs)
            entry["cpu_us"].append(cpu)
            entry["wall_us"].append(wall)
            entry["failures"] += failures
    results: dict[str, Any] = {}
    for name in names:
        entry = prepared[name]
        if "error" in entry:
            results[name] = {"error": entry["error"]}
            continue
        results[name] = {
            "cpu_us": statistics.median(entry["cpu_us"]),
            "wall_us": statistics.median(entry["wall_us"]),
            "cpu_us_samples": entry["cpu_us"],
            "failures": entry["failures"] + entry["model"].failures,
            "requests": entry["model"].requests,
        }
    floor = results.get("floor", {}).get("cpu_us")
    for result in results.values():
        if floor and "cpu_us" in result:
            result["ratio"] = result["cpu_us"] / floor
            result["over_floor_us"] = result["cpu_us"] - floor
            # The same ratio round by round, to show how much the noise moves it.
            per_round = [
                a / b
                for a, b in zip(
                    result["cpu_us_samples"], results["floor"]["cpu_us_samples"], strict=True
                )
            ]
            result["ratio_range"] = [min(per_round), max(per_round)]
    return results


def run_inproc(
    names: list[str],
    *,
    stream: bool,
    runs: int,
    rounds: int,
    warmup: int = 20,
    log: Any = print,
) -> dict[str, Any]:
    """Median CPU µs per run of each contender, and its ratio to the floor."""
    results = asyncio.run(_measure(names, stream, runs, rounds, warmup))
    form = "streamed" if stream else "plain"
    for name, result in results.items():
        if "error" in result:
            log(f"  in-process {form} {name}: ERROR {result['error']}")
        else:
            log(
                f"  in-process {form} {name}: {result['cpu_us']:.0f} µs/run, "
                f"{result.get('ratio', float('nan')):.2f}x floor, {result['failures']} failures"
            )
    return {"runs": runs, "rounds": rounds, "stream": stream, "results": results}
