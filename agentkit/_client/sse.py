"""Server-sent events: bytes off the network → events.

Follows the WHATWG event-stream rules that matter for Chat Completions:
lines end in LF, CRLF or CR (a CRLF split across two network chunks is one
line end), `:` starts a comment (keep-alive), a blank line ends an event,
several `data:` lines join with a newline, one space after the colon is
dropped, and a byte-order mark opening the stream is ignored. Splitting on
bytes before decoding is safe because LF and CR never occur inside a
multi-byte UTF-8 sequence.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent", "aiter_events"]


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: feed it network chunks, get complete events back."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._first_line = True

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Events completed by `chunk`; an incomplete line waits for the next one."""
        if (
            not self._buffer
            and not self._data
            and self._event is None
            and chunk.startswith(b"data: ")
            and chunk.endswith(b"\n\n")
            and chunk.count(b"\n") == 2
            and b"\r" not in chunk
        ):
            # One whole `data:` event and nothing else, as a server sends each chunk
            # of a completion: the general path below would come to the same event.
            self._first_line = False
            return [
                ServerSentEvent(
                    chunk[6:-2].decode("utf-8", errors="replace"), None, self._id, self._retry
                )
            ]
        buffer = self._buffer + chunk if self._buffer else chunk
        if b"\r" in buffer:
            lines = buffer.splitlines(keepends=True)
            # The last line may be cut mid-way; a trailing CR may be the first half of CRLF.
            if lines and (not lines[-1].endswith((b"\n", b"\r")) or lines[-1].endswith(b"\r")):
                self._buffer = lines.pop()
            else:
                self._buffer = b""
            lines = [line.rstrip(b"\r\n") for line in lines]
        else:
            # Lines ended by LF alone, as nearly every server sends them: a plain split,
            # whose last piece is the line still incomplete (b"" when there is none).
            lines = buffer.split(b"\n")
            self._buffer = lines.pop()
        events: list[ServerSentEvent] = []
        for line in lines:
            text = line.decode("utf-8", errors="replace")
            if self._first_line:
                # A byte-order mark may open the stream; left on, it hides the first field.
                text = text.removeprefix("\ufeff")
                self._first_line = False
            event = self._line(text)
            if event is not None:
                events.append(event)
        return events

    def flush(self) -> list[ServerSentEvent]:
        """At the end of the body: the last event, even without its closing blank line."""
        events = self.feed(b"\n") if self._buffer else []
        event = self._line("")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith("data:"):  # the usual line first
            self._data.append(line[6:] if line.startswith("data: ") else line[5:])
            return None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            # ASCII only: str.isdigit() also accepts digits such as "²" that int() rejects.
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        if not self._data:
            self._event = None
            return None
        event = ServerSentEvent(
            data="\n".join(self._data), event=self._event, id=self._id, retry=self._retry
        )
        self._data = []
        self._event = None
        return event


async def aiter_events(chunks: AsyncIterable[bytes]) -> AsyncIterator[ServerSentEvent]:
    """The events of an SSE body given as an async iterable of byte chunks."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event
