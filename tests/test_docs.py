"""Every Python block of README.md and docs/ runs, as a reader would run it.

Each ```python block is written to a file and run with this interpreter in a
fresh process, with `OPENAI_BASE_URL` pointing at a fake endpoint on 127.0.0.1
(tests/docs_server.py) and `OPENAI_API_KEY` set; it must exit with 0 and send
only schema-valid requests. A block followed by an ```output block must print
exactly that (`...` in it matches any text, as in doctest); a block without
one must print nothing. An HTML comment on
the line before a block changes this (docs/contributing.md describes them):

- `<!-- docs-test: fragment -->`: not a whole program; only compiled.
- `<!-- docs-test: needs postgres -->`, `needs redis`, `needs temporal`: runs with
  `DATABASE_URL`, `REDIS_URL` or `TEMPORAL_ADDRESS` set to a server of the test
  session's own.
"""

from __future__ import annotations

import ast
import doctest
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest

from tests.docs_server import DocsServer, docs_server, value_for

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUNS = {"python", "py"}
DIRECTIVE = re.compile(r"^<!--\s*docs-test:\s*(?P<body>.*?)\s*-->$")
NEEDS = {
    "postgres": ("DATABASE_URL", "postgres_url"),
    "redis": ("REDIS_URL", "redis_url"),
    "temporal": ("TEMPORAL_ADDRESS", "temporal_address"),
}


def _dbos_sqlite() -> str | None:
    """Why DBOS cannot keep runs in this Python's SQLite, or None."""
    try:
        from agentkit.durable.dbos import sqlite_problem
    except ImportError:
        return "needs the durable extra"
    return sqlite_problem()


# Needs that are not a server: a block is skipped, with the reason, where one fails.
CONDITIONS = {"dbos-sqlite": _dbos_sqlite}
TIMEOUT = 60.0

# Loaded by every block's interpreter at start-up (as `sitecustomize`): a block
# may connect to 127.0.0.1 and ::1 only, as the tests themselves may.
GUARD = """
import socket

_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else None
    if host not in (None, "127.0.0.1", "::1", "localhost"):
        raise OSError(f"docs test: no connection to {host!r} (the network is off in tests)")
    return _connect(self, address)


socket.socket.connect = _loopback_only
"""


@dataclass
class Block:
    """One fenced code block of a page, with what the page says about it."""

    page: Path
    line: int
    lang: str
    code: str
    fragment: bool = False
    needs: list[str] = field(default_factory=list)
    output: str | None = None

    @property
    def id(self) -> str:
        page = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{page}:{self.line}"


def _apply(block: Block, directive: str) -> None:
    for part in (p.strip() for p in directive.split(";") if p.strip()):
        if part == "fragment":
            block.fragment = True
        elif part.startswith("needs "):
            for need in part.removeprefix("needs ").split():
                if need not in NEEDS and need not in CONDITIONS:
                    known = sorted([*NEEDS, *CONDITIONS])
                    raise ValueError(f"{block.id}: unknown need {need!r}; known: {known}")
                block.needs.append(need)
        else:
            raise ValueError(f"{block.id}: unknown docs-test directive {part!r}")


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of `page`, each with its directive and shown output."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    directive: str | None = None
    last: Block | None = None  # the block just before, if only blank lines came since
    i = 0
    while i < len(lines):
        stripped = lines[i].strip()
        match = DIRECTIVE.match(stripped)
        if match:
            directive = match["body"]
            i += 1
            continue
        if stripped.startswith("```"):
            fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
            lang = stripped[len(fence) :].strip().split(" ")[0].lower()
            indent = len(lines[i]) - len(lines[i].lstrip())
            start = i
            i += 1
            body: list[str] = []
            while i < len(lines) and lines[i].strip() != fence:
                body.append(lines[i][indent:])
                i += 1
            i += 1
            code = "\n".join(body) + "\n"
            if lang == "output":
                if last is None or last.lang not in RUNS:
                    raise ValueError(
                        f"{page}:{start + 1}: an output block must follow a python block"
                    )
                last.output = code
                last = None
                continue
            block = Block(page, start + 1, lang, code)
            if directive is not None:
                _apply(block, directive)
                directive = None
            found.append(block)
            last = block
            continue
        if stripped:
            directive = None
            last = None
        i += 1
    return found


def _python_blocks() -> Iterator[Block]:
    for page in PAGES:
        for block in blocks(page):
            if block.lang in RUNS:
                yield block


ALL = list(_python_blocks())


@pytest.fixture(scope="module")
def server() -> Iterator[DocsServer]:
    with docs_server() as running:
        yield running


def _check_output(block: Block, printed: str) -> None:
    assert block.output is not None
    checker = doctest.OutputChecker()
    if not checker.check_output(block.output, printed, doctest.ELLIPSIS):
        example = doctest.Example("", block.output)
        diff = checker.output_difference(example, printed, doctest.ELLIPSIS)
        pytest.fail(f"{block.id}: the page shows output the code does not print\n{diff}")


