"""Reading a response body up to a size limit, however it is compressed.

httpx decodes each network chunk whole: 64 KiB of a gzip bomb becomes 64 MiB
in one call. gzip and deflate, the encodings servers use, are decoded here
instead, a bounded piece at a time, so memory stays within the limit; other
encodings go through httpx's decoders one chunk at a time.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from typing import Any

import anyio

__all__ = ["BadEncodingError", "read_limited", "read_plain"]

_PIECE = 1024 * 1024
_WBITS = {"gzip": zlib.MAX_WBITS | 16, "x-gzip": zlib.MAX_WBITS | 16, "deflate": zlib.MAX_WBITS}


class BadEncodingError(ValueError):
    """The body is not valid in its `content-encoding`."""


async def read_plain(response: Any) -> bytes:
    """The body of an unread httpx or httpx2 response sent without a
    `content-encoding`, as `aread` gives it (`response.content` included).

    Such a body's raw bytes are its content: `aread` would pass them through an
    identity decoder and a re-chunker in a Python layer of its own, which costs
    about as much as the rest of reading a small body. The caller closes the
    response (reading to the end closes it too).
    """
    content: bytes | None = getattr(response, "_content", None)
    if content is None:  # not read yet (a response made with its content is)
        parts = [chunk async for chunk in response.aiter_raw()]
        content = response._content = b"".join(parts)
    return content


async def read_limited(response: Any, limit: int, *, keep: bool = True) -> tuple[bytes, bool]:
    """The decoded body of an unread (streamed) httpx or httpx2 response, read up to
    `limit` bytes: the bytes and True when it all fit, else the first `limit` bytes
    (or nothing, unless `keep`) and False, having read no further. The caller closes
    the response.

    Raises:
        BadEncodingError: A gzip or deflate body that does not decompress.
    """
    parts: list[bytes] = []
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    wbits = _WBITS.get(encoding)
    chunks: Any
    try:
        if wbits is not None and not response.is_stream_consumed:
            chunks = response.aiter_raw()
            fits = await _inflate(chunks, wbits, limit, parts)
        else:
            chunks = response.aiter_bytes()
            fits = await _collect(chunks, limit, parts)
        if fits:
            return b"".join(parts), True
    finally:
        # Finished here rather than by the garbage collector (trio warns), even when
        # the attempt's deadline cancels the read.
        with anyio.CancelScope(shield=True):
            await chunks.aclose()
    if not keep:
        return b"", False
    over = sum(map(len, parts)) - limit
    parts[-1] = parts[-1][: len(parts[-1]) - over]
    return b"".join(parts), False


async def _collect(chunks: AsyncIterator[bytes], limit: int, parts: list[bytes]) -> bool:
    size = 0
    async for part in chunks:
        size += len(part)
        parts.append(part)
        if size > limit:
            return False
    return True


async def _inflate(
    chunks: AsyncIterator[bytes], wbits: int, limit: int, parts: list[bytes]
) -> bool:
    decompressor = zlib.decompressobj(wbits)
    first = wbits == zlib.MAX_WBITS  # deflate: zlib-wrapped, or raw as some servers send
    size = 0
    async for data in chunks:
        while data and not decompressor.eof:
            try:
                # Never more than one byte past the limit, whatever the ratio, and in
                # pieces of at most 1 MiB (zlib holds a piece twice while making it).
                out = decompressor.decompress(data, min(limit - size + 1, _PIECE))
            except zlib.error as exc:
                if not first:
                    raise BadEncodingError(str(exc)) from None
                decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                first = False
                continue
            first = False
            size += len(out)
            parts.append(out)
            if size > limit:
                return False
            data = decompressor.unconsumed_tail
    try:
        out = decompressor.flush()
    except zlib.error as exc:  # pragma: no cover - flush after all input rarely fails
        raise BadEncodingError(str(exc)) from None
    parts.append(out)
    return size + len(out) <= limit
