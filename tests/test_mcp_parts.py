"""The parts of `agentkit.mcp` that need no server: argument checks, result text,
the optional import, and the clock example's `--mcp` form."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import mcp.types as mcp_types

from agentkit.mcp import result_text
from agentkit.mcp._argcheck import check_arguments

ROOT = Path(__file__).resolve().parent.parent


# --- arguments against a foreign JSON schema ----------------------------------------------

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "days": {"type": "integer"},
        "ratio": {"type": "number"},
        "units": {"enum": ["metric", "imperial"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "where": {"$ref": "#/$defs/Point"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "exact": {"const": 1},
        "anything": {},
    },
    "required": ["city"],
    "additionalProperties": False,
    "$defs": {
        "Point": {
            "type": "object",
            "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
            "required": ["lat", "lon"],
        }
    },
}


def test_valid_arguments_pass() -> None:
    arguments = {
        "city": "Paris",
        "days": 3.0,  # an integer-valued number is an integer in JSON Schema
        "ratio": 2,
        "units": "metric",
        "tags": ["a", "b"],
        "where": {"lat": 1.5, "lon": -2, "extra": True},
        "note": None,
        "exact": 1,
        "anything": [1, {"x": None}],
    }
    assert check_arguments(arguments, SCHEMA) == []


def test_every_problem_is_reported() -> None:
    arguments = {
        "days": True,
        "ratio": "2",
        "units": "kelvin",
        "tags": ["a", 3],
        "where": {"lat": 1},
        "note": 5,
        "exact": 2,
        "colour": "red",
    }
    assert check_arguments(arguments, SCHEMA) == [
        {"loc": "city", "msg": "field required"},
        {"loc": "days", "msg": "expected an integer, not true"},
        {"loc": "ratio", "msg": 'expected a number, not "2"'},
        {"loc": "units", "msg": 'must be one of "metric", "imperial", not "kelvin"'},
        {"loc": "tags.1", "msg": "expected a string, not 3"},
        {"loc": "where.lon", "msg": "field required"},
        {"loc": "note", "msg": "5 matches none of the allowed forms"},
        {"loc": "exact", "msg": "must be 1, not 2"},
        {"loc": "colour", "msg": "unexpected argument"},
    ]


def test_unknown_keywords_and_odd_schemas_accept() -> None:
    assert check_arguments({"a": "x" * 500}, {"type": "object", "properties": {"a": True}}) == []
    assert check_arguments({"a": 1}, {"$ref": "https://example.com/schema.json"}) == []
    assert check_arguments({"a": 1}, {"type": "object", "x-vendor": {"weird": 1}}) == []
    assert check_arguments({"a": 1}, {"$ref": "#/$defs/Missing"}) == []
    loop: dict[str, Any] = {"$ref": "#"}
    assert check_arguments({}, loop) == []  # a self-reference stops at a fixed depth
    (long,) = check_arguments("y" * 200, {"type": "integer"})
    assert long["msg"] == 'expected an integer, not "' + "y" * 76 + "..."


# --- result text -------------------------------------------------------------------------


def _result(*content: Any, structured: Any = None, error: bool = False) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(
        content=list(content), structured_content=structured, is_error=error
    )


def test_text_blocks_are_joined() -> None:
    text = mcp_types.TextContent
    assert result_text(_result(text(text="one"), text(text="two"))) == "one\ntwo"
    assert result_text(_result()) == ""


def test_structured_content_wins_over_its_text_copy() -> None:
    result = _result(mcp_types.TextContent(text='{\n  "sum": 3\n}'), structured={"sum": 3})
    assert result_text(result) == '{"sum":3}'
    assert result_text(_result(structured=[1, "two"])) == '[1,"two"]'


def test_an_error_result_uses_its_text() -> None:
    result = _result(mcp_types.TextContent(text="bad input"), structured={"x": 1}, error=True)
    assert result_text(result) == "bad input"


def test_other_content_is_described() -> None:
    png = base64.b64encode(bytes(1234)).decode()
    result = _result(
        mcp_types.ImageContent(data=png, mime_type="image/png"),
        mcp_types.ImageContent(data="not base64!", mime_type="image/gif"),
        mcp_types.ResourceLink(uri="https://example.com/a", name="a"),
        mcp_types.EmbeddedResource(
            resource=mcp_types.BlobResourceContents(uri="file:///x", blob=png)
        ),
        structured={"ok": True},
    )
    assert result_text(result) == (
        '{"ok":true}\n'
        "[image: image/png, 1234 bytes]\n"
        "[image: image/gif, 8 bytes]\n"
        "[resource link: https://example.com/a (a)]\n"
        "[resource: file:///x, 1234 bytes]"
    )


# --- an optional extra, never imported by agentkit itself --------------------------------


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_agentkit_does_not_import_mcp() -> None:
    done = _python(
        "import sys, agentkit; print('mcp' in sys.modules, 'agentkit.mcp' in sys.modules)"
    )
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_without_the_sdk_the_error_names_the_extra() -> None:
    done = _python("import sys; sys.modules['mcp'] = None; import agentkit.mcp")
    assert done.returncode != 0
    assert 'ImportError: agentkit.mcp needs the MCP SDK, from the "mcp" extra' in done.stderr
    assert 'pip install "agentkit[mcp]"' in done.stderr


# --- the clock example --------------------------------------------------------------------


def _clock(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "clock.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


_SHOWN = r"\w+day \d{4}-\d\d-\d\d \d\d:\d\d \w+ \(UTC[+-]\d{4}\)"


def test_clock_with_the_mcp_time_server() -> None:
    done = _clock("--mcp", "What time is it in Tokyo?")
    assert done.returncode == 0, done.stderr
    head, call, answer = done.stdout.splitlines()
    assert head == "tool calls:"
    prefix = '  get_current_time({"timezone": "Asia/Tokyo"}) -> '
    assert call.startswith(prefix)
    reply = json.loads(call.removeprefix(prefix))
    assert reply["timezone"] == "Asia/Tokyo" and reply["datetime"].endswith("+09:00")
    assert re.fullmatch(rf"answer: It is {_SHOWN} in Tokyo\.", answer), answer
    assert "JST (UTC+0900)" in answer
    assert "running offline" in done.stderr


def test_clock_default_form_is_unchanged() -> None:
    done = _clock("What time is it in Tokyo?")
    assert done.returncode == 0, done.stderr
    head, call, answer = done.stdout.splitlines()
    assert head == "tool calls:"
    assert re.fullmatch(rf'  get_current_time\({{"timezone": "Asia/Tokyo"}}\) -> {_SHOWN}', call)
    assert re.fullmatch(rf"answer: It is {_SHOWN} in Tokyo\.", answer), answer


def test_clock_with_mcp_streams_too() -> None:
    done = _clock("--mcp", "--stream", "Time in Paris?")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].endswith("in Paris.")
