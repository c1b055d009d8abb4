"""Durable runs on DBOS: each crash test runs the agent in a child process
(tests/durable_app.py), SIGKILLs it at a marker the model or a tool fsynced,
starts it again, and counts the markers.

DBOS runs on asyncio only, so the in-process tests here run on asyncio alone.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from agentkit import Agent, RunContext, tool

if os.environ.get("CI", "").lower() == "true":
    import dbos  # noqa: F401  (under CI the durable extra is installed: never skipped)
else:
    pytest.importorskip("dbos", reason='needs the durable extra: pip install -e ".[dev]"')

from agentkit.durable import DBOSEngine, DurableRunError  # after the dbos check above
from agentkit.durable.dbos import sqlite_problem

APP = Path(__file__).with_name("durable_app.py")
WAIT = 40.0  # seconds any one process or marker may take, at most


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # DBOS is asyncio-only


def spawn(url: str, log: Path, run_id: str, scenario: str, *extra: str, **env: str) -> Any:
    environment = {**os.environ, "AGENTKIT_DBOS_LOG_LEVEL": "ERROR", **env}
    return subprocess.Popen(
        [sys.executable, str(APP), url, str(log), run_id, scenario, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        text=True,
    )


def finish(process: Any) -> dict[str, Any]:
    """The JSON line a child printed; fails with its stderr if it printed none."""
    try:
        out, err = process.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"the child did not finish in {WAIT} s:\n{err[-3000:]}")
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"no result (exit {process.returncode}):\n{err[-3000:]}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


def markers(log: Path) -> list[str]:
    """The log's lines, without the pid that wrote each."""
    if not log.exists():
        return []
    return [re.sub(r" pid=\d+$", "", line) for line in log.read_text().splitlines()]


def count(log: Path, prefix: str) -> int:
    return sum(1 for line in markers(log) if line == prefix or line.startswith(prefix + " "))


def kill_at(process: Any, log: Path, marker: str, *, after: float = 0.0) -> None:
    """SIGKILL `process` once `marker` is in the log (waiting `after` seconds more)."""
    deadline = time.monotonic() + WAIT
    while count(log, marker) == 0:
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the child ended before {marker!r}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            process.communicate()
            pytest.fail(f"no {marker!r} in {WAIT} s: {markers(log)}")
        time.sleep(0.01)
    if after:
        time.sleep(after)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=WAIT)  # reaps it and closes its pipes


