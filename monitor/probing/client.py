"""The probe client: one streamed chat completion on aiohttp, timed as bytes arrive.

This is the I/O seam. It stamps `perf_counter_ns` on each read the moment `readany` returns and
hands the bytes to the pure parser (`sse`, `chunks`) and meter (`metrics`); `classify` names the
outcome. A provider's fault always ends as a `ProbeResult`, never as an exception.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import aiohttp

from monitor.clock import utc_now
from monitor.config import Target, Timeouts, Workload
from monitor.probing.chunks import Chunk, Done, Malformed, read_event
from monitor.probing.classify import Ending, classify_status, classify_stream, parse_retry_after
from monitor.probing.metrics import Measurements, StreamMeter, measure
from monitor.probing.openrouter_errors import http_error_kind
from monitor.probing.prompts import build_body, new_nonce
from monitor.probing.sse import SSEError, SSEEvent, SSEParser
from monitor.probing.throttle import Gates
from monitor.probing.tokens import TokenCounter
from monitor.redact import short_message
from monitor.results import Outcome, ProbeResult

log = logging.getLogger(__name__)

ERROR_BODY_BYTES = 4096
NOT_SSE_BODY_BYTES = 65536


@dataclass(slots=True)
class ProbeTrace:
    """Raw timings of one probe, for benchmarks: request start and each token event's arrival.

    `tokens` holds (arrival perf_counter_ns, the sender's `x_sent_ns` stamp if it sent one).
    """

    t0_ns: int = 0
    tokens: list[tuple[int, int | None]] = field(default_factory=list)


@dataclass(slots=True)
class _Attempt:
    """What one HTTP attempt produced, before it becomes a ProbeResult."""

    outcome: Outcome | None = None
    error_kind: str | None = None
    message: str | None = None
    status: int | None = None
    retry_after_s: float | None = None
    rejected_stream_options: bool = False


def connection_error_kind(exc: BaseException) -> str:
    """error_kind for a failure to connect or to get response headers."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "conn.dns"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "conn.tls"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "conn.reset"
    if isinstance(exc, OSError):
        code = exc.errno
        if code is None and isinstance(exc, aiohttp.ClientConnectorError):
            code = exc.os_error.errno
        if code == errno.ECONNREFUSED:
            return "conn.refused"
        if code in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED):
            return "conn.reset"
        if code in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return "conn.unreachable"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "conn.protocol"
    return "conn.error"


