"""Results as a Markdown page, from the JSON that a run writes."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.contenders import CONTENDERS

__all__ = ["markdown"]


def _label(name: str) -> str:
    spec = CONTENDERS.get(name)
    return spec.label if spec else name


def _stack_floor(name: str) -> str:
    """The hand-written loop on the same HTTP stack as `name`."""
    spec = CONTENDERS.get(name)
    return "floor-httpx2" if spec is not None and spec.http == "httpx2" else "floor"


def _fair_floor(name: str) -> str | None:
    """For a sync tool run in worker threads, the fair floor on its stack: the
    hand-written loop that runs a turn's calls concurrently, each in `asyncio.to_thread`."""
    spec = CONTENDERS.get(name)
    if spec is None or not spec.sync_tool:
        return None
    fair = "floor-httpx2-threads" if spec.http == "httpx2" else "floor-threads"
    return None if name == fair else fair


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _inproc(plain: dict[str, Any] | None, streamed: dict[str, Any] | None) -> list[str]:
    lines = [
        "| contender | CPU µs/run | x floor | µs over floor | x same-stack floor "
        "| x fair floor | streamed µs/run | x floor | x same-stack floor | x fair floor "
        "| failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = list((plain or streamed or {}).get("results", {}))
    for name in names:
        row = [_label(name)]
        failures = 0
        for part in (plain, streamed):
            results = (part or {}).get("results", {})
            result = results.get(name)
            if result is None:
                row += ["-"] * (4 if part is streamed else 5)
                continue
            if "error" in result:
                row += [f"did not run: {result['error']}", "-", "-", "-"]
                row += [] if part is streamed else ["-"]
                continue
            row += [f"{result['cpu_us']:.0f}", _ratio(result.get("ratio"))]
            if part is plain:
                row.append(f"{result.get('over_floor_us', 0):+.0f}")
            if result.get("paired_with") == _stack_floor(name):
                row.append(_ratio(result.get("same_stack_ratio")))  # measured beside it
            else:  # through the two ratios to the httpx floor
                same = results.get(_stack_floor(name), {}).get("ratio")
                ratio = result.get("ratio")
                row.append(_ratio(ratio / same if ratio and same else None))
            fair = _fair_floor(name)
            if fair is not None and result.get("paired_with") == fair:
                row.append(_ratio(result.get("same_stack_ratio")))  # measured beside it
            elif fair is not None and results.get(fair, {}).get("ratio"):
                row.append(_ratio(result["ratio"] / results[fair]["ratio"]))
            else:
                row.append("-")
            failures += result["failures"]
        row.append(str(failures))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _pool_label(sample: dict[str, Any]) -> str:
    pool = sample.get("pool", "?")
    keep = sample.get("keepalive", pool)
    return f"{pool:,}" if keep == pool else f"{pool:,} (keep {keep:,})"


def _load(load: dict[str, Any]) -> list[str]:
    lines = [
        "| contender | runs at once | pool | wall s | x floor | x same-stack floor "
        "| x fair floor | runs/s | CPU s | peak RSS MiB | RSS KiB/run | requests/run | failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    groups: dict[tuple[int, str, str], list[dict[str, Any]]] = {}
    errors: dict[tuple[int, str, str], str] = {}
    for sample in load["samples"]:
        key = (sample["concurrency"], _pool_label(sample), sample["contender"])
        if "error" in sample:
            errors[key] = sample["error"]
        else:
            groups.setdefault(key, []).append(sample)
    # Levels in increasing order; pools in the order they ran.
    cells = sorted(
        dict.fromkeys((s["concurrency"], _pool_label(s)) for s in load["samples"]),
        key=lambda cell: cell[0],
    )
    order = list(dict.fromkeys(s["contender"] for s in load["samples"]))

    def median_wall(key: tuple[int, str, str]) -> float | None:
        samples = groups.get(key)
        return statistics.median(s["wall_s"] for s in samples) if samples else None

    for level, pool in cells:
        floor_wall = median_wall((level, pool, "floor"))
        for name in order:
            samples = groups.get((level, pool, name))
            if not samples:
                if (level, pool, name) in errors:
                    lines.append(
                        f"| {_label(name)} | {level:,} | {pool} | did not finish: "
                        f"{errors[(level, pool, name)]} | | | | | | | | | |"
                    )
                continue
            wall = statistics.median(s["wall_s"] for s in samples)
            cpu = statistics.median(s["cpu_s"] for s in samples)
            peak = statistics.median(s["peak_rss_kib"] for s in samples)
            grown = statistics.median(s["peak_rss_kib"] - s["baseline_rss_kib"] for s in samples)
            per_run = statistics.median(s["requests_per_run"] for s in samples)
            failures = sum(s["failures"] for s in samples)
            ratio = wall / floor_wall if floor_wall else None
            same_wall = median_wall((level, pool, _stack_floor(name)))
            same = wall / same_wall if same_wall else None
            fair = _fair_floor(name)
            fair_wall = median_wall((level, pool, fair)) if fair else None
            lines.append(
                f"| {_label(name)} | {level:,} | {pool} | {wall:.2f} | {_ratio(ratio)} | "
                f"{_ratio(same)} | {_ratio(wall / fair_wall if fair_wall else None)} | "
                f"{level / wall:,.0f} | {cpu:.1f} | {peak / 1024:.0f} | "
                f"{grown / level:.1f} | {per_run:.2f} | {failures} |"
            )
    return lines


def _imports(imports: dict[str, Any]) -> list[str]:
    lines = [
        "| statement | -X importtime ms | process wall ms |",
        "| --- | ---: | ---: |",
    ]
    for label, entry in imports.items():
        if label in ("offenders", "agentkit adds"):
            continue
        if "error" in entry:
            lines.append(f"| `{entry['statement']}` | not installed | |")
            continue
        lines.append(
            f"| `{entry['statement']}` | {entry['importtime_ms']:.1f} | {entry['wall_ms']:.0f} |"
        )
    lines += [
        "",
        "| what agentkit adds (self time of the modules it loads, same interpreter) | ms |",
        "| --- | ---: |",
    ]
    for figure, adds in (imports.get("agentkit adds") or {}).items():
        lines.append(f"| {figure} | **{adds['importtime_ms']:.1f}** |")
    offenders = imports.get("offenders")
    if offenders:
        lines += [
            "",
            "What `from agentkit import Agent, ChatClient, tool` loads after "
            "`import httpx, pydantic` "
            f"({offenders['total_ms']:.0f} ms of self time), by package: "
            + ", ".join(f"{p['package']} {p['self_ms']:.0f} ms" for p in offenders["packages"][:6])
            + ". Top modules: "
            + ", ".join(f"`{m['module']}` {m['self_ms']:.1f} ms" for m in offenders["modules"][:8])
            + ".",
        ]
    return lines


def markdown(data: dict[str, Any]) -> str:
    env = data["environment"]
    out = [
        "# agentkit benchmarks",
        "",
        f"`{data['command']}` on {env['date']}: Python {env['python']}, {env['cpus']} CPUs, "
        + ", ".join(f"{k} {v}" for k, v in env["versions"].items())
        + ".",
        "",
        "One scenario everywhere: a user message; the model asks for two parallel "
        "`get_current_time` calls (Tokyo, Paris); after the two tool messages it answers "
        'with `finish_reason: "stop"`. Medians over interleaved rounds; every ratio is '
        "to the hand-written floor (httpx + json) measured in the same run.",
    ]
    plain, streamed = data.get("inproc"), data.get("inproc_stream")
    if plain or streamed:
        some = plain or streamed or {}
        out += [
            "",
            "## In-process overhead (MockTransport, no network)",
            "",
            f"CPU time per full run (2 requests, 2 tool calls); median of {some['rounds']} "
            f"rounds of {some['runs']} runs. Each batch is paired with a batch of the floor on "
            "its own HTTP stack taken beside it (the httpx2 floor's with the httpx floor), "
            "and `x same-stack floor` is the median of those paired ratios; `x floor` goes "
            "through the httpx2 floor's ratio for an httpx2 contender (the machine's speed "
            "drifts too much for separate medians to compare). A contender whose sync tool "
            "runs in worker threads is paired instead with the fair floor on its stack (the "
            "hand-written loop that runs a turn's calls concurrently, each in "
            "`asyncio.to_thread`), itself paired with the plain floor: `x fair floor` is "
            "that ratio, the one to judge a thread hand-off by.",
            "",
            *_inproc(plain, streamed),
        ]
    if data.get("load"):
        load = data["load"]
        out += [
            "",
            f"## Concurrency and memory (loopback server, {load['delay_s'] * 1000:.0f} ms per answer)",
            "",
            "One shared client per process; pool: max_connections (and "
            "max_keepalive_connections, when it differs)"
            + (
                ", behind a FIFO gate of max_connections"
                if load.get("gate")
                else ", no gate: requests beyond the pool wait in the HTTP library's own queue"
            )
            + f"; median of {load['rounds']} round(s). RSS KiB/run: peak RSS during the batch "
            "less the RSS before it, per concurrent run. Failures: runs that raised or "
            "answered wrongly, plus requests the server found broken.",
            "",
            *_load(load),
        ]
    if data.get("imports"):
        out += ["", "## Import time", "", *_imports(data["imports"])]
    if data.get("tools"):
        out += ["", "## Tools (`benchmarks/bench_tools.py`)", "", "```", data["tools"], "```"]
    if data.get("notes"):
        out += ["", "## Notes", ""] + [f"- {note}" for note in data["notes"]]
    return "\n".join(out) + "\n"
