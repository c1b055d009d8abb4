"""Results as a Markdown page, from the JSON that a run writes."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.contenders import CONTENDERS

__all__ = ["markdown"]


def _label(name: str) -> str:
    spec = CONTENDERS.get(name)
    return spec.label if spec else name


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _inproc(plain: dict[str, Any] | None, streamed: dict[str, Any] | None) -> list[str]:
    lines = [
        "| contender | CPU µs/run | x floor | µs over floor | streamed µs/run | x floor | failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = list((plain or streamed or {}).get("results", {}))
    for name in names:
        row = [_label(name)]
        failures = 0
        for part in (plain, streamed):
            result = (part or {}).get("results", {}).get(name)
            if result is None:
                row += ["-", "-"] if part is streamed else ["-", "-", "-"]
                continue
            if "error" in result:
                row += [f"did not run: {result['error']}", "-"]
                row += [] if part is streamed else ["-"]
                continue
            row += [f"{result['cpu_us']:.0f}", _ratio(result.get("ratio"))]
            if part is plain:
                row.append(f"{result.get('over_floor_us', 0):+.0f}")
            failures += result["failures"]
        row.append(str(failures))
        lines.append("| " + " | ".join(row) + " |")
    return lines


def _load(load: dict[str, Any]) -> list[str]:
    lines = [
        "| contender | runs at once | wall s | x floor | runs/s | CPU s | peak RSS MiB | "
        "RSS KiB/run | requests/run | failures |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    errors: dict[tuple[int, str], str] = {}
    for sample in load["samples"]:
        key = (sample["concurrency"], sample["contender"])
        if "error" in sample:
            errors[key] = sample["error"]
        else:
            groups.setdefault(key, []).append(sample)
    levels = sorted({key[0] for key in [*groups, *errors]})
    order = list(dict.fromkeys(s["contender"] for s in load["samples"]))
    for level in levels:
        floor = groups.get((level, "floor"))
        floor_wall = statistics.median(s["wall_s"] for s in floor) if floor else None
        for name in order:
            samples = groups.get((level, name))
            if not samples:
                if (level, name) in errors:
                    lines.append(
                        f"| {_label(name)} | {level:,} | did not finish: "
                        f"{errors[(level, name)]} | | | | | | | |"
                    )
                continue
            wall = statistics.median(s["wall_s"] for s in samples)
            cpu = statistics.median(s["cpu_s"] for s in samples)
            peak = statistics.median(s["peak_rss_kib"] for s in samples)
            grown = statistics.median(s["peak_rss_kib"] - s["baseline_rss_kib"] for s in samples)
            per_run = statistics.median(s["requests_per_run"] for s in samples)
            failures = sum(s["failures"] for s in samples)
            ratio = wall / floor_wall if floor_wall else None
            lines.append(
                f"| {_label(name)} | {level:,} | {wall:.2f} | {_ratio(ratio)} | "
                f"{level / wall:,.0f} | {cpu:.1f} | {peak / 1024:.0f} | {grown / level:.1f} | "
                f"{per_run:.2f} | {failures} |"
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
    adds = imports.get("agentkit adds")
    if adds:
        lines.append(
            f"| **`import agentkit` adds** | **{adds['importtime_ms']:.1f}** | "
            f"**{adds['wall_ms']:.0f}** |"
        )
    offenders = imports.get("offenders")
    if offenders:
        lines += [
            "",
            f"What `import agentkit` loads after `import httpx, pydantic` "
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
            f"rounds of {some['runs']} runs.",
            "",
            *_inproc(plain, streamed),
        ]
    if data.get("load"):
        load = data["load"]
        out += [
            "",
            f"## Concurrency and memory (loopback server, {load['delay_s'] * 1000:.0f} ms per answer)",
            "",
            f"One shared client per process: pool of {load['pool']} connections "
            f"(max_connections = max_keepalive_connections = {load['pool']})"
            + (", behind a FIFO gate of the same size" if load.get("gate") else "")
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
