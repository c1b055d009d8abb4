"""Durable runs on DBOS: each crash test runs the agent in a child process
(tests/durable_app.py), SIGKILLs it at a marker the model or a tool fsynced,
starts it again, and counts the markers.

DBOS runs on asyncio only, so the in-process tests here run on asyncio alone.
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

pytest.importorskip("dbos")

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


def sqlite(tmp_path: Path, name: str = "runs") -> str:
    return f"sqlite:///{tmp_path / (name + '.sqlite')}"


def reference(tmp_path: Path, run_id: str, scenario: str, **env: str) -> dict[str, Any]:
    """The result of the same run, uninterrupted, in a database of its own."""
    log = tmp_path / "reference.log"
    return finish(spawn(sqlite(tmp_path, "reference"), log, run_id, scenario, **env))


def test_kill_during_a_sequential_tool(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    kill_at(spawn(url, log, "seq-1", "seq", TOOL_SECONDS="1"), log, "tool-start 2")
    assert count(log, "tool-end 2") == 0
    result = finish(spawn(url, log, "seq-1", "seq", TOOL_SECONDS="0.1"))

    seen = Counter(line.split(" key")[0] for line in markers(log))
    assert [count(log, f"model-request {t}") for t in (1, 2, 3)] == [1, 1, 1]
    assert count(log, "tool-start 1") == 1
    starts = [line for line in markers(log) if line.startswith("tool-start 2 ")]
    assert len(starts) == 2, seen
    assert starts[0] == starts[1] == "tool-start 2 seq-1:2:0:" + starts[0].rsplit(":", 1)[1]
    expected = reference(tmp_path, "seq-1", "seq")
    assert result["output"] == expected["output"]
    assert normalized(result["messages"]) == normalized(expected["messages"])


def test_kill_during_a_model_request_resends_only_that_one(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    kill_at(spawn(url, log, "m-1", "seq", MODEL_SECONDS="1"), log, "model-request 2")
    result = finish(spawn(url, log, "m-1", "seq"))
    assert [count(log, f"model-request {t}") for t in (1, 2, 3)] == [1, 2, 1]
    assert [count(log, f"tool-start {n}") for n in (1, 2)] == [1, 1]
    assert result["output"] == reference(tmp_path, "m-1", "seq")["output"]


def test_parallel_tools_only_the_unrecorded_one_runs_again(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    process = spawn(url, log, "par-1", "parallel", TOOL_SECONDS="1")
    kill_at(process, log, "tool-end 2", after=0.4)  # calls 1 and 2 recorded, 3 running
    assert count(log, "tool-end 3") == 0
    result = finish(spawn(url, log, "par-1", "parallel", TOOL_SECONDS="0.1"))
    assert [count(log, f"tool-start {n}") for n in (1, 2, 3)] == [1, 1, 2]
    assert [count(log, f"model-request {t}") for t in (1, 2)] == [1, 1]
    expected = reference(tmp_path, "par-1", "parallel", TOOL_SECONDS="0.1")
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


def test_tool_failures_replay_as_the_same_messages(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    kill_at(spawn(url, log, "fail", "failures", TOOL_SECONDS="1"), log, "tool-start 1")
    result = finish(spawn(url, log, "fail", "failures"))
    for kind in ("retry", "timeout", "boom"):
        assert count(log, f"tool-start flaky-{kind}") == 1
    expected = reference(tmp_path, "fail", "failures")
    assert normalized(result["messages"]) == normalized(expected["messages"])
    texts = [m["content"] for m in result["messages"] if m["role"] == "tool"]
    assert "try with another kind" in texts[0]
    assert "timed out" in texts[1] or "timeout" in texts[1]
    assert "ValueError" in texts[2] or "boom" in texts[2]


def test_a_run_error_comes_back_as_its_class_with_messages(tmp_path: Path) -> None:
    log, url = tmp_path / "events.log", sqlite(tmp_path)
    kill_at(spawn(url, log, "err", "raise", TOOL_SECONDS="1"), log, "tool-start 1")
    result = finish(spawn(url, log, "err", "raise"))
    expected = reference(tmp_path, "err", "raise")
    assert result["error"] == expected["error"] == "ToolExecutionError"
    assert normalized(result["messages"]) == normalized(expected["messages"])
    again = finish(spawn(url, log, "err", "raise", "result"))
    assert again["error"] == "ToolExecutionError"
    assert again["messages"] == result["messages"]
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
