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

import sys
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "EventTooLargeError",
    "SSEDecoder",
    "ServerSentEvent",
    "aiter_events",
]

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024
"""8 MiB: a chunk of a completion is a few hundred bytes; a whole long answer sent as one
event is still far below this."""


class EventTooLargeError(ValueError):
    """One event, or one line, grew past the decoder's `max_event_bytes`.

    Attributes:
        limit: The limit in bytes.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"a server-sent event is over the limit of {limit:,} bytes")


@dataclass(slots=True)
class ServerSentEvent:
    """One dispatched event."""

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: feed it network chunks, get complete events back.

    Decoding takes time linear in the bytes fed, however they are cut into chunks.

    Args:
        max_event_bytes: The most bytes the data of one event, and any one line,
            may hold; past it `feed` raises `EventTooLargeError`, so a server
            cannot make the decoder buffer without end. None: no limit.
    """

    def __init__(self, max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES) -> None:
        # The line not yet ended, in the pieces it came in: joined once when it ends,
        # rather than copied whole on every chunk (quadratic for one long line).
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._data: list[str] = []
        self._size = 0  # bytes in _data
        self._max = max_event_bytes if max_event_bytes is not None else sys.maxsize
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._first_line = True

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Events completed by `chunk`; an incomplete line waits for the next one.

        Raises:
            EventTooLargeError: The event or line being read is over `max_event_bytes`.
        """
        data = self.whole_data(chunk)
        if data is not None:
            return [ServerSentEvent(data, None, self._id, self._retry)]
        pending = self._pending
        if pending:
            if b"\n" not in chunk and b"\r" not in chunk and not pending[-1].endswith(b"\r"):
                # Still no line end: keep the piece (a held CR may start a CRLF).
                pending.append(chunk)
                self._pending_size += len(chunk)
                if self._pending_size > self._max:
                    raise EventTooLargeError(self._max)
                return []
            buffer = pending[0] + chunk if len(pending) == 1 else b"".join([*pending, chunk])
            pending.clear()
        else:
            buffer = chunk
        if b"\r" in buffer:
            lines = buffer.splitlines(keepends=True)
            # The last line may be cut mid-way; a trailing CR may be the first half of CRLF.
            if lines and (not lines[-1].endswith((b"\n", b"\r")) or lines[-1].endswith(b"\r")):
                rest = lines.pop()
            else:
                rest = b""
            lines = [line.rstrip(b"\r\n") for line in lines]
        else:
            # Lines ended by LF alone, as nearly every server sends them: a plain split,
            # whose last piece is the line still incomplete (b"" when there is none).
            lines = buffer.split(b"\n")
            rest = lines.pop()
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
        if rest:
            pending.append(rest)
            self._pending_size = len(rest)
            if self._pending_size > self._max:
                raise EventTooLargeError(self._max)
        else:
            self._pending_size = 0
        return events

    def whole_data(self, chunk: bytes) -> str | None:
        """The data of `chunk` when it is one whole `data:` event and nothing else, with
        nothing pending before it, as a server sends each chunk of a completion: the
        event `feed` would return, without the event. Else None, and nothing changes.

        Raises:
            EventTooLargeError: The event is over `max_event_bytes`.
        """
        if (
            self._pending
            or self._data
            or self._event is not None
            or not chunk.startswith(b"data: ")
            or not chunk.endswith(b"\n\n")
            or chunk.count(b"\n") != 2
            or b"\r" in chunk
        ):
            return None
        if len(chunk) > self._max:
            raise EventTooLargeError(self._max)
        self._first_line = False
        return chunk[6:-2].decode("utf-8", errors="replace")

    def flush(self) -> list[ServerSentEvent]:
        """At the end of the body: the last event, even without its closing blank line."""
        events = self.feed(b"\n") if self._pending else []
        event = self._line("")
        if event is not None:
            events.append(event)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith("data:"):  # the usual line first
            value = line[6:] if line.startswith("data: ") else line[5:]
            self._data.append(value)
            self._size += len(value)
            if self._size > self._max:
                raise EventTooLargeError(self._max)
            return None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._size += len(value)
            if self._size > self._max:
                raise EventTooLargeError(self._max)
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
        self._size = 0
        self._event = None
        return event


async def aiter_events(
    chunks: AsyncIterable[bytes], *, max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES
) -> AsyncIterator[ServerSentEvent]:
    """The events of an SSE body given as an async iterable of byte chunks."""
    decoder = SSEDecoder(max_event_bytes)
    async for chunk in chunks:
        for event in decoder.feed(chunk):
            yield event
    for event in decoder.flush():
        yield event
