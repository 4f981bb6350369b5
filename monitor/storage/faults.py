"""Database faults as provmon's errors: one context manager around every storage call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError, StatementError

from monitor.errors import StoreRejected, StoreUnavailable


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
            raise StoreRejected(str(exc)) from exc
        if isinstance(exc, ValueError | OverflowError):
            raise  # a bug of ours, not the database's fault
        raise StoreUnavailable(str(exc)) from exc
