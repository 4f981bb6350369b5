"""Channels against real receivers: an aiohttp webhook server and an aiosmtpd SMTP server on
ephemeral ports; `provmon alerts test` as a process."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from monitor.alerts.channels import SIGNATURE_HEADER, AppriseChannel, LogChannel, WebhookChannel
from monitor.alerts.payloads import idempotency_key, trial_payload
from monitor.errors import ChannelError
from tests.factories import config_doc, write_config
from tests.receivers import smtp_server, webhook_receiver

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


async def test_webhook_signs_the_body(session: aiohttp.ClientSession) -> None:
    async with webhook_receiver() as rx:
        channel = WebhookChannel("hook", session, rx.url, hmac_key="s3cret")
        payload = trial_payload("hook", NOW, "eu")
        await channel.send(payload)
        (d,) = rx.deliveries
    expected = hmac.new(b"s3cret", d.body, hashlib.sha256).hexdigest()
    assert d.headers[SIGNATURE_HEADER] == f"sha256={expected}"
    assert d.headers["Content-Type"] == "application/json"
    assert d.headers["Idempotency-Key"] == idempotency_key(payload)
    assert d.payload == payload
    assert {"status", "alerts", "groupKey", "commonLabels"} <= set(d.payload)
    (alert,) = d.payload["alerts"]
    assert {"status", "labels", "annotations", "startsAt", "endsAt", "fingerprint"} <= set(alert)


async def test_webhook_failures_are_channel_errors(session: aiohttp.ClientSession) -> None:
    async with webhook_receiver() as rx:
        rx.fail = 1
        channel = WebhookChannel("hook", session, rx.url)
        with pytest.raises(ChannelError, match="HTTP 503"):
            await channel.send(trial_payload("hook", NOW, "eu"))
        await channel.send(trial_payload("hook", NOW, "eu"))
        assert len(rx.deliveries) == 1
        assert SIGNATURE_HEADER not in rx.deliveries[0].headers  # no key, no signature
        url = rx.url
    closed = WebhookChannel("hook", session, url, timeout_s=2)
    with pytest.raises(ChannelError):
        await closed.send(trial_payload("hook", NOW, "eu"))


async def test_apprise_email_to_a_real_smtp_server() -> None:
    with smtp_server() as (mailbox, port):
        url = f"mailto://127.0.0.1:{port}?from=provmon@example.com&to=oncall@example.com"
        channel = AppriseChannel("mail", url, timeout_s=10)
        await channel.send(trial_payload("mail", NOW, "eu"))
    (message,) = mailbox.messages
    assert message["To"] == "oncall@example.com"
    assert message["Subject"] == "[FIRING] ProvmonTest: provmon test notification from vantage eu"


async def test_apprise_refuses_what_it_cannot_send() -> None:
    with pytest.raises(ValueError, match="Apprise does not understand"):
        AppriseChannel("bad", "nonsense-scheme://x")
    with smtp_server() as (_, port):
        pass  # stopped: nothing listens there any more
    channel = AppriseChannel("mail", f"mailto://127.0.0.1:{port}?from=a@example.com", timeout_s=5)
    with pytest.raises(ChannelError):
        await channel.send(trial_payload("mail", NOW, "eu"))


async def test_log_channel(caplog: pytest.LogCaptureFixture) -> None:
    await LogChannel().send(trial_payload("log", NOW, "eu"))
    (record,) = [r for r in caplog.records if r.name == "monitor.alerts"]
    assert "[FIRING] ProvmonTest" in record.getMessage()


@pytest.mark.slow
@pytest.mark.subprocess
async def test_provmon_alerts_test_reports_each_channel(tmp_path: Path) -> None:
    async with webhook_receiver() as rx:
        with smtp_server() as (mailbox, port):
            mail = f"mailto://127.0.0.1:{port}?from=provmon@example.com&to=oncall@example.com"
            channels = [
                {
                    "name": "hook",
                    "type": "webhook",
                    "url_env": "HOOK_URL",
                    "hmac_secret_env": "HOOK_KEY",
                },
                {"name": "mail", "type": "apprise", "url": mail},
                {"name": "log", "type": "log"},
                {
                    "name": "dead",
                    "type": "webhook",
                    "url": "http://127.0.0.1:9/nothing-here",
                    "timeout_s": 2,
                },
            ]
            cfg = write_config(
                tmp_path / "provmon.toml",
                config_doc(vantage="eu-west", alerts={"channels": channels}),
            )
            env = {"HOOK_URL": rx.url, "HOOK_KEY": "k3y", "PATH": "/usr/bin:/bin"}
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "monitor",
                "alerts",
                "test",
                "-c",
                str(cfg),
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 30)
    lines = out.decode().splitlines()
    assert proc.returncode == 1, err.decode()  # one channel failed
    assert lines[:3] == ["hook: sent", "mail: sent", "log: sent"]
    assert lines[3].startswith("dead: FAILED: ")
    assert len(rx.deliveries) == 1
    body = rx.deliveries[0].body
    sig = hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert rx.deliveries[0].headers[SIGNATURE_HEADER] == f"sha256={sig}"
    assert json.loads(body)["commonLabels"]["vantage"] == "eu-west"
    assert len(mailbox.messages) == 1
    assert "k3y" not in out.decode() + err.decode()