def normalized(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with each tool call id replaced by its position (ids are random)."""
    ids: dict[str, str] = {}
    text = json.dumps(messages)
    for found in re.findall(r"call_[0-9a-f]{24}", text):
        ids.setdefault(found, f"call#{len(ids)}")
    for old, new in ids.items():
        text = text.replace(old, new)
    return json.loads(text)  # type: ignore[no-any-return]


# DBOS on Python 3.12+ needs SQLite 3.42+ (`DBOSEngine` refuses older ones, see
# test_an_old_sqlite_is_refused_with_what_to_do): where this Python's SQLite is
# older, the SQLite tests skip and the PostgreSQL ones still run. CI runs them all
# on its oldest Python.
SQLITE_PROBLEM = sqlite_problem()


def sqlite(tmp_path: Path, name: str = "runs") -> str:
    if SQLITE_PROBLEM is not None:
        pytest.skip(SQLITE_PROBLEM)
    return f"sqlite:///{tmp_path / (name + '.sqlite')}"


def test_an_old_sqlite_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    assert sqlite_problem((3, 11, 7), (3, 40, 1)) is None
    assert sqlite_problem((3, 13, 0), (3, 42, 0)) is None
    problem = sqlite_problem((3, 13, 0), (3, 40, 1))
    assert problem is not None and "3.42" in problem and "3.40.1" in problem
    assert "postgresql://" in problem
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 40, 1))
    monkeypatch.setattr(sys, "version_info", (3, 13, 0, "final", 0))
    with pytest.raises(DurableRunError, match=r"SQLite 3\.42 or later"):
        DBOSEngine("sqlite:///runs.sqlite")
    DBOSEngine("postgresql://user@127.0.0.1/db")  # PostgreSQL is not affected


def reference(tmp_path: Path, run_id: str, scenario: str, **env: str) -> Any:
    """The same run, uninterrupted, in a database of its own: started at once, so it
    runs beside the crash; `finish` it for its result."""
    log = tmp_path / "reference.log"
    return spawn(sqlite(tmp_path, "reference"), log, run_id, scenario, **env)


def test_kill_during_a_sequential_tool(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    uninterrupted = reference(tmp_path, "seq-1", "seq")
    kill_at(spawn(url, log, "seq-1", "seq", TOOL_SECONDS="1"), log, "tool-start 2")
    assert count(log, "tool-end 2") == 0
    result = finish(spawn(url, log, "seq-1", "seq", TOOL_SECONDS="0.1"))

    seen = Counter(line.split(" key")[0] for line in markers(log))
    assert [count(log, f"model-request {t}") for t in (1, 2, 3)] == [1, 1, 1]
    assert count(log, "tool-start 1") == 1
    starts = [line for line in markers(log) if line.startswith("tool-start 2 ")]
    assert len(starts) == 2, seen
    assert starts[0] == starts[1] == "tool-start 2 seq-1:2:0:" + starts[0].rsplit(":", 1)[1]
    # Events: each step's once, in the process that ran it; tool 2 ran in both.
    assert count(log, "event ModelRequestStart") == 3
    assert [count(log, f"event ToolCallStart {t}") for t in (1, 2)] == [1, 2]
    expected = finish(uninterrupted)
    assert result["output"] == expected["output"]
    assert normalized(result["messages"]) == normalized(expected["messages"])


def test_kill_after_a_model_answer_was_recorded_does_not_ask_again(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    # The first tool starts only once the first answer is recorded.
    kill_at(spawn(url, log, "rec-1", "seq", TOOL_SECONDS="1"), log, "tool-start 1")
    finish(spawn(url, log, "rec-1", "seq"))
    assert [count(log, f"model-request {t}") for t in (1, 2, 3)] == [1, 1, 1]
    assert [count(log, f"tool-start {n}") for n in (1, 2)] == [2, 1]


def test_kill_during_a_model_request_resends_only_that_one(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    uninterrupted = reference(tmp_path, "m-1", "seq")
    kill_at(spawn(url, log, "m-1", "seq", MODEL_SECONDS="1"), log, "model-request 2")
    result = finish(spawn(url, log, "m-1", "seq"))
    assert [count(log, f"model-request {t}") for t in (1, 2, 3)] == [1, 2, 1]
    assert [count(log, f"tool-start {n}") for n in (1, 2)] == [1, 1]
    assert result["output"] == finish(uninterrupted)["output"]


def test_parallel_tools_only_the_unrecorded_one_runs_again(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    uninterrupted = reference(tmp_path, "par-1", "parallel", TOOL_SECONDS="0.1")
    process = spawn(url, log, "par-1", "parallel", TOOL_SECONDS="1")
    kill_at(process, log, "tool-end 2", after=0.8)  # calls 1 and 2 recorded, 3 running
    assert count(log, "tool-end 3") == 0
    result = finish(spawn(url, log, "par-1", "parallel", TOOL_SECONDS="0.1"))
    assert [count(log, f"tool-start {n}") for n in (1, 2, 3)] == [1, 1, 2]
    first = markers(log)
    # tool_concurrency=2 held: call 3 started only once call 1 had ended.
    position = {
        kind: next(i for i, line in enumerate(first) if line.startswith(kind + " "))
        for kind in ("tool-end 1", "tool-start 3")
    }
    assert position["tool-end 1"] < position["tool-start 3"]
    assert [count(log, f"model-request {t}") for t in (1, 2)] == [1, 1]
    expected = finish(uninterrupted)
    assert normalized(result["messages"]) == normalized(expected["messages"])
    tool_messages = [m["content"] for m in result["messages"] if m["role"] == "tool"]
    assert [t.split(" (")[0] for t in tool_messages] == [
        "piece 1 done",
        "piece 2 done",
        "piece 3 done",
    ]


def test_one_run_per_id_at_once_and_a_finished_run_is_not_run_again(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    first = spawn(url, log, "same", "seq", "--executor", "a", TOOL_SECONDS="0.5")
    second = spawn(url, log, "same", "seq", "--executor", "b", TOOL_SECONDS="0.5")
    one, two = finish(first), finish(second)
    assert one == two
    assert [count(log, f"model-request {t}") for t in (1, 2, 3)] == [1, 1, 1]
    assert [count(log, f"tool-start {n}") for n in (1, 2)] == [1, 1]
    before = len(markers(log))
    again = finish(spawn(url, log, "same", "seq", "--executor", "c"))
    assert again == one
    assert [line for line in markers(log)[before:] if not line.startswith("done")] == []


def test_a_changed_agent_is_refused_on_recovery_before_any_request(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    kill_at(spawn(url, log, "chg", "seq", TOOL_SECONDS="1"), log, "tool-start 2")
    requests = count(log, "model-request")
    result = finish(spawn(url, log, "chg", "seq", "--changed"))
    assert result["error"] == "ReplayMismatchError"
    assert "turn 1 of durable run 'chg'" in result["text"]
    assert count(log, "model-request") == requests  # nothing sent
    assert count(log, "tool-start 2") == 1
    # Asked again with the original agent, the run's outcome stays the stored error.
    again = finish(spawn(url, log, "chg", "seq", "result"))
    assert again["error"] == "ReplayMismatchError"


def test_without_the_replay_check_a_changed_agent_goes_on(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    kill_at(spawn(url, log, "nv", "seq", TOOL_SECONDS="1"), log, "tool-start 2")
    result = finish(spawn(url, log, "nv", "seq", "--changed", "--no-verify"))
    assert result["output"].startswith("finished: piece 1 done")
    assert [count(log, f"model-request {t}") for t in (1, 2, 3)] == [1, 1, 1]


def test_a_plain_tool_is_not_recorded_and_runs_again_on_replay(tmp_path: Path) -> None:
    """`plain_tools=["work"]`: its calls are no steps. On recovery they run again; an
    answer that differs from the first process's is caught by the replay check."""
    same_log, vary_log = tmp_path / "same.log", tmp_path / "vary.log"
    same_url, vary_url = sqlite(tmp_path, "same"), sqlite(tmp_path, "vary")
    env = {"TOOL_SECONDS": "1"}
    same = spawn(same_url, same_log, "plain", "seq", "--plain", **env)
    vary = spawn(vary_url, vary_log, "vary", "seq", "--plain", VARY="1", **env)
    kill_at(same, same_log, "tool-start 2")
    kill_at(vary, vary_log, "tool-start 2")
    same = spawn(same_url, same_log, "plain", "seq", "--plain")
    vary = spawn(vary_url, vary_log, "vary", "seq", "--plain", VARY="1")
    result, mismatch = finish(same), finish(vary)

    assert result["output"] == "finished: piece 1 done (plain) | piece 2 done (plain)"
    assert [count(same_log, f"model-request {t}") for t in (1, 2, 3)] == [1, 1, 1]
    assert [count(same_log, f"tool-start {n}") for n in (1, 2)] == [2, 2]  # 1 ran on replay
    assert [count(same_log, f"event ToolCallStart {t}") for t in (1, 2)] == [2, 2]
    with closing(sqlite3.connect(tmp_path / "same.sqlite")) as db, db:
        steps = db.execute(
            "SELECT function_name FROM operation_outputs WHERE workflow_uuid = 'plain' "
            "ORDER BY function_id"
        ).fetchall()
    db.close()
    assert [name for (name,) in steps] == ["model:1", "model:2", "model:3"]

    # Tool 1 answered otherwise in the new process: turn 2's request is not the recorded one.
    assert mismatch["error"] == "ReplayMismatchError", mismatch
    assert "turn 2 of durable run 'vary'" in mismatch["text"]
    assert [count(vary_log, f"model-request {t}") for t in (1, 2, 3)] == [1, 1, 0]


def test_tool_failures_replay_as_the_same_messages(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    uninterrupted = reference(tmp_path, "fail", "failures")
    kill_at(spawn(url, log, "fail", "failures", TOOL_SECONDS="1"), log, "tool-start 1")
    result = finish(spawn(url, log, "fail", "failures"))
    for kind in ("retry", "timeout", "boom"):
        assert count(log, f"tool-start flaky-{kind}") == 1
    expected = finish(uninterrupted)
    assert normalized(result["messages"]) == normalized(expected["messages"])
    texts = [m["content"] for m in result["messages"] if m["role"] == "tool"]
    assert "try with another kind" in texts[0]
    assert "timed out" in texts[1] or "timeout" in texts[1]
    assert "ValueError" in texts[2] or "boom" in texts[2]


def test_a_run_error_comes_back_as_its_class_with_messages(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    uninterrupted = reference(tmp_path, "err", "raise")
    kill_at(spawn(url, log, "err", "raise", TOOL_SECONDS="1"), log, "tool-start 1")
    result = finish(spawn(url, log, "err", "raise"))
    expected = finish(uninterrupted)
    assert result["error"] == expected["error"] == "ToolExecutionError"
    assert normalized(result["messages"]) == normalized(expected["messages"])
    again = finish(spawn(url, log, "err", "raise", "result"))
    assert again["error"] == "ToolExecutionError"
    assert again["messages"] == result["messages"]
    assert again["text"] == result["text"] == expected["text"]
    # The tool's exception, rebuilt from the stored class name in another process.
    assert again["cause"] == result["cause"] == expected["cause"] == "ValueError"
    assert count(log, "tool-start flaky-boom") == 1


def test_structured_output_is_validated_again_after_a_restart(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    kill_at(spawn(url, log, "st", "structured", TOOL_SECONDS="1"), log, "tool-start 1")
    result = finish(spawn(url, log, "st", "structured", "result"))
    assert result["output"] == {"type": "Verdict", "total": 42, "note": "all done"}


def test_the_timeout_is_a_deadline_kept_across_restarts(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    env = {"TOOL_SECONDS": "1.2"}
    kill_at(spawn(url, log, "late", "seq", "--timeout", "2.5", **env), log, "tool-start 2")
    # A fresh 2.5 s would let tool 2 (1.2 s) and the answer finish; the deadline does not.
    result = finish(spawn(url, log, "late", "seq", "--timeout", "2.5", **env))
    assert result["error"] == "RunTimeoutError"
    assert "across restarts" in result["text"]
    assert count(log, "model-request 3") == 0


def test_a_run_that_keeps_crashing_its_process_is_given_up(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    crash = {"CRASH_IN_TOOL": "1"}
    for _ in range(2):  # the first start and one recovery: each dies in the tool
        process = spawn(url, log, "poison", "seq", "--max-recoveries", "1", **crash)
        try:
            process.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        assert process.returncode == -signal.SIGKILL
    assert count(log, "tool-start 1") == 2
    # The second recovery is one too many: given up, with the tool not run again.
    result = finish(spawn(url, log, "poison", "seq", "--max-recoveries", "1", **crash))
    assert result["error"] == "DurableEngineError", result
    assert "'poison' was given up" in result["text"]
    assert "more than max_recovery_attempts=1 times" in result["text"]
    assert count(log, "tool-start 1") == 2 and count(log, "model-request 1") == 1
    again = finish(spawn(url, log, "poison", "seq", "result", "--max-recoveries", "1"))
    assert again["error"] == "DurableEngineError"


# --- in this process: what is refused at start, events, the plain path untouched ------------


def test_import_agentkit_loads_no_durable_code() -> None:
    code = (
        "import sys, agentkit\n"
        "from agentkit import Agent\n"
        "Agent('m')\n"
        "loaded = [m for m in sys.modules if m.startswith(('dbos', 'agentkit.durable', 'sqlalchemy'))]\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT)
    assert out.stdout.strip() == "[]", out.stderr


@tool
def lookup(ctx: RunContext[Any], order: str) -> str:
    """Look an order up.

    Args:
        order: The order number.
    """
    return f"order {order}: shipped ({ctx.deps})"


def _durable(tmp_path: Path, name: str, **options: Any) -> Any:
    from agentkit.durable import DBOSEngine, DurableAgent
    from agentkit.testing import ScriptedModel, call

    model = ScriptedModel([call("lookup", order="4711"), "It has shipped."])
    agent = Agent("m", client=model, tools=[lookup])
    engine = DBOSEngine(sqlite(tmp_path), poll_interval=0.1)
    return DurableAgent(agent, name=name, engine=engine, **options), model


@pytest.mark.anyio
async def test_deps_that_cannot_be_stored_are_refused_at_start(tmp_path: Path) -> None:
    from agentkit.durable import DurableRunError

    durable, model = _durable(tmp_path, "deps-check")
    with pytest.raises(DurableRunError, match=r"deps of type object cannot be stored.*factory"):
        await durable.start("hi", run_id="x", deps=object())
    with pytest.raises(DurableRunError, match="do not survive JSON unchanged"):
        await durable.start("hi", run_id="x", deps={"ids": (1, 2)})
    factory, _ = _durable(tmp_path, "deps-factory", deps=lambda run_id: {"db": run_id})
    with pytest.raises(DurableRunError, match="builds deps with its factory"):
        await factory.start("hi", run_id="x", deps={"a": 1})
    assert model.requests == []


def test_trio_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    import trio

    from agentkit.durable import DurableRunError

    durable, model = _durable(tmp_path, "on-trio")
    with pytest.raises(DurableRunError, match=r"needs asyncio .* not trio"):
        trio.run(lambda: durable.run("hi", run_id="t"))
    assert model.requests == []


def test_run_stream_and_pausing_agents_are_refused(tmp_path: Path) -> None:
    from agentkit import Agent, Paused, tool
    from agentkit.durable import DBOSEngine, DurableAgent, DurableRunError

    durable, _ = _durable(tmp_path, "no-stream")
    with pytest.raises(DurableRunError, match=r"run_stream is not supported.*event_handler"):
        durable.run_stream("hi")

    @tool(requires_approval=True)
    def refund(amount: int) -> str:
        """Refund.

        Args:
            amount: How much.
        """
        return "ok"

    pausing = Agent("m", tools=[refund], pauses=Paused)
    with pytest.raises(DurableRunError, match=r"\['refund'\] may pause a run"):
        DurableAgent(pausing, name="pausing", engine=DBOSEngine(sqlite(tmp_path)))
    with pytest.raises(DurableRunError, match="plain_tools names tools the agent does not have"):
        _durable(tmp_path, "bad-plain", plain_tools=["nope"])


@pytest.mark.anyio
async def test_postgres_needs_an_executor_id_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentkit.durable import DBOSEngine, DurableRunError

    monkeypatch.delenv("DBOS__VMID", raising=False)
    engine = DBOSEngine("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(DurableRunError, match="needs an executor_id per process"):
        await engine.launch()


@pytest.mark.anyio
async def test_an_unreachable_database_is_a_clear_error_without_the_password() -> None:
    from agentkit.durable import DBOSEngine, DurableEngineError

    engine = DBOSEngine("postgresql://postgres:s3cr3t-pw@127.0.0.1:1/none", executor_id="x")
    with pytest.raises(DurableEngineError, match=r"127\.0\.0\.1:1/none cannot be used") as raised:
        await engine.status("run-1")
    assert "s3cr3t" not in str(raised.value) and "s3cr3t" not in repr(engine)


@pytest.mark.anyio
async def test_in_process_run_events_and_reattach(tmp_path: Path) -> None:
    """One engine in this process: a run, its events once each, the same run id
    again (the stored result, no request), and result() of an unknown id."""
    from agentkit import ModelRequestStart, ToolCallStart
    from agentkit.durable import DBOSEngine, DurableAgent, DurableEngineError, DurableRunError

    events: list[Any] = []
    durable, model = _durable(
        tmp_path, "in-process", deps=lambda run_id: f"deps of {run_id}", event_handler=events.append
    )
    twice, twice_model = _durable(tmp_path, "in-process-twice")

    def no_database(run_id: str) -> Any:
        raise RuntimeError(f"no database for {run_id}")

    broken, _ = _durable(tmp_path, "in-process-broken", deps=no_database)
    async with durable.engine:
        both = await asyncio.gather(
            twice.run("Where is 4711?", run_id="twice"), twice.run("Where is 4711?", run_id="twice")
        )
        assert both[0].messages == both[1].messages and len(twice_model.requests) == 2
        result = await durable.run("Where is 4711?", run_id="ticket-4711")
        assert result.output == "It has shipped."
        assert result.messages[2].content == "order 4711: shipped (deps of ticket-4711)"
        again = await durable.run("Where is 4711?", run_id="ticket-4711")
        assert again.output == result.output and again.messages == result.messages
        assert len(model.requests) == 2
        with pytest.raises(DurableRunError, match="'ticket-4711' was started with another"):
            await durable.run("Where is 4712?", run_id="ticket-4711")
        handle = await durable.start("Where is 4711?", run_id="ticket-4711")
        assert (await handle.result()).output == result.output
        assert await handle.status() == "SUCCESS"
        with pytest.raises(DurableRunError, match="no run 'nope'"):
            await durable.result("nope")
        with pytest.raises(DurableEngineError, match=r"'b-1' failed outside .*no database for b-1"):
            await broken.run("hi", run_id="b-1")
        # DBOS is one per process: a second engine would run on the first one's database.
        other = DBOSEngine(sqlite(tmp_path, "other"))
        with pytest.raises(DurableRunError, match=r"is running in this process.*one engine"):
            await other.launch()
        with pytest.raises(DurableRunError, match="made after a DBOSEngine started"):
            DurableAgent(durable.agent, name="too-late", engine=other)
    async with other:  # once the first has stopped
        assert await other.status("ticket-4711") is None
    kinds = [type(e) for e in events if isinstance(e, (ModelRequestStart, ToolCallStart))]
    assert kinds == [ModelRequestStart, ToolCallStart, ModelRequestStart]
    # Stored as JSON, never pickle, in a WAL-mode database.
    with closing(sqlite3.connect(tmp_path / "runs.sqlite")) as db, db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = db.execute(
            "SELECT serialization, output FROM operation_outputs WHERE workflow_uuid = ?",
            ("ticket-4711",),
        ).fetchall()
        formats = db.execute("SELECT DISTINCT serialization FROM workflow_status").fetchall()
    db.close()
    assert len(rows) == 3 and {r[0] for r in rows} == {"portable_json"}
    outputs = [json.loads(r[1]) for r in rows]  # model, tool, model
    assert [("digest" in o, o.get("tool_name")) for o in outputs] == [
        (True, None),
        (False, "lookup"),
        (True, None),
    ]
    assert formats == [("portable_json",)]


@pytest.mark.anyio
async def test_the_timeout_counts_from_the_start_not_the_wait_on_a_queue(tmp_path: Path) -> None:
    durable, model = _durable(tmp_path, "queued")
    # Enqueued by a process whose engine is not running: it waits for one.
    handle = await durable.start("Where is 4711?", run_id="queued-1", timeout=1.0)
    assert await handle.status() == "ENQUEUED"
    await asyncio.sleep(1.5)  # longer than its timeout, on the queue
    async with durable.engine:
        result = await handle.result()
    assert result.output == "It has shipped." and len(model.requests) == 2
    with closing(sqlite3.connect(tmp_path / "runs.sqlite")) as db, db:
        names = db.execute(
            "SELECT function_name FROM operation_outputs WHERE workflow_uuid = 'queued-1' "
            "ORDER BY function_id"
        ).fetchall()
    db.close()
    assert [n for (n,) in names] == ["started", "model:1", "tool:1:0:lookup", "model:2"]


# --- PostgreSQL: two workers on one queue, one of them killed --------------------------------


def _fresh_database(postgres_url: str, name: str) -> str:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return postgres_url.rsplit("/", 1)[0] + "/" + name


def _pid_of(line: str) -> int:
    return int(line.rsplit("pid=", 1)[1])


def _pid_of_or_none(line: str) -> int | None:
    return _pid_of(line) if "pid=" in line else None


def _last_marker_per_run(text: str, pid: int) -> dict[str, str]:
    """For each run process `pid` wrote markers of, the last one."""
    last: dict[str, str] = {}
    for line in text.splitlines():
        found = re.search(r"(pg-\d+)", line)
        if found and _pid_of_or_none(line) == pid:
            last[found.group(1)] = line
    return last


def _wait_for(log: Path, predicate: Any, what: str, processes: list[Any]) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate(log.read_text() if log.exists() else ""):
        for process in processes:
            if process.poll() is not None:
                _, err = process.communicate()
                pytest.fail(f"a worker ended while waiting for {what}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} in {WAIT} s")
        time.sleep(0.02)


def _peak_runs_per_process(log: Path) -> dict[int, int]:
    """For each process, the most runs it had between their first and last marker at once."""
    spans: dict[tuple[int, str], list[int]] = {}
    for position, line in enumerate(log.read_text().splitlines()):
        found = re.search(r"(pg-\d+)", line)
        if found:
            spans.setdefault((_pid_of(line), found.group(1)), []).append(position)
    peak: dict[int, int] = {}
    for pid in {pid for pid, _ in spans}:
        edges = sorted(
            edge
            for (p, _), positions in spans.items()
            if p == pid
            for edge in ((positions[0], 1), (positions[-1] + 0.5, -1))
        )
        active = best = 0
        for _, step in edges:
            active += step
            best = max(best, active)
        peak[pid] = best
    return peak


@pytest.mark.parametrize("recovery", ["admin", "restart"])
def test_postgres_workers_share_a_queue_and_a_dead_ones_runs_are_recovered(
    postgres_url: str, tmp_path: Path, recovery: str
) -> None:
    url = _fresh_database(postgres_url, f"agentkit_scale_{recovery}")
    log = tmp_path / "events.log"
    env = {"TOOL_SECONDS": "1", "WORKER_SECONDS": "60"}
    common = ("--queue", "agent_runs", "--concurrency", "2")
    workers = {
        name: spawn(url, log, "-", "seq", "worker", "--executor", name, *common, **env)
        for name in ("A", "B")
    }
    try:
        _wait_for(
            log, lambda t: "worker-up A" in t and "worker-up B" in t, "workers", [*workers.values()]
        )
        runs = [f"pg-{i}" for i in range(10)]
        enqueued = finish(spawn(url, log, "-", "seq", "enqueue", "--runs", ",".join(runs), *common))
        assert enqueued == {"enqueued": runs}
        pid_a = workers["A"].pid

        def a_is_inside_tools(text: str) -> bool:
            """A has started a second tool just now, and each run it has in flight is
            inside a tool: no model request of A is in flight (it would be re-sent)."""
            last = _last_marker_per_run(text, pid_a)
            newest = [line for line in text.splitlines() if _pid_of_or_none(line) == pid_a]
            return (
                bool(newest)
                and newest[-1].startswith("tool-start 2")
                and all(
                    line.startswith("tool-start")
                    for line in last.values()
                    if not line.startswith("model-request 3")
                )
            )

        def a_of(text: str) -> list[str]:
            return [line for line in text.splitlines() if _pid_of_or_none(line) == pid_a]

        # Kill A inside its tools, after a quiet 0.3 s (tools take 1 s): a final model
        # request A made just before is recorded by then, so none is in flight.
        deadline = time.monotonic() + WAIT
        while True:
            _wait_for(log, a_is_inside_tools, "worker A inside its tools", [*workers.values()])
            before = a_of(log.read_text())
            time.sleep(0.3)
            text = log.read_text()
            if a_of(text) == before and a_is_inside_tools(text):
                break
            assert time.monotonic() < deadline, "worker A was never quiet inside its tools"
        workers["A"].send_signal(signal.SIGKILL)
        workers["A"].communicate(timeout=WAIT)
        at_kill = _last_marker_per_run(log.read_text(), pid_a)
        assert at_kill and all(
            line.startswith(("tool-start", "model-request 3")) for line in at_kill.values()
        )
        if recovery == "admin":
            moved = finish(spawn(url, log, "-", "seq", "recover", "--executor", "A", *common))
            assert moved["recovered"], "A had runs in flight"
        else:
            workers["A2"] = spawn(url, log, "-", "seq", "worker", "--executor", "A", *common, **env)
        waited = spawn(url, log, "-", "seq", "wait", "--runs", ",".join(runs), *common)
        try:
            out, err = waited.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            waited.kill()
            waited.communicate()
            pytest.fail(f"the runs did not all finish in 60 s: {markers(log)[-20:]}")
        results = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    finally:
        for process in workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.communicate(timeout=WAIT)

    assert len(results) == 10, err[-3000:]
    for run_id, result in zip(runs, results, strict=True):
        assert result["output"] == (
            f"finished: piece 1 done ({run_id}) | piece 2 done ({run_id})"
        ), result
    lines = markers(log)
    requests = Counter(line for line in lines if line.startswith("model-request"))
    # The reference count: 3 requests per run, none sent twice (none was in flight).
    assert len(requests) == 30 and set(requests.values()) == {1}, requests
    # Each run's last request happens once: no run completed twice.
    assert sorted(line.split()[-1] for line in requests if line.startswith("model-request 3")) == [
        f"task_{r}" for r in sorted(runs)
    ]
    starts = Counter(line for line in lines if line.startswith("tool-start"))
    assert sum(starts.values()) >= 20
    assert all(n <= 2 for n in starts.values())  # only calls in flight at the kill ran again
    peaks = _peak_runs_per_process(log)
    assert max(peaks.values()) == 2  # each worker ran 2 runs at a time, never more
    assert sum(starts.values()) > 20  # the calls in flight on A ran again elsewhere


# --- the docs page, the example and the benchmark run -----------------------------------------

ROOT = Path(__file__).parent.parent


def test_the_docs_program_runs(tmp_path: Path) -> None:
    sqlite(Path())  # skips where DBOS cannot use this Python's SQLite
    text = (ROOT / "docs" / "durable.md").read_text()
    program = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=WAIT, cwd=tmp_path
    )
    assert out.stdout.splitlines() == [
        "Your order has shipped.",
        "Nothing else is open.",
        "order 4711 shipped from Leipzig",
    ], out.stderr[-3000:]


def test_the_example_survives_kill_9(tmp_path: Path) -> None:
    sqlite(Path())  # skips where DBOS cannot use this Python's SQLite
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "durable_clock.py")],
        capture_output=True,
        text=True,
        timeout=90,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")},
            "CLOCK_DIR": str(tmp_path),
            "CLOCK_TOOL_SECONDS": "1.5",
            "AGENTKIT_DBOS_LOG_LEVEL": "ERROR",
        },
    )
    assert "answer: Tokyo: " in out.stdout, out.stderr[-3000:]
    assert "tool calls made: ['Asia/Tokyo', 'Europe/Paris', 'Europe/Paris']" in out.stdout


def benchmark_rows(extra: set[str], out: subprocess.CompletedProcess[str]) -> set[str]:
    """The rows `benchmarks.durable` must time: the SQLite one only where DBOS can use
    this Python's SQLite; elsewhere the benchmark says why it skipped it."""
    if SQLITE_PROBLEM is None:
        return {"plain", "DBOS, SQLite (WAL)", *extra}
    assert f"{'DBOS, SQLite (WAL)':<22} skipped: {SQLITE_PROBLEM}\n" in out.stdout, out.stdout
    return {"plain", *extra}


def test_the_benchmark_runs_on_sqlite_and_postgres(postgres_url: str) -> None:
    url = _fresh_database(postgres_url, "agentkit_bench")
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.durable", "--runs", "2", "--postgres", url],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )
    rows = {
        line[:22].strip(): [float(v) for v in re.findall(r"([\d.]+)ms", line)]
        for line in out.stdout.splitlines()
        if line.endswith("ms")
    }
    timed = benchmark_rows({"DBOS, PostgreSQL"}, out)
    assert set(rows) == timed, out.stderr[-3000:]
    for backend in timed - {"plain"}:
        per_run, per_step, added = rows[backend]
        assert per_run > rows["plain"][0] and per_step > 0 and added > 0


# --- errors stored as JSON ----------------------------------------------------------------------


def test_errors_are_stored_as_json_and_come_back_as_their_class() -> None:
    from agentkit import _exceptions
    from agentkit._run.tool_step import RebuiltToolError
    from agentkit.durable import codec
    from tests.test_exceptions_pickle import KEY, URL, messages, response

    try:
        raise _exceptions.ToolExecutionError(
            "lookup", KeyError("x"), messages=messages()
        ) from KeyError("x")
    except _exceptions.ToolExecutionError as raised:
        stored = json.dumps(codec.encode_error(raised))
    copy = codec.decode_error(json.loads(stored))
    assert type(copy) is _exceptions.ToolExecutionError
    assert str(copy) == "tool 'lookup' raised KeyError: 'x'" and copy.tool_name == "lookup"
    assert copy.messages == messages()
    assert isinstance(copy.__cause__, RebuiltToolError)
    assert type(copy.__cause__).__name__ == "KeyError"

    limited = _exceptions.RateLimitError(
        f"rejected {KEY} at {URL}", response=response(), body={"echo": f"key {KEY[:20]}"}
    )
    stored = json.dumps(codec.encode_error(limited))
    assert KEY[:8] not in stored and KEY[-8:] not in stored and "pa55" not in stored
    back = codec.decode_error(json.loads(stored))
    assert type(back) is _exceptions.RateLimitError
    assert back.status_code == 429 and back.request_id == "req_1"
    assert back.response.headers["retry-after"] == "3"
    assert back.request.method == "POST" and back.request.url.host == "llm.test"


def test_durable_errors_pickle() -> None:
    import pickle

    from agentkit.durable import DurableEngineError, DurableRunError, ReplayMismatchError

    for error in (
        ReplayMismatchError("turn 2 of durable run 'x': differs", messages=[]),
        DurableRunError("deps cannot be stored"),
        DurableEngineError("run 'x' failed outside the agent loop"),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == str(error)
