"""Real notification receivers for tests and benches: a webhook server (aiohttp) on an
ephemeral port that records every delivery, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Delivery:
    at: float  # time.monotonic()
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.body)
        return doc

    @property
    def key(self) -> str:
        return self.headers.get("Idempotency-Key", "")


@dataclass
class WebhookReceiver:
    """Records each POST; answers `fail_with` to the next `fail` of them, and holds requests
    while `hold` is set (a slow receiver)."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    fail: int = 0
    fail_with: int = 503
    hold: asyncio.Event | None = None
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.hold is not None:
            await self.hold.wait()
        if self.fail > 0:
            self.fail -= 1
            return web.Response(status=self.fail_with, text="not now")
        self.deliveries.append(Delivery(time.monotonic(), dict(request.headers), body))
        self.arrived.set()
        return web.Response(text="ok")

    def payloads(self) -> list[dict[str, Any]]:
        return [d.payload for d in self.deliveries]

    def summary(self) -> list[tuple[str, str]]:
        """(alertname, status) per delivery, in order."""
        return [(p["alerts"][0]["labels"]["alertname"], str(p["status"])) for p in self.payloads()]

    async def wait_for(self, n: int, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while len(self.deliveries) < n:
                self.arrived.clear()
                await self.arrived.wait()


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        await runner.cleanup()


class Mailbox:
    """An aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


class _EphemeralController(Controller):
    """aiosmtpd's controller, on the port the OS picked (port 0)."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server on 127.0.0.1 (plain, no TLS, no auth) in its own thread."""
    mailbox = Mailbox()
    controller = _EphemeralController(mailbox, hostname="127.0.0.1", port=0)
    controller.start()
    try:
        yield mailbox, controller.port
    finally:
        controller.stop()
