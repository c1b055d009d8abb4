"""Import time: what agentkit costs on top of `import httpx, pydantic`.

`import agentkit` alone loads almost nothing (names load on first use), so the
figure that counts is `from agentkit import Agent, ChatClient, tool`, what a
program using the agent loop pays.

Each statement runs in fresh interpreters (`python -X importtime -c ...`),
interleaved, several times; the figure is the median of the summed self
times that `-X importtime` reports (the time spent importing, without the
interpreter's own start-up), with the median wall time of the whole process
beside it. The offenders are the modules that `from agentkit import Agent,
ChatClient, tool` loads after `import httpx, pydantic`, by self time.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

__all__ = ["STATEMENTS", "run_imports"]

BASELINE = "import httpx, pydantic"
AGENTKIT = "from agentkit import Agent, ChatClient, tool"
STATEMENTS = {
    "python (nothing)": "pass",
    "httpx, pydantic (baseline)": BASELINE,
    "agentkit (module only)": "import agentkit",
    "agentkit": AGENTKIT,
    "openai": "import openai",
    "pydantic_ai": "import pydantic_ai",
    "agents (OpenAI Agents SDK)": "import agents",
}


def _parse(stderr: str) -> list[tuple[str, int, int]]:
    """(module with its nesting as leading spaces, self µs, cumulative µs) per line."""
    rows = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = line[len("import time:") :].split("|", 2)
        # One space follows the bar; more mark a module imported by the one below it.
        rows.append((name[1:].rstrip(), int(self_us), int(cumulative)))
    return rows


def _importtime(code: str) -> tuple[float, float, list[tuple[str, int, int]]]:
    """Summed self time (ms), process wall time (ms) and the rows, for one fresh process."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise ImportError(done.stderr.strip().splitlines()[-1])
    rows = _parse(done.stderr)
    return sum(r[1] for r in rows) / 1000, wall, rows


def _plain_wall(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return (time.perf_counter() - started) * 1000


def run_imports(repeats: int, log: Any = print) -> dict[str, Any]:
    """Median import times of each statement, and what agentkit adds over the baseline."""
    results: dict[str, Any] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    available = {}
    for label, code in STATEMENTS.items():
        try:
            _importtime(code)  # also writes any missing .pyc files
            available[label] = code
        except ImportError as exc:
            results[label] = {"statement": code, "error": str(exc)}
    for _ in range(repeats):
        for label, code in available.items():
            total, _, _ = _importtime(code)
            wall = _plain_wall(code)
            entry = samples.setdefault(label, {"importtime_ms": [], "wall_ms": []})
            entry["importtime_ms"].append(total)
            entry["wall_ms"].append(wall)
    for label, entry in samples.items():
        results[label] = {
            "statement": STATEMENTS[label],
            "importtime_ms": statistics.median(entry["importtime_ms"]),
            "wall_ms": statistics.median(entry["wall_ms"]),
            "samples": entry,
        }
    base = results.get("httpx, pydantic (baseline)", {})
    ours = results.get("agentkit", {})
    if "importtime_ms" in base and "importtime_ms" in ours:
        # Per repeat, the two statements ran one after the other: their difference is
        # taken pair by pair, since the machine's speed drifts between repeats.
        results["agentkit adds"] = {
            key: statistics.median(
                a - b for a, b in zip(ours["samples"][key], base["samples"][key], strict=True)
            )
            for key in ("importtime_ms", "wall_ms")
        }
    results["offenders"] = _offenders(repeats)
    log(
        "  import: agentkit adds "
        f"{results.get('agentkit adds', {}).get('importtime_ms', float('nan')):.1f} ms"
    )
    return results


def _offenders(repeats: int, top: int = 12) -> dict[str, Any]:
    """What `AGENTKIT` loads after the baseline: modules and packages by self time."""
    per_module: dict[str, list[int]] = {}
    for _ in range(max(repeats, 3)):
        _, _, rows = _importtime(BASELINE + "; " + AGENTKIT)
        # The baseline's own modules come first; its last top-level line is "pydantic".
        start = max(i for i, row in enumerate(rows) if row[0] == "pydantic") + 1
        for name, self_us, _ in rows[start:]:
            per_module.setdefault(name.strip(), []).append(self_us)
    medians = {name: statistics.median(v) / 1000 for name, v in per_module.items()}
    packages: dict[str, float] = {}
    for name, ms in medians.items():
        package = name.split(".")[0]
        packages[package] = packages.get(package, 0.0) + ms
    ranked = sorted(medians.items(), key=lambda item: -item[1])[:top]
    return {
        "total_ms": sum(medians.values()),
        "modules": [{"module": name, "self_ms": ms} for name, ms in ranked],
        "packages": [
            {"package": name, "self_ms": ms}
            for name, ms in sorted(packages.items(), key=lambda item: -item[1])[:top]
        ],
    }