class Prober:
    """Runs probes over one aiohttp session; remembers which targets reject `stream_options`."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeouts: Timeouts,
        vantage: str,
        gates: Gates | None = None,
        counter: TokenCounter | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._session = session
        self._timeouts = timeouts
        self._vantage = vantage
        self._gates = gates
        self._counter = counter or TokenCounter()
        self._now = now
        self._rejects_stream_options: set[str] = set()

    def rejects_stream_options(self, target: Target) -> bool:
        return target.key in self._rejects_stream_options

    async def probe(
        self, target: Target, workload: Workload, *, trace: ProbeTrace | None = None
    ) -> ProbeResult:
        """One probe of `workload` against `target`, waiting for the provider's gate first."""
        if self._gates is None:
            return await self._probe(target, workload, trace)
        async with self._gates.for_provider(target.provider).slot():
            return await self._probe(target, workload, trace)

    async def _probe(
        self, target: Target, workload: Workload, trace: ProbeTrace | None
    ) -> ProbeResult:
        use_so = target.stream_options and target.key not in self._rejects_stream_options
        result, rejected = await self._attempt_safely(target, workload, use_so, trace)
        if rejected:
            # A 400 naming stream_options: remember it and retry once without.
            self._rejects_stream_options.add(target.key)
            log.info("%s rejects stream_options; retrying without", target.key)
            result, _ = await self._attempt_safely(target, workload, False, trace)
        return result

    async def _attempt_safely(
        self, target: Target, workload: Workload, use_so: bool, trace: ProbeTrace | None
    ) -> tuple[ProbeResult, bool]:
        started_at = self._now()
        try:
            return await self._attempt(target, workload, use_so, trace, started_at)
        except Exception as exc:  # our bug, not the provider's: record it, keep running
            log.exception("probe of %s failed inside provmon", target.key)
            return self._result(
                target,
                workload,
                started_at,
                _Attempt(Outcome.MONITOR_ERROR, "monitor.internal", type(exc).__name__),
            ), False

    def _result(
        self,
        target: Target,
        workload: Workload,
        started_at: datetime,
        a: _Attempt,
        m: Measurements | None = None,
        meter: StreamMeter | None = None,
    ) -> ProbeResult:
        assert a.outcome is not None
        result = ProbeResult(
            model=target.model,
            provider=target.provider,
            route=target.route,
            vantage=self._vantage,
            workload=workload.name,
            started_at=started_at,
            outcome=a.outcome,
            error_kind=a.error_kind,
            error_message=a.message,
            http_status=a.status,
            retry_after_s=a.retry_after_s,
        )
        if m is None or meter is None:
            return result
        return dataclasses.replace(
            result,
            ttft_ms=m.ttft_ms,
            ttfa_ms=m.ttfa_ms,
            latency_ms=m.latency_ms,
            output_tokens=m.output_tokens,
            input_tokens=m.input_tokens,
            token_source=m.token_source,
            decode_tps=m.decode_tps,
            e2e_tps=m.e2e_tps,
            chunks=m.chunks,
            buffered=m.buffered,
            cost_usd=m.cost_usd,
            finish_reason=meter.finish_reason,
            served_by=meter.provider,
        )

    async def _attempt(
        self,
        target: Target,
        workload: Workload,
        use_so: bool,
        trace: ProbeTrace | None,
        started_at: datetime,
    ) -> tuple[ProbeResult, bool]:
        secrets = [target.api_key.reveal()] if target.api_key else []
        nonce = new_nonce()
        body = build_body(target, workload, nonce, stream_options=use_so)
        prompt_tokens = self._counter.count(body["messages"][0]["content"])
        headers = {"Accept": "text/event-stream"}
        if target.api_key is not None:
            headers["Authorization"] = f"Bearer {target.api_key.reveal()}"
        url = f"{target.base_url}/chat/completions"
        to = self._timeouts
        loop = asyncio.get_running_loop()
        a = _Attempt()

        start = loop.time()
        total_deadline = start + to.total_s
        first_deadline = min(start + to.first_token_s, total_deadline)
        t0 = time.perf_counter_ns()
        if trace is not None:
            trace.t0_ns = t0
        try:
            async with asyncio.timeout_at(first_deadline):
                resp = await self._session.post(
                    url,
                    json=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=to.connect_s),
                )
        except aiohttp.ServerTimeoutError:
            a.outcome, a.error_kind = Outcome.TIMEOUT, "timeout.connect"
            return self._result(target, workload, started_at, a), False
        except TimeoutError:
            a.outcome = Outcome.TIMEOUT
            a.error_kind = "timeout.total" if first_deadline >= total_deadline else "timeout.ttft"
            return self._result(target, workload, started_at, a), False
        except aiohttp.InvalidURL as exc:
            a.outcome, a.error_kind = Outcome.CLIENT_ERROR, "request.invalid_url"
            a.message = short_message(str(exc), secrets)
            return self._result(target, workload, started_at, a), False
        except (aiohttp.ClientError, OSError) as exc:
            a.outcome, a.error_kind = Outcome.CONNECTION_ERROR, connection_error_kind(exc)
            a.message = short_message(str(exc) or type(exc).__name__, secrets)
            return self._result(target, workload, started_at, a), False

        try:
            a.status = resp.status
            if resp.status != 200:
                return await self._http_error(
                    target, workload, started_at, a, resp, use_so, secrets, total_deadline
                )
            return await self._stream(
                target,
                workload,
                started_at,
                a,
                resp,
                t0,
                prompt_tokens,
                (first_deadline, total_deadline),
                secrets,
                trace,
            ), False
        finally:
            resp.close()

    async def _http_error(
        self,
        target: Target,
        workload: Workload,
        started_at: datetime,
        a: _Attempt,
        resp: aiohttp.ClientResponse,
        use_so: bool,
        secrets: list[str],
        total_deadline: float,
    ) -> tuple[ProbeResult, bool]:
        a.outcome, a.error_kind = classify_status(resp.status)
        if resp.status == 429:
            a.retry_after_s = parse_retry_after(resp.headers.get("Retry-After"), self._now())
        raw = b""
        try:
            read_until = min(total_deadline, asyncio.get_running_loop().time() + 5)
            async with asyncio.timeout_at(read_until):
                raw = await resp.content.read(ERROR_BODY_BYTES)
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass  # the status says enough
        a.message = short_message(raw, secrets) or None
        a.error_kind = http_error_kind(target.route, resp.status, raw) or a.error_kind
        rejected = use_so and resp.status == 400 and b"stream_options" in raw
        return self._result(target, workload, started_at, a), rejected

    async def _stream(
        self,
        target: Target,
        workload: Workload,
        started_at: datetime,
        a: _Attempt,
        resp: aiohttp.ClientResponse,
        t0: int,
        prompt_tokens: int,
        deadlines: tuple[float, float],
        secrets: list[str],
        trace: ProbeTrace | None,
    ) -> ProbeResult:
        first_deadline, total_deadline = deadlines
        loop = asyncio.get_running_loop()
        idle_s = self._timeouts.idle_s
        parser = SSEParser()
        meter = StreamMeter(t0)
        ending: Ending | None = None
        end_ns: int | None = None
        timeout_kind: str | None = None
        events = 0
        body_head = bytearray()
        last_data = 0.0
        reader = resp.content
        while ending is None:
            if meter.first_token_ns is None:
                deadline = first_deadline
            else:
                deadline = min(total_deadline, last_data + idle_s)
            try:
                async with asyncio.timeout_at(deadline):
                    data = await reader.readany()
            except TimeoutError:
                if deadline >= total_deadline:
                    timeout_kind = "timeout.total"
                elif meter.first_token_ns is None:
                    timeout_kind = "timeout.ttft"
                else:
                    timeout_kind = "timeout.idle"
                break
            except (aiohttp.ClientError, OSError) as exc:
                ending = Ending.CUT
                a.message = short_message(str(exc) or type(exc).__name__, secrets)
                break
            t = time.perf_counter_ns()
            if data:
                items = parser.feed(data)
                if events == 0 and len(body_head) < NOT_SSE_BODY_BYTES:
                    body_head += data[: NOT_SSE_BODY_BYTES - len(body_head)]
            else:
                items = parser.close()
                ending = Ending.EOF
                end_ns = t
            for item in items:
                if isinstance(item, SSEEvent):
                    events += 1
                    r = read_event(item)
                    if isinstance(r, Chunk):
                        meter.add(t, r)
                        last_data = loop.time()
                        if trace is not None and r.has_token:
                            trace.tokens.append((t, r.sent_ns))
                    elif isinstance(r, Done):
                        ending, end_ns = Ending.DONE, t
                        break
                    elif isinstance(r, Malformed):
                        ending = Ending.MALFORMED
                        a.message = short_message(f"{r.reason}: {r.excerpt}", secrets)
                        break
                elif isinstance(item, SSEError):
                    ending = Ending.MALFORMED
                    a.message = item.reason
                    break
        if ending is Ending.EOF and events == 0:
            ending = Ending.NOT_SSE
            a.message = short_message(bytes(body_head), secrets) or "empty body"
        if ending in (Ending.CUT, Ending.MALFORMED):
            end_ns = None
        m = measure(
            meter,
            end_ns,
            counter=self._counter,
            prompt_tokens_estimate=prompt_tokens,
            prices=target.prices,
        )
        if timeout_kind is not None:
            a.outcome, a.error_kind = Outcome.TIMEOUT, timeout_kind
        else:
            assert ending is not None
            a.outcome, a.error_kind = classify_stream(meter, ending, m.output_tokens)
        if meter.error is not None:
            code = f"{meter.error.code}: " if meter.error.code is not None else ""
            a.message = short_message(code + meter.error.message, secrets)
        return self._result(target, workload, started_at, a, m, meter)