@pytest.mark.parametrize("block", ALL, ids=[b.id for b in ALL])
def test_block_runs(
    block: Block, server: DocsServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    run_block(block, server, tmp_path, request)


def run_block(
    block: Block, server: DocsServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Run `block` as a reader's copy of it would run; fail naming its page and line."""
    flags = ast.PyCF_ONLY_AST
    if block.fragment:
        # A fragment may show a line of an async function: allow top-level await.
        compile(block.code, block.id, "exec", flags | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        assert block.output is None, f"{block.id}: a fragment cannot show output"
        return
    compile(block.code, block.id, "exec", flags)  # a SyntaxError names the page and line
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GUARD, encoding="utf-8")
    env = {
        **os.environ,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_API_KEY": "sk-docs-test",
        "PYTHONPATH": os.pathsep.join([str(guard), str(ROOT)]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("AGENTKIT_MODEL", None)
    for need in block.needs:
        if need in CONDITIONS:
            problem = CONDITIONS[need]()
            if problem is not None:
                pytest.skip(f"{block.id}: {problem}")
            continue
        variable, fixture = NEEDS[need]
        env[variable] = str(request.getfixturevalue(fixture))
    script = tmp_path / "work" / "snippet.py"
    script.parent.mkdir()
    script.write_text(block.code, encoding="utf-8")
    server.errors.clear()
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=script.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stderr[-4000:]}"
    assert not server.errors, f"{block.id} sent invalid requests: {server.errors}"
    if block.output is not None:
        _check_output(block, done.stdout)
    else:
        assert not done.stdout, (
            f"{block.id} prints, but the page does not show what: add an ```output block "
            f"after it with\n{done.stdout[:2000]}"
        )


def test_blocks_are_found() -> None:
    """The extraction sees the README's blocks and their directives."""
    readme = blocks(ROOT / "README.md")
    assert [b.lang for b in readme][:1] == ["bash"]
    assert any(b.lang == "python" for b in readme)
    assert len(ALL) >= 20


def test_directives_are_checked(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-test: fragment -->\n```python\nawait x\n```\n\n"
        "```python\nprint(1)\n```\n\n```output\n1\n```\n\n"
        "<!-- docs-test: needs redis; needs postgres -->\n```python\npass\n```\n"
    )
    found = blocks(page)
    assert [(b.fragment, b.output, b.needs) for b in found] == [
        (True, None, []),
        (False, "1\n", []),
        (False, None, ["redis", "postgres"]),
    ]
    page.write_text("<!-- docs-test: fragmnet -->\n```python\npass\n```\n")
    with pytest.raises(ValueError, match="unknown docs-test directive 'fragmnet'"):
        blocks(page)
    page.write_text("```bash\nls\n```\n\n```output\nx\n```\n")
    with pytest.raises(ValueError, match="must follow a python block"):
        blocks(page)


def test_output_mismatch_fails() -> None:
    block = Block(ROOT / "README.md", 1, "python", "print(1)\n", output="It is ... in Tokyo.\n")
    _check_output(block, "It is 09:30 in Tokyo.\n")
    with pytest.raises(pytest.fail.Exception, match="does not print"):
        _check_output(block, "It is 09:30 in Paris.\n")


def test_readme_setup_block_is_two_commands() -> None:
    """`.ci/run` runs the second line of the README's first bash block word for word."""
    first = blocks(ROOT / "README.md")[0]
    commands = first.code.strip().splitlines()
    assert first.lang == "bash" and len(commands) == 2
    assert commands[1].startswith('pip install -e ".[dev]"') and commands[1].endswith("pytest")


def test_fake_model_fills_schemas() -> None:
    """The fake endpoint's arguments and structured answers fit the schemas they come from."""
    schema = {
        "type": "object",
        "properties": {
            "timezone": {"type": "string"},
            "when": {"anyOf": [{"type": "null"}, {"type": "string", "format": "date"}]},
            "kind": {"enum": ["a", "b"]},
            "to": {"$ref": "#/$defs/Address"},
            "count": {"type": "integer", "minimum": 5},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["timezone", "when", "kind", "to", "count", "tags"],
        "$defs": {"Address": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
    value = value_for(schema, schema["$defs"])
    assert value == {
        "timezone": "Asia/Tokyo",
        "when": "2030-01-15",
        "kind": "a",
        "to": {"city": "Paris"},
        "count": 5,
        "tags": ["tags"],
    }
    jsonschema.validate(value, schema)


def test_a_block_gets_the_servers_it_needs(
    server: DocsServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    code = (
        "import os, socket, urllib.parse\n"
        "url = urllib.parse.urlsplit(os.environ['REDIS_URL'])\n"
        "with socket.create_connection((url.hostname, url.port)) as redis:\n"
        "    redis.sendall(b'PING\\r\\n')\n"
        "    print(url.scheme, redis.recv(64).decode().strip())\n"
    )
    block = Block(ROOT / "README.md", 1, "python", code, needs=["redis"], output="redis +PONG\n")
    run_block(block, server, tmp_path, request)


def test_a_failing_block_names_its_page_and_line(
    server: DocsServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    block = Block(
        ROOT / "docs" / "tools.md",
        7,
        "python",
        "import socket\nsocket.create_connection(('192.0.2.1', 443), timeout=5)\n",
    )
    with pytest.raises(AssertionError, match=r"docs/tools.md:7 failed:(.|\n)*no connection to"):
        run_block(block, server, tmp_path, request)


def test_a_block_that_prints_must_show_it(
    server: DocsServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    block = Block(ROOT / "docs" / "tools.md", 9, "python", "print('hidden')\n")
    with pytest.raises(
        AssertionError, match=r"docs/tools\.md:9 prints, but the page does not show"
    ):
        run_block(block, server, tmp_path, request)
