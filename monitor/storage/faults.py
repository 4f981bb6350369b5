"""Database faults as provmon's errors: one context manager around every storage call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError, StatementError

from monitor.errors import StoreRejected, StoreUnavailable
from monitor.redact import short_message


def reason(exc: BaseException) -> str:
    """One short line saying what went wrong: the driver's own message, without the statement
    and its parameters that SQLAlchemy appends (a whole batch of provider text, in a log line
    per outage)."""
    orig = getattr(exc, "orig", None)
    return short_message(str(orig or exc) or type(exc).__name__)


def _rejected(exc: BaseException) -> bool:
    if isinstance(exc, DataError | IntegrityError | ValueError | OverflowError):
        return True
    return isinstance(exc, StatementError) and isinstance(exc.orig, ValueError | OverflowError)


@contextlib.contextmanager
def unavailable(*, rejects: bool = False) -> Iterator[None]:
    """Database and network faults raised inside become `StoreUnavailable` (retry later).
    With `rejects`, values the database refused (and ones that cannot be bound) become
    `StoreRejected` instead: retrying them would fail again."""
    try:
        yield
    except (SQLAlchemyError, OSError, ValueError, OverflowError) as exc:
        if rejects and _rejected(exc):
            raise StoreRejected(reason(exc)) from exc
        if isinstance(exc, ValueError | OverflowError):
            raise  # a bug of ours, not the database's fault
        raise StoreUnavailable(reason(exc)) from exc
