"""Notification channels: a JSON webhook (Alertmanager's payload, optionally HMAC-signed),
Apprise URLs (Slack, Discord, Telegram, email, PagerDuty, ...) and the log.

Each has `send(payload)`, which returns when the channel accepted the notification and raises
`ChannelError` otherwise. The only module that imports apprise; its blocking `notify` runs in a
thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import warnings
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
import apprise

from monitor.alerts.payloads import idempotency_key, title_and_body
from monitor.config import Channel
from monitor.errors import ChannelError
from monitor.redact import short_message

log = logging.getLogger("monitor.alerts")

SIGNATURE_HEADER = "X-Provmon-Signature"


class Notifier(Protocol):
    name: str

    async def send(self, payload: dict[str, Any]) -> None: ...


def signature(key: bytes, body: bytes) -> str:
    """The `X-Provmon-Signature` value: `sha256=` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


class WebhookChannel:
    """POSTs the payload as JSON; any 2xx is success."""

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        url: str,
        *,
        hmac_key: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self._session = session
        self._url = url
        self._key = hmac_key.encode() if hmac_key else None
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def send(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key(payload)}
        if self._key is not None:
            headers[SIGNATURE_HEADER] = signature(self._key, body)
        secrets = [self._url]
        try:
            async with self._session.post(
                self._url, data=body, headers=headers, timeout=self._timeout
            ) as resp:
                text = await resp.read()
                if not 200 <= resp.status < 300:
                    raise ChannelError(f"HTTP {resp.status}: {short_message(text, secrets)}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            detail = short_message(str(exc) or type(exc).__name__, secrets)
            raise ChannelError(f"{type(exc).__name__}: {detail}") from None


class AppriseChannel:
    """One Apprise URL (`slack://...`, `discord://...`, `tgram://...`, `mailto://...`,
    `pagerduty://...`; see Apprise's documentation)."""

    def __init__(self, name: str, url: str, *, timeout_s: float = 10.0) -> None:
        self.name = name
        self._url = url
        self._timeout_s = timeout_s
        with warnings.catch_warnings():
            # Apprise's plugins import the stdlib's deprecated `imghdr` (Python 3.11–3.12).
            warnings.filterwarnings("ignore", ".*imghdr", DeprecationWarning)
            self._apprise = apprise.Apprise()
            added = self._apprise.add(url)
        if not added:
            raise ValueError(f"channel {name!r}: Apprise does not understand its URL")

    async def send(self, payload: dict[str, Any]) -> None:
        title, body = title_and_body(payload)
        try:
            async with asyncio.timeout(self._timeout_s):
                ok = await asyncio.to_thread(self._apprise.notify, body=body, title=title)
        except TimeoutError:
            raise ChannelError(f"no answer in {self._timeout_s:g} s") from None
        if not ok:
            raise ChannelError("Apprise could not deliver it (its log says why)")


class LogChannel:
    """Writes the notification to provmon's log (WARNING for firing, INFO for resolved)."""

    def __init__(self, name: str = "log") -> None:
        self.name = name

    async def send(self, payload: dict[str, Any]) -> None:
        title, body = title_and_body(payload)
        level = logging.INFO if payload.get("status") == "resolved" else logging.WARNING
        alert = payload["alerts"][0]
        fields = {
            "alertname": alert["labels"]["alertname"],
            "alert_status": payload.get("status"),
            "fingerprint": alert.get("fingerprint"),
            "idempotency_key": idempotency_key(payload),
        }
        log.log(level, "%s — %s", title, body, extra=fields)


def channel_problems(channels: tuple[Channel, ...]) -> list[str]:
    """What `provmon check` says of the channels it cannot use (an Apprise URL that Apprise
    does not understand), as `alerts.channels[i]: reason` lines; sends nothing."""
    problems = []
    for i, ch in enumerate(channels):
        if ch.settings.type == "apprise" and ch.url is not None:
            try:
                AppriseChannel(ch.name, ch.url.reveal())
            except ValueError as exc:
                problems.append(f"alerts.channels[{i}]: {exc}")
    return problems


def build_channels(
    channels: tuple[Channel, ...], session: aiohttp.ClientSession
) -> Mapping[str, Notifier]:
    """A notifier per configured channel. Raises ValueError for an Apprise URL it cannot use."""
    out: dict[str, Notifier] = {}
    for ch in channels:
        s = ch.settings
        if s.type == "log":
            out[s.name] = LogChannel(s.name)
            continue
        assert ch.url is not None  # config validation guarantees it
        if s.type == "webhook":
            out[s.name] = WebhookChannel(
                s.name,
                session,
                ch.url.reveal(),
                hmac_key=ch.hmac_key.reveal() if ch.hmac_key else None,
                timeout_s=s.timeout_s,
            )
        else:
            out[s.name] = AppriseChannel(s.name, ch.url.reveal(), timeout_s=s.timeout_s)
    return out
