"""The real servers the suite starts for itself answer on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
from urllib.parse import urlsplit

import pytest


def test_redis_answers_ping(redis_url: str) -> None:
    url = urlsplit(redis_url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"


def test_postgres_runs_a_query(postgres_url: str) -> None:
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql (the PostgreSQL client) is not installed")
    out = subprocess.run(
        [psql, postgres_url, "-tAc", "select 40 + 2"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "42"
