"""Test-wide set-up: both anyio backends, no internet, and every request body
sent to a chat-completions endpoint checked against OpenAI's published schema."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import respx

from agentkit._client.client import ChatClient
from tests.http_stacks import BASE as CLIENT_BASE
from tests.openai_spec.validate import validate_request
from tests.reliability_helpers import record_sleeps
from tests.servers import phoenix_server, postgres_server, redis_server, temporal_server


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "allow_unknown_request_keys: request bodies in this test may carry keys the "
        "schema does not define (provider-specific fields sent through extra_body)",
    )
    config.addinivalue_line(
        "markers",
        "slow: a soak, load or fuzz test taking seconds; the quick pass leaves these out "
        '(pytest -m "not slow"); CI runs them',
    )
    config.addinivalue_line(
        "markers",
        "invalid_request_body: this test sends a request body that is meant to be invalid",
    )


_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise OSError(f"tests must not reach the network (tried {host})")
    return _real_connect(self, address)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The retry delays the client chooses, recorded instead of waited out."""
    return record_sleeps(monkeypatch).delays


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    """A respx router for the client tests, answering under their base URL."""
    with respx.mock(base_url=CLIENT_BASE, assert_all_called=False) as mock:
        yield mock


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture(autouse=True)
def _validate_sent_bodies(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every body POSTed to .../chat/completions must validate against the spec."""
    if request.node.get_closest_marker("invalid_request_body"):
        yield
        return
    forbid_unknown = request.node.get_closest_marker("allow_unknown_request_keys") is None
    # Checked where every attempt of a ChatClient leaves it, on both HTTP stacks and
    # whichever way it is sent: patching the libraries' `send` instead would turn
    # off the client's direct sending (see agentkit/_client/direct.py).
    monkeypatch.setattr(ChatClient, "_send_once", _checked(ChatClient._send_once, forbid_unknown))
    yield


def _checked(real_send: Any, forbid_unknown: bool) -> Any:
    async def checked_send(self: Any, req: Any, **kwargs: Any) -> Any:
        if req.method == "POST" and req.url.path.endswith("/chat/completions"):
            body = json.loads(req.content)
            validate_request(body, forbid_unknown_keys=forbid_unknown)
        return await real_send(self, req, **kwargs)

    return checked_send


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of this test session's own, on 127.0.0.1 (tests/servers.py)."""
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server of this test session's own, on 127.0.0.1 (tests/servers.py)."""
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def temporal_address() -> Iterator[str]:
    """A Temporal dev server of this test session's own, on 127.0.0.1 (tests/servers.py):
    its frontend's host:port."""
    with temporal_server() as address:
        yield address


@pytest.fixture(scope="session")
def phoenix_url() -> Iterator[str]:
    """An Arize Phoenix trace viewer of this test session's own, on 127.0.0.1."""
    with phoenix_server() as url:
        yield url
