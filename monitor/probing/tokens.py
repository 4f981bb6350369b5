"""Counts tokens when a provider reports no usage: with a tokenizer if loaded, else an estimate."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.results import TokenSource

CHARS_PER_TOKEN = 4.0
"""OpenAI's rule of thumb for English text; what `estimate` assumes."""


def estimate_tokens(text: str) -> int:
    """About one token per four characters; at least one for non-empty text."""
    if not text:
        return 0
    return max(1, math.ceil(len(text) / CHARS_PER_TOKEN))


@dataclass(frozen=True, slots=True)
class TokenCounter:
    """Counts with `encode` when given (source `tokenizer`), else estimates (source `estimate`)."""

    encode: Callable[[str], int] | None = None

    @property
    def source(self) -> TokenSource:
        return TokenSource.TOKENIZER if self.encode else TokenSource.ESTIMATE

    def count(self, text: str) -> int:
        if not text:
            return 0
        return self.encode(text) if self.encode else estimate_tokens(text)


def tiktoken_counter(bpe_file: Path) -> TokenCounter:
    """A counter from a local tiktoken BPE file (e.g. `cl100k_base.tiktoken`); never downloads.

    Raises ValueError when tiktoken is not installed or the file cannot be read.
    """
    try:
        import tiktoken
        from tiktoken.load import load_tiktoken_bpe
    except ImportError as exc:
        msg = "tokenizer_file needs the 'tiktoken' package: pip install tiktoken"
        raise ValueError(msg) from exc
    try:
        ranks = load_tiktoken_bpe(str(bpe_file))
    except Exception as exc:  # tiktoken raises plain Exceptions for bad files
        raise ValueError(f"cannot read tokenizer file {bpe_file}: {exc}") from exc
    enc = tiktoken.Encoding(
        name=bpe_file.stem,
        pat_str=_CL100K_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={},
    )

    def encode(text: str) -> int:
        return len(enc.encode_ordinary(text))

    return TokenCounter(encode)


_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
