"""Concurrency and memory: many runs at once against the loopback server.

The parent starts the server (`benchmarks.server`, its own process) and, for
each round, each concurrency level and each contender in turn (the order
rotates every round), a fresh child process (`python -m benchmarks.load
--child ...`) that:

1. builds one pooled HTTP client (`max_connections` = `--pool`,
   `max_keepalive_connections` = `--keepalive`, by default the same; shared by
   every run, as a service would) and the contender on it.
   In front of the pool sits a FIFO gate of the same size (`GatedTransport`):
   httpcore 1.0's pool scans every queued request against every connection,
   and every connection against all the others, each time a request starts or
   ends, which is quadratic; 10,000 requests queued in it take hours rather
   than seconds. The gate keeps that queue empty, for every contender alike;
2. warms up with a few runs one after the other (imports, caches, one
   connection), then collects garbage and reads its RSS (the baseline); the
   measured batch opens the rest of the pool's connections itself;
3. resets the kernel's peak-RSS mark, starts N runs at once and waits for all;
4. reports wall time, CPU time, peak RSS and failures as one JSON line.

The parent reads the server's counters around each child: a run counts as
failed when it raised or returned the wrong text; the server counts requests
that broke the scenario, and the number of requests (exactly 2 per run when
nothing was retried).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import resource
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from benchmarks.contenders import CONTENDERS
from benchmarks.scenario import FINAL_TEXT

__all__ = ["loopback_server", "run_load"]

_WARMUP = 10


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's high-water mark of this process's RSS (Linux)."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


class GatedTransport:
    """A transport that lets at most `limit` requests into the pool at once, first come
    first served; a request holds its place until its response is closed."""

    def __init__(self, inner: Any, limit: int, http_module: Any) -> None:
        self._inner = inner
        self._gate = asyncio.Semaphore(limit)
        self._http = http_module
        # The client checks that a response's stream is its own AsyncByteStream.
        self._stream_type = type("ReleasingStream", (_Releasing, http_module.AsyncByteStream), {})

    async def handle_async_request(self, request: Any) -> Any:
        await self._gate.acquire()
        try:
            response = await self._inner.handle_async_request(request)
        except BaseException:
            self._gate.release()
            raise
        return self._http.Response(
            response.status_code,
            headers=response.headers,
            stream=self._stream_type(response.stream, self._gate),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> GatedTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Releasing:
    def __init__(self, stream: Any, gate: asyncio.Semaphore) -> None:
        self._stream = stream
        self._gate: asyncio.Semaphore | None = gate

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            gate, self._gate = self._gate, None
            if gate is not None:
                gate.release()


def pooled_client(
    http_module: Any, pool: int, *, keepalive: int | None = None, gate: bool = True
) -> Any:
    """The HTTP client every run of a child shares."""
    limits = http_module.Limits(
        max_connections=pool,
        max_keepalive_connections=pool if keepalive is None else keepalive,
    )
    transport = http_module.AsyncHTTPTransport(limits=limits)
    return http_module.AsyncClient(
        transport=GatedTransport(transport, pool, http_module) if gate else transport,
        timeout=http_module.Timeout(120.0),
    )


async def _child(
    contender: str, concurrency: int, base_url: str, pool: int, keepalive: int, gate: bool
) -> dict[str, Any]:
    spec = CONTENDERS[contender]
    http = pooled_client(spec.http_module(), pool, keepalive=keepalive, gate=gate)
    run = spec.make(http, base_url, False)
    errors: dict[str, int] = {}

    async def one() -> bool:
        try:
            ok = await run() == FINAL_TEXT
        except Exception as exc:
            key = f"{type(exc).__name__}: {exc}"[:200]
            errors[key] = errors.get(key, 0) + 1
            return False
        return ok

    warm = [await one() for _ in range(_WARMUP)]
    gc.collect()
    baseline = _rss_kib("VmRSS") or 0
    peak_reset = _reset_peak()
    cpu, started = time.process_time(), time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu
    peak = _rss_kib("VmHWM") if peak_reset else None
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    await http.aclose()
    return {
        "contender": contender,
        "concurrency": concurrency,
        "pool": pool,
        "keepalive": keepalive,
        "gate": gate,
        "wall_s": wall,
        "cpu_s": cpu,
        "runs_per_s": concurrency / wall,
        "baseline_rss_kib": baseline,
        "peak_rss_kib": peak,
        "peak_is_reset": peak_reset,
        "client_failures": results.count(False),
        "warmup_failures": warm.count(False),
        "errors": errors,
    }


# --- the parent -----------------------------------------------------------------------


@contextmanager
def loopback_server(delay: float) -> Iterator[str]:
    """Start the server process; yield its base URL; stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server", "--delay", str(delay)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=_root(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the benchmark server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def _root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _server_call(url: str, method: str) -> dict[str, Any]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def _one_child(
    server: str,
    contender: str,
    concurrency: int,
    pool: tuple[int, int],
    gate: bool,
    timeout: float,
) -> dict[str, Any]:
    where = {
        "contender": contender,
        "concurrency": concurrency,
        "pool": pool[0],
        "keepalive": pool[1],
    }
    _server_call(server + "/reset", "POST")
    command = [
        sys.executable,
        "-m",
        "benchmarks.load",
        "--child",
        contender,
        "--concurrency",
        str(concurrency),
        "--url",
        server + "/v1",
        "--pool",
        str(pool[0]),
        "--keepalive",
        str(pool[1]),
        *([] if gate else ["--no-gate"]),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, cwd=_root(), check=False
        )
    except subprocess.TimeoutExpired:
        return {**where, "error": "timed out"}
    stats = _server_call(server + "/stats", "GET")
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        return {**where, "error": tail[0][:300]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    warm = _WARMUP
    result["server_requests"] = stats["requests"]
    result["server_failures"] = stats["failures"]
    result["server_reasons"] = stats["reasons"]
    result["requests_per_run"] = stats["requests"] / (concurrency + warm)
    result["failures"] = result["client_failures"] + result["warmup_failures"] + stats["failures"]
    return result


def run_load(
    contenders: list[str],
    levels: list[int],
    *,
    rounds: int,
    pools: list[tuple[int, int]],
    delay: float,
    gate: bool = True,
    timeout: float = 900.0,
    log: Any = print,
) -> dict[str, Any]:
    """Every contender at every level and pool size, `rounds` times, interleaved; the
    raw results. A pool is (max_connections, max_keepalive_connections)."""
    samples: list[dict[str, Any]] = []
    with loopback_server(delay) as server:
        for level in levels:
            for r in range(rounds):
                order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
                for pool in pools:
                    for name in order:
                        result = _one_child(server, name, level, pool, gate, timeout)
                        result["round"] = r
                        samples.append(result)
                        where = f"{name} N={level} pool={_pool_label(pool)} round {r + 1}"
                        if "error" in result:
                            log(f"  load {where}: ERROR {result['error']}")
                        else:
                            log(
                                f"  load {where}: {result['wall_s']:.2f} s, "
                                f"peak {result['peak_rss_kib'] / 1024:.0f} MiB, "
                                f"{result['failures']} failures"
                            )
    return {
        "pools": [list(pool) for pool in pools],
        "gate": gate,
        "delay_s": delay,
        "rounds": rounds,
        "samples": samples,
    }


def _pool_label(pool: tuple[int, int]) -> str:
    return str(pool[0]) if pool[0] == pool[1] else f"{pool[0]}/{pool[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description="one batch of concurrent runs (internal)")
    parser.add_argument("--child", required=True, choices=sorted(CONTENDERS))
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--pool", type=int, required=True)
    parser.add_argument("--keepalive", type=int, help="max keep-alive connections (--pool)")
    parser.add_argument("--no-gate", dest="gate", action="store_false")
    args = parser.parse_args()
    keepalive = args.pool if args.keepalive is None else args.keepalive
    result = asyncio.run(
        _child(args.child, args.concurrency, args.url, args.pool, keepalive, args.gate)
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
