"""Reading an answer's body with a cap on what is read and on what it inflates to.

httpx reads a whole body into ``response.content`` and inflates gzip on the way, however large
either gets (a 510 KB gzip bomb became 2.2 GB). ``read_capped`` reads the raw stream itself
(``iter_raw``) and inflates it with ``zlib``'s ``max_length``, so neither the bytes read nor the
bytes inflated ever exceed the cap by more than one network read: past it, ``TooLarge`` (or,
with ``truncate``, the first ``limit`` bytes). A ``Content-Length`` over the cap fails before
a byte of the body is read.

Encodings: identity, ``gzip`` or ``deflate`` (with or without the zlib header, as httpx reads
it); the clients ask only for those (``ACCEPT_ENCODING``), and any other, or two stacked, is a
``httpx.DecodingError``, as is a corrupt stream. Inflating goes ``_STEP`` bytes at a time:
zlib asked for up to the cap at once would hold its output twice while building it.
"""

from __future__ import annotations

import zlib
from typing import Final

import httpx

__all__ = ["ACCEPT_ENCODING", "TooLarge", "read_capped", "size"]

#: What the clients accept: what ``read_capped`` can inflate within its cap.
ACCEPT_ENCODING: Final = "gzip, deflate"
_GZIP: Final = 16 + zlib.MAX_WBITS
_CODINGS: Final = frozenset({"gzip", "x-gzip", "deflate"})
#: Inflated bytes per zlib call.
_STEP: Final = 2**20


def size(count: int) -> str:
    """``64 MiB``, ``2 KiB``, ``100 bytes``: a cap as people read it."""
    for unit, scale in (("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{count} bytes"


class TooLarge(Exception):
    """The answer's body is over the cap: as sent (``inflated`` False) or once inflated."""

    def __init__(self, limit: int, *, inflated: bool) -> None:
        self.limit = limit
        self.inflated = inflated
        how = "once inflated" if inflated else "as sent"
        super().__init__(f"the answer is over {size(limit)} ({how}); reading stopped there")


class _Inflate:
    """A gzip or deflate body undone, never more at a time than asked for."""

    def __init__(self, coding: str) -> None:
        self._coding = coding
        self._fresh = True
        self._z = zlib.decompressobj(_GZIP if coding != "deflate" else zlib.MAX_WBITS)

    def feed(self, data: bytes, most: int) -> list[bytes]:
        """Inflated pieces of ``data``, ``most`` bytes in all at most (exactly ``most``: there
        may be more; what is left waits for the next call)."""
        pieces: list[bytes] = []
        got = 0
        while got < most:
            piece = self._inflate(data, min(_STEP, most - got))
            pieces.append(piece)
            got += len(piece)
            data = self._z.unconsumed_tail
            if not data:
                break
        return pieces

    def flush(self) -> bytes:
        """What is left once the input ended (a few bytes at most: output is not held back)."""
        try:
            return self._z.flush()
        except zlib.error as exc:
            raise httpx.DecodingError(f"the {self._coding} body is corrupt ({exc})") from exc

    def _inflate(self, data: bytes, most: int) -> bytes:
        try:
            out = self._z.decompress(data, most)
        except zlib.error as exc:
            if not (self._fresh and self._coding == "deflate"):
                raise httpx.DecodingError(f"the {self._coding} body is corrupt ({exc})") from exc
            self._z = zlib.decompressobj(-zlib.MAX_WBITS)  # deflate without the zlib header
            try:
                out = self._z.decompress(data, most)
            except zlib.error as again:
                raise httpx.DecodingError(f"the deflate body is corrupt ({again})") from again
        self._fresh = False
        return out


def _decoder(response: httpx.Response) -> _Inflate | None:
    """How to undo the body's content-coding (None: identity)."""
    codings = [c.strip().lower() for c in response.headers.get("content-encoding", "").split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _CODINGS:
        raise httpx.DecodingError(
            f"the answer is encoded as {', '.join(codings)}, which was not asked for"
        )
    return _Inflate(codings[0])


def _declared(response: httpx.Response) -> int | None:
    value = response.headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


def read_capped(response: httpx.Response, limit: int, *, truncate: bool = False) -> bytes:
    """The decoded body of a streamed ``response``, at most ``limit`` bytes read and inflated;
    past that raises ``TooLarge``, or with ``truncate`` returns the first ``limit`` bytes (and
    reads no further). Raises httpx's errors as reading the stream does.

    The pieces are joined once at the end: a growing buffer would be copied as it grows,
    briefly holding twice the cap."""
    declared = _declared(response)
    if not truncate and declared is not None and declared > limit:
        raise TooLarge(limit, inflated=False)
    decoder = _decoder(response)
    pieces: list[bytes] = []
    kept = read = 0
    for chunk in response.iter_raw():
        read += len(chunk)
        if read > limit and not truncate:
            raise TooLarge(limit, inflated=False)
        more = [chunk] if decoder is None else decoder.feed(chunk, limit - kept + 1)
        pieces += more
        kept += sum(len(p) for p in more)
        if kept > limit or (truncate and read >= limit):
            break
    else:
        if decoder is not None:
            pieces.append(decoder.flush())
            kept += len(pieces[-1])
    if kept > limit and not truncate:
        raise TooLarge(limit, inflated=True)
    body = b"".join(pieces)
    return body[:limit] if truncate else body
