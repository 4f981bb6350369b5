"""Undoes a content-coding a provider applied although the probe asked for `identity`, in
bounded steps: a gzip bomb yields at most `max_out` bytes per call, never all at once; and
`RateBucket`, which holds back a stream faster than any model streams (in bytes or events).

Pure (zlib only). aiohttp's own decompression is off for probes: it would inflate a whole read
inside the event loop's data callback, before any byte cap or deadline could act.
"""

from __future__ import annotations

import zlib

IDENTITY = ("", "identity")
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class EncodingError(ValueError):
    """The body's content-coding is unknown or its bytes do not decode (a provider fault)."""


class BodyDecoder:
    """`push` raw bytes, then `pull` decoded bytes until it returns b"" (needs more input)."""

    __slots__ = ("_inflate", "_raw")

    def __init__(self, content_encoding: str | None) -> None:
        coding = (content_encoding or "").strip().lower()
        self._raw = b""
        self._inflate: zlib._Decompress | None = None
        if coding in IDENTITY:
            return
        wbits = _WBITS.get(coding)
        if wbits is None:
            raise EncodingError(f"unsupported Content-Encoding {coding[:40]!r}")
        self._inflate = zlib.decompressobj(wbits)

    @property
    def identity(self) -> bool:
        return self._inflate is None

    def push(self, data: bytes) -> None:
        self._raw = self._raw + data if self._raw else data

    def pull(self, max_out: int) -> bytes:
        """At most `max_out` decoded bytes of what was pushed (b"" when nothing is ready)."""
        raw, self._raw = self._raw, b""
        if self._inflate is None or not raw:
            return raw
        try:
            out = self._inflate.decompress(raw, max_out)
        except zlib.error as exc:
            raise EncodingError(f"body does not decode: {exc}") from None
        self._raw = self._inflate.unconsumed_tail
        return out

    @property
    def pending(self) -> bool:
        """Pushed bytes not yet decoded (call `pull` again before reading more)."""
        return bool(self._raw)


class RateBucket:
    """A token bucket (of bytes, or of events): `take` returns how long to pause (seconds, 0
    when within `rate` per second plus `burst`). Holding a runaway stream back leaves its bytes
    in the kernel (TCP slows the sender) and the event loop to the other streams."""

    __slots__ = ("_at", "_burst", "_level", "_rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._rate, self._burst = rate, burst
        self._level, self._at = burst, now

    def take(self, n: int, now: float) -> float:
        self._level = min(self._burst, self._level + (now - self._at) * self._rate)
        self._at = now
        self._level -= n
        return 0.0 if self._level >= 0 else -self._level / self._rate
