"""Logging set-up: readable lines by default, one JSON object per line with `json`."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD:
                out[key] = (
                    value if isinstance(value, str | int | float | bool | None) else str(value)
                )
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: int = logging.INFO, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
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
