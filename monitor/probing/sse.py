"""Incremental Server-Sent Events parser: bytes in any split → events, comments and errors.

Follows the WHATWG event-stream rules: lines end in CRLF, LF or CR (a CRLF may be split across
reads); `field:value` with one optional space after the colon; lines starting with `:` are
comments; an empty line dispatches the event whose `data:` lines were gathered. It never raises on
input: a line longer than `max_line_bytes` is reported as an `SSEError` value and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """A dispatched event; `data` is its `data:` lines joined with newlines."""

    data: str
    event: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True)
class SSEComment:
    """A comment line (`: OPENROUTER PROCESSING`), without the leading colon."""

    text: str


@dataclass(frozen=True, slots=True)
class SSEError:
    """Input the parser could not take (an over-long line)."""

    reason: str


SSEItem = SSEEvent | SSEComment | SSEError

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
"""Longest line, and longest event, taken: far above any real chunk, small enough that one
event's JSON is parsed in about a millisecond."""


class SSEParser:
    """Feed it bytes as they arrive; it returns the items those bytes completed.

    Work is linear in the input: bytes of an unfinished line are kept as parts and joined once
    the line ends, however many reads it took.
    """

    __slots__ = (
        "_data",
        "_data_size",
        "_event",
        "_id",
        "_max_line",
        "_overflow",
        "_parts",
        "_size",
        "_skip_lf",
    )

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._parts: list[bytes] = []
        self._size = 0
        self._skip_lf = False
        self._overflow = False
        self._max_line = max_line_bytes
        self._data: list[str] = []
        self._data_size = 0
        self._event: str | None = None
        self._id: str | None = None

    @property
    def has_pending(self) -> bool:
        """True when bytes or `data:` lines are waiting for the end of their event."""
        return bool(self._parts) or bool(self._data)

    def _too_long(self, out: list[SSEItem]) -> None:
        out.append(SSEError(f"line longer than {self._max_line} bytes"))
        self._parts, self._size = [], 0
        self._overflow = True

    def feed(self, chunk: bytes) -> list[SSEItem]:
        """Parse `chunk` and return every item it completed, in order."""
        out: list[SSEItem] = []
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return out
        if b"\n" not in chunk and b"\r" not in chunk:
            # The middle of a line: keep it (or drop it, inside an over-long line).
            if not self._overflow:
                self._parts.append(chunk)
                self._size += len(chunk)
                if self._size > self._max_line:
                    self._too_long(out)
            return out
        buf = b"".join((*self._parts, chunk)) if self._parts else chunk
        self._parts, self._size = [], 0
        lines = buf.splitlines(keepends=True)
        if lines and lines[-1][-1:] not in (b"\n", b"\r"):
            rest = lines.pop()
        else:
            rest = b""
        if not rest and lines and lines[-1][-1:] == b"\r":
            self._skip_lf = True
        for raw in lines:
            if self._overflow:
                # The tail of an over-long line: drop it, resume at the next line.
                self._overflow = False
                continue
            self._line(raw.rstrip(b"\r\n"), out)
        if rest and not self._overflow:
            self._parts, self._size = [rest], len(rest)
            if self._size > self._max_line:
                self._too_long(out)
        return out

    def close(self) -> list[SSEItem]:
        """End of input: an unterminated last line and event are dispatched, not dropped."""
        out: list[SSEItem] = []
        if self._parts and not self._overflow:
            self._line(b"".join(self._parts).rstrip(b"\r\n"), out)
        self._parts, self._size = [], 0
        self._overflow = False
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[SSEItem]) -> None:
        if not line:
            if self._data:
                out.append(SSEEvent("\n".join(self._data), self._event, self._id))
            self._data = []
            self._data_size = 0
            self._event = None
            return
        text = line.decode("utf-8", "replace")
        if text[0] == ":":
            out.append(SSEComment(text[1:].lstrip(" ")))
            return
        name, sep, value = text.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data_size += len(value) + 1
            if self._data_size > self._max_line:
                out.append(SSEError(f"event longer than {self._max_line} bytes"))
                self._data, self._data_size = [], 0
                return
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        # `retry` and unknown fields are ignored, as the standard says.
