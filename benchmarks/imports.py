"""Import time: what agentkit costs on top of its dependencies.

Three figures, each what `-X importtime` reports for the modules one statement
loads after another statement ran in the same interpreter (so both share the
machine's speed of the moment, which drifts by as much as 2x within seconds on
a shared machine):

- `import agentkit` after `import httpx, pydantic`: the issue's own measure.
  `import agentkit` loads almost nothing (names load on first use).
- `from agentkit import Agent, ChatClient, tool` after `import httpx, pydantic`:
  what a program using the agent loop pays. It includes pydantic's own model
  machinery, which bare `import pydantic` defers until a program's first
  model class or `TypeAdapter`, whoever makes it.
- The same after the dependencies in use (`httpx`, `anyio`, `docstring_parser`,
  and pydantic with `BaseModel`, `Field` and `TypeAdapter` loaded, as any
  program that declares a pydantic model with fields has them): agentkit's own cost.

Each is the median over fresh interpreters of the summed self times of those
modules (the time spent importing them). Every module loads from bytecode, as
from an installed wheel: the first run of each statement writes the `.pyc` files
that are missing, even where `PYTHONDONTWRITEBYTECODE` is set. Without them, a
source checkout of agentkit is compiled in every process while its dependencies
load bytecode, and agentkit's figures grow by its compile time (~30 ms). Each statement on its own is timed
too, in fresh interpreters, with the median wall time of the whole process
beside it. The offenders are the modules of the second figure, by self time.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from typing import Any

__all__ = ["STATEMENTS", "run_imports"]

BASELINE = "import httpx, pydantic"
DEPENDENCIES = (
    "import httpx, anyio, docstring_parser, pydantic; "
    "from pydantic import BaseModel, Field, TypeAdapter"
)
AGENTKIT = "from agentkit import Agent, ChatClient, tool"
STATEMENTS = {
    "python (nothing)": "pass",
    "httpx, pydantic (baseline)": BASELINE,
    "agentkit (module only)": "import agentkit",
    "agentkit": AGENTKIT,
    "dependencies in use": DEPENDENCIES,
    "openai": "import openai",
    "pydantic_ai": "import pydantic_ai",
    "agents (OpenAI Agents SDK)": "import agents",
}
ADDS = {
    "`import agentkit` after `import httpx, pydantic`": (BASELINE, "import agentkit"),
    f"`{AGENTKIT}` after `import httpx, pydantic`": (BASELINE, AGENTKIT),
    f"`{AGENTKIT}` after its dependencies in use": (DEPENDENCIES, AGENTKIT),
}
"""Each figure of what agentkit adds: (what runs first, the statement measured)."""

_ENV = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
"""The environment of every measured interpreter: one that writes and reads bytecode."""

_MARK = "-- the measured statement starts here --"
"""Written to stderr between the two statements: the report's lines after it are the
measured statement's modules."""


def _parse(stderr: str) -> list[tuple[str, int, int]]:
    """(module with its nesting as leading spaces, self µs, cumulative µs) per line."""
    rows = []
    if _MARK in stderr:
        stderr = stderr.split(_MARK, 1)[1]
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
        env=_ENV,
    )
    wall = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise ImportError(done.stderr.strip().splitlines()[-1])
    rows = _parse(done.stderr)
    return sum(r[1] for r in rows) / 1000, wall, rows


def _plain_wall(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=_ENV)
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
    adds: dict[str, Any] = {}
    rows_after_baseline: list[list[tuple[str, int]]] = []
    for figure, (before, statement) in ADDS.items():
        totals = []
        for _ in range(repeats):
            rows = _added(before, statement)
            totals.append(sum(self_us for _, self_us in rows) / 1000)
            if statement == AGENTKIT and before == BASELINE:
                rows_after_baseline.append(rows)
        adds[figure] = {"importtime_ms": statistics.median(totals), "samples": totals}
    results["agentkit adds"] = adds
    results["offenders"] = _offenders(rows_after_baseline)
    for figure, entry in adds.items():
        log(f"  import: {figure}: +{entry['importtime_ms']:.1f} ms")
    return results


def _added(before: str, statement: str) -> list[tuple[str, int]]:
    """The modules `statement` loads after `before`, in one fresh interpreter: (name, self µs)."""
    mark = f"import sys; sys.stderr.write({_MARK!r} + '\\n'); sys.stderr.flush()"
    _, _, rows = _importtime(f"{before}; {mark}; {statement}")
    return [(name.strip(), self_us) for name, self_us, _ in rows]


def _offenders(samples: list[list[tuple[str, int]]], top: int = 12) -> dict[str, Any]:
    """Modules and packages by median self time, over samples of the same statement."""
    per_module: dict[str, list[int]] = {}
    for rows in samples:
        for name, self_us in rows:
            per_module.setdefault(name, []).append(self_us)
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
