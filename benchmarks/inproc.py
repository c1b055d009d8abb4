"""In-process overhead: CPU time of one full run over `MockTransport`, no network.

Every contender gets its own `FakeModel` behind an in-process transport
(`httpx.MockTransport`, or `httpx2`'s for the peers) and is warmed up. A batch
is `runs` runs one after the other; its CPU time (`time.process_time`, so
worker threads count too) divided by `runs` is one sample.

This machine is shared, and its speed drifts by as much as 2x within seconds,
so samples taken apart cannot be compared. Each round therefore pairs every
contender's batch with a batch of the floor on the same HTTP stack taken right
beside it (before it in one round, after it in the next); the ratio to that
floor is the median over rounds of those paired ratios. The httpx2 floor is
paired with the httpx floor, and an httpx2 contender's ratio to the httpx floor
is the product of the two. The CPU figures are medians of the samples. The
fake model's own work (parsing each request, building each response) is inside
every figure, the floor's included, so "µs over the floor" is the framework's
own cost.
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
    floor = prepared.get("floor") if "floor" in ready else None
    others = [name for name in ready if name != "floor"]
    for r in range(rounds):
        shift = r % max(len(others), 1)
        for name in others[shift:] + others[:shift] if floor is not None else ready:
            entry = prepared[name]
            if floor is None:
                cpu, wall, failures = await _batch(entry["run"], runs)
            else:
                # The floor on the same HTTP stack runs beside each batch: before it in
                # even rounds, after it in odd ones. The httpx2 floor itself, and anything
                # whose stack has no floor here, is paired with the httpx floor.
                own = _stack_floor(name, ready)
                beside = prepared[own]
                pair = [beside, entry] if r % 2 == 0 else [entry, beside]
                samples = [await _batch(item["run"], runs) for item in pair]
                if r % 2:
                    samples.reverse()
                (f_cpu, f_wall, f_failures), (cpu, wall, failures) = samples
                beside["cpu_us"].append(f_cpu)
                beside["wall_us"].append(f_wall)
                beside["failures"] += f_failures
                entry.setdefault("paired", []).append(cpu / f_cpu)
                entry["paired_with"] = own
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
        if "paired" in entry:
            paired = entry["paired"]
            results[name]["paired_with"] = entry["paired_with"]
            results[name]["same_stack_ratio"] = statistics.median(paired)
            results[name]["ratio_samples"] = paired
            results[name]["ratio_range"] = [min(paired), max(paired)]
    if "floor" in results and "cpu_us" in results["floor"]:
        floor_cpu = results["floor"]["cpu_us"]
        results["floor"]["ratio"] = 1.0
        results["floor"]["same_stack_ratio"] = 1.0
        for result in results.values():
            if "same_stack_ratio" not in result or "ratio" in result:
                continue
            # The ratio to the httpx floor: the product of the paired ratios along the
            # chain of floors (a fair floor -> its stack's floor -> the httpx floor).
            ratio, seen = result["same_stack_ratio"], result
            while seen.get("paired_with", "floor") != "floor":
                seen = results.get(seen["paired_with"], {})
                ratio *= seen.get("same_stack_ratio", 1.0)
            result["ratio"] = ratio
            result["over_floor_us"] = (ratio - 1) * floor_cpu
    return results


def _stack_floor(name: str, ready: list[str]) -> str:
    """The floor a contender's batches are paired with: the one on its own HTTP stack;
    for a sync tool in worker threads, the fair floor on that stack (the hand-written
    loop with its calls in `asyncio.to_thread`), itself paired with the plain floor."""
    spec = CONTENDERS[name]
    httpx2 = spec.http == "httpx2"
    fair = "floor-httpx2-threads" if httpx2 else "floor-threads"
    if spec.sync_tool and name != fair and fair in ready:
        return fair
    if name != "floor-httpx2" and httpx2 and "floor-httpx2" in ready:
        return "floor-httpx2"
    return "floor"


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
                f"{result.get('ratio', float('nan')):.2f}x floor, "
                f"{result.get('same_stack_ratio', float('nan')):.2f}x beside "
                f"{result.get('paired_with', 'itself')}, {result['failures']} failures"
            )
    return {"runs": runs, "rounds": rounds, "stream": stream, "results": results}
