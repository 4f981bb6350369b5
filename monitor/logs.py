"""Logging set-up: readable lines by default, one JSON object per line with `json`.

Records go through a `QueueHandler` to a `QueueListener` thread that formats and writes them:
a slow stderr or journald delays log lines, never the probe loop. Control characters that
provider text might carry (ANSI/OSC escapes, NUL) are shown escaped, never sent raw.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import math
import queue
import sys
from datetime import UTC, datetime
from typing import Any

from monitor.redact import escape_controls

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}
_listener: logging.handlers.QueueListener | None = None


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool | None):
        return value
    return str(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": escape_controls(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                out[key] = _json_value(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, allow_nan=False)


class TextFormatter(logging.Formatter):
    """The readable line, with control characters in the message escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def stop_logging() -> None:
    """Write out what the listener still holds, and stop it."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def setup_logging(level: int = logging.INFO, fmt: str = "text") -> None:
    global _listener
    stop_logging()
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")
        )
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, handler, respect_handler_level=True)
    _listener.start()
    atexit.register(stop_logging)
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(records)]
    root.setLevel(level)
    # Third-party chatter stays at WARNING unless asked for.
    for name in ("aiohttp.access", "sqlalchemy.engine", "alembic"):
        logging.getLogger(name).setLevel(max(level, logging.WARNING))
    # APScheduler warns on every skipped overlapping run; provmon counts those in its status.
    logging.getLogger("apscheduler").setLevel(max(level, logging.ERROR))


class OnceWhileFailing:
    """Logs a failure once when it starts (WARNING) and once when it ends (INFO); the retries
    in between go to DEBUG, so a long database outage does not flood the log."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log = logger
        self._what = what
        self.failing = False

    def failed(self, exc: BaseException) -> None:
        level = logging.DEBUG if self.failing else logging.WARNING
        self._log.log(level, "%s: %s", self._what, exc)
        self.failing = True

    def ok(self) -> None:
        if self.failing:
            self._log.info("%s: working again", self._what)
        self.failing = False
