"""`python -m benchmarks`: run the benchmarks, write results/latest.{md,json}, print the table.

Examples:
    python -m benchmarks                      # everything, full size
    python -m benchmarks --quick              # everything, small and fast
    python -m benchmarks --parts inproc,imports --runs 300 --rounds 9
    python -m benchmarks --parts load --concurrency 1000,10000 --pool 128
    python -m benchmarks --parts inproc,load --concurrency 1000 --pool 100,1000,1000/100 \
        --contenders floor,agentkit,floor-httpx2,agentkit-httpx2 --no-gate
    python -m benchmarks --contenders floor,agentkit
    python -m benchmarks --render benchmarks/results/latest.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.contenders import CONTENDERS
from benchmarks.report import markdown

PARTS = ("inproc", "stream", "load", "imports", "tools")
RESULTS = Path(__file__).parent / "results"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[1:]),
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS)
    )
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated, from: " + ", ".join(CONTENDERS),
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a first look")
    parser.add_argument("--runs", type=int, help="in-process runs per batch (default 200)")
    parser.add_argument("--rounds", type=int, help="in-process rounds (default 7)")
    parser.add_argument(
        "--concurrency", help="loopback: runs at once, comma-separated (default 1000,10000)"
    )
    parser.add_argument("--load-rounds", type=int, help="loopback rounds (default 2)")
    parser.add_argument(
        "--pool",
        default="100,1000",
        help="loopback pool sizes, comma-separated (default 100,1000); N/K for a pool "
        "of N connections keeping at most K alive (N alone keeps all N)",
    )
    parser.add_argument(
        "--no-gate",
        dest="gate",
        action="store_false",
        help="let every request into httpcore's pool queue (quadratic there)",
    )
    parser.add_argument("--delay", type=float, default=0.05, help="server delay, s (0.05)")
    parser.add_argument("--import-repeats", type=int, help="fresh processes per import (9)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    parser.add_argument("--render", type=Path, help="re-render a results JSON file and exit")
    return parser


def _pool(text: str) -> tuple[int, int]:
    """A --pool item: "100" is (100, 100), "1000/100" is (1000, 100)."""
    size, _, keep = text.partition("/")
    try:
        pool = (int(size), int(keep or size))
    except ValueError:
        raise SystemExit(f"--pool: {text!r} is not N or N/K") from None
    if not 0 < pool[1] <= pool[0]:
        raise SystemExit(f"--pool: {text!r} needs 0 < K <= N")
    return pool


def _environment() -> dict[str, Any]:
    versions = {}
    for package in (
        "agentkit",
        "httpx",
        "httpx2",
        "pydantic",
        "anyio",
        "openai",
        "pydantic-ai-slim",
        "openai-agents",
    ):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "versions": versions,
    }


def _tools() -> str:
    """The output of `benchmarks/bench_tools.py`, run on its own."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_tools"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    return (done.stdout if done.returncode == 0 else done.stderr).strip()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.render:
        print(markdown(json.loads(args.render.read_text())))
        return
    parts = [p for p in args.parts.split(",") if p]
    unknown = set(parts) - set(PARTS)
    names = [c for c in args.contenders.split(",") if c]
    unknown |= set(names) - set(CONTENDERS)
    if unknown:
        raise SystemExit(f"unknown part or contender: {', '.join(sorted(unknown))}")
    if "floor" not in names:
        names.insert(0, "floor")
    if "floor-httpx2" not in names and any(
        CONTENDERS[n].http == "httpx2" for n in names if n != "floor-httpx2"
    ):
        # Every contender is also compared with the hand-written loop on its own stack.
        names.insert(1, "floor-httpx2")
    quick = args.quick
    runs = args.runs or (50 if quick else 200)
    rounds = args.rounds or (3 if quick else 7)
    levels = [
        int(n) for n in (args.concurrency or ("100,1000" if quick else "1000,10000")).split(",")
    ]
    load_rounds = args.load_rounds or (1 if quick else 2)
    pools = [_pool(p) for p in args.pool.split(",") if p]
    repeats = args.import_repeats or (3 if quick else 9)

    available = []
    notes = []
    for name in names:
        missing = CONTENDERS[name].missing()
        if missing:
            notes.append(f"{CONTENDERS[name].label}: {missing}")
            print(f"skipping {name}: {missing}")
        else:
            available.append(name)

    data: dict[str, Any] = {
        "command": "python -m benchmarks " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "environment": _environment(),
        "notes": notes,
    }
    data["command"] = data["command"].strip()
    if "inproc" in parts:
        from benchmarks.inproc import run_inproc

        data["inproc"] = run_inproc(available, stream=False, runs=runs, rounds=rounds)
    if "stream" in parts:
        from benchmarks.inproc import run_inproc

        data["inproc_stream"] = run_inproc(available, stream=True, runs=runs, rounds=rounds)
    if "load" in parts:
        from benchmarks.load import run_load

        if args.gate:
            notes.append(
                "Loopback: httpcore 1.0's pool (under httpx) rescans every queued request "
                "against every connection, and every idle connection against all the others, "
                "whenever a request starts or ends, which is quadratic; 10,000 requests queued "
                "in it take hours. Every contender's client therefore has the same FIFO gate "
                "in front of its pool (benchmarks/load.py, GatedTransport), so the pool's "
                "queue stays empty; --no-gate removes it."
            )

        data["load"] = run_load(
            available, levels, rounds=load_rounds, pools=pools, delay=args.delay, gate=args.gate
        )
    if "imports" in parts:
        from benchmarks.imports import run_imports

        data["imports"] = run_imports(repeats)
    if "tools" in parts:
        data["tools"] = _tools()

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(data, indent=2))
    page = markdown(data)
    (args.out / "latest.md").write_text(page)
    print()
    print(page)
    print(f"written: {args.out / 'latest.md'}, {args.out / 'latest.json'}")


if __name__ == "__main__":
    main()
