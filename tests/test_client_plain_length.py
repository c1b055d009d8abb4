"""The content-length a non-streamed response is read by, on both HTTP stacks."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from agentkit._client.client import _plain_length


@pytest.fixture(params=["httpx", "httpx2"])
def headers_class(request: pytest.FixtureRequest) -> Any:
    return importlib.import_module(request.param).Headers


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("Content-Type", "application/json"), ("Content-Length", "512")], 512),
        ([("content-length", "0")], 0),
        ([("content-length", "7"), ("Content-Encoding", "identity")], 7),
        ([("content-length", "7"), ("content-encoding", " IDENTITY ")], 7),
        ([("content-length", "7"), ("content-encoding", "")], 7),
        ([("content-length", "7"), ("content-encoding", "gzip")], None),
        (
            [("content-length", "7"), ("content-encoding", "identity"), ("content-encoding", "br")],
            None,
        ),
        ([("content-length", "7"), ("CONTENT-LENGTH", "7")], None),
        ([("content-length", "-1")], None),
        ([("content-length", "12a")], None),
        ([("content-type", "application/json")], None),
        ([], None),
    ],
)
def test_plain_length(
    headers_class: Any, pairs: list[tuple[str, str]], expected: int | None
) -> None:
    assert _plain_length(headers_class(pairs)) == expected


def test_plain_length_of_headers_without_the_private_list() -> None:
    class Raw:
        def __init__(self, *pairs: tuple[bytes, bytes]) -> None:
            self.raw = list(pairs)

    assert _plain_length(Raw((b"Content-Length", b"42"), (b"X-Other", b"1"))) == 42
    assert _plain_length(Raw((b"Content-Length", b"42"), (b"Content-Encoding", b"br"))) is None
