"""The loopback model server: `FakeModel` over HTTP/1.1 on 127.0.0.1, answering after a delay.

Run as its own process (`python -m benchmarks.server --delay 0.05`) so that
it does not share the client's CPU; it prints `PORT <n>` once it listens.
A small asyncio protocol, not a web framework, so that the server costs
little beside the clients it serves: it reads requests with a
`Content-Length` body on keep-alive connections, and answers each after
`--delay` seconds with the whole JSON body, or with every SSE event of a
streamed answer in one chunked write.

`GET /stats` returns the request and failure counts; `POST /reset` zeroes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from benchmarks.scenario import JSON_HEADERS, SSE_HEADERS, FakeModel, Reply

__all__ = ["main"]

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}


def _head(status: int, headers: list[tuple[str, str]], extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS[status].decode()}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def render(reply: Reply) -> bytes:
    """The bytes of an HTTP response for `reply`."""
    if not reply.stream:
        body = reply.body
        return _head(reply.status, JSON_HEADERS, f"content-length: {len(body)}") + body
    chunks = [b"%x\r\n%s\r\n" % (len(part), part) for part in reply.parts]
    return _head(reply.status, SSE_HEADERS, "transfer-encoding: chunked") + b"".join(
        [*chunks, b"0\r\n\r\n"]
    )


class _Connection(asyncio.Protocol):
    def __init__(self, server: Server) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.head: tuple[str, str, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.head is None:
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = self.buffer[:end].decode("latin-1").split("\r\n")
                del self.buffer[: end + 4]
                method, target, _ = lines[0].split(" ", 2)
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    name = name.strip().lower()
                    if name == "content-length":
                        length = int(value)
                    elif name == "transfer-encoding":
                        # No client here sends a chunked request body; refuse it loudly.
                        self.server.model.failures += 1
                        self._write(render(Reply(400, False, [b'{"error": "chunked body"}'])))
                        if self.transport is not None:
                            self.transport.close()
                        return
                self.head = (method, target, length)
            method, target, length = self.head
            if len(self.buffer) < length:
                return
            body = bytes(self.buffer[:length])
            del self.buffer[:length]
            self.head = None
            self._handle(method, target, body)

    def _handle(self, method: str, target: str, body: bytes) -> None:
        server = self.server
        if method == "POST" and target.endswith("/chat/completions"):
            self._send(render(server.model.reply(body)), server.delay)
        elif target == "/stats":
            payload = json.dumps(server.model.stats()).encode()
            self._send(render(Reply(200, False, [payload])), 0)
        elif method == "POST" and target == "/reset":
            server.model = FakeModel()
            self._send(render(Reply(200, False, [b"{}"])), 0)
        else:
            self._send(render(Reply(404, False, [b'{"error": "not found"}'])), 0)

    def _send(self, data: bytes, delay: float) -> None:
        if delay:
            asyncio.get_running_loop().call_later(delay, self._write, data)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)


class Server:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.model = FakeModel()

    async def serve(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Connection(self), host, port, backlog=4096, reuse_address=True
        )
        sockets = server.sockets or ()
        print(f"PORT {sockets[0].getsockname()[1]}", flush=True)
        async with server:
            await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--delay", type=float, default=0.05, help="seconds before each answer")
    args = parser.parse_args(argv)
    try:
        asyncio.run(Server(args.delay).serve(args.host, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
