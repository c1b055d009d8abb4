"""The content-length a non-streamed response is read by, and the reading of such a
body (`read_plain`, as `aread` reads it), on both HTTP stacks."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from agentkit._client.body import read_plain
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


@pytest.mark.anyio
@pytest.mark.parametrize("stack", ["httpx", "httpx2"])
@pytest.mark.parametrize("pieces", [[], [b""], [b'{"a": 1}'], [b'{"a"', b": ", b"", b"\xc3\xa9}"]])
async def test_read_plain_gives_what_aread_gives(stack: str, pieces: list[bytes]) -> None:
    module = importlib.import_module(stack)

    class Body(module.AsyncByteStream):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            self.closed = False

        async def __aiter__(self) -> Any:
            for piece in pieces:
                yield piece

        async def aclose(self) -> None:
            self.closed = True

    def response() -> Any:
        body = b"".join(pieces)
        headers = {"content-length": str(len(body)), "content-type": "application/json"}
        return module.Response(200, headers=headers, stream=Body())

    read, plain = response(), response()
    expected = await read.aread()
    assert await read_plain(plain) == expected == b"".join(pieces)
    assert plain.content == expected and plain.text == read.text
    assert plain.is_stream_consumed and plain.is_closed and plain.stream.closed
    # A response made with its content is read already: its content, as `aread` gives it.
    made = module.Response(200, content=b"ready")
    assert await read_plain(made) == b"ready"
