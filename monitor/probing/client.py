"""The probe client: one streamed chat completion on aiohttp, timed as bytes arrive.

This is the I/O seam. Each read of the body takes its time from the connection's
`StampingHandler`: when the bytes reached the machine (the kernel's receive stamp on Linux),
not when this loop got to them. It hands the bytes to the pure decoder (`body`), parser
(`sse`, `chunks`) and meter (`metrics`); `classify` names the outcome. A provider's fault
always ends as a `ProbeResult`, never as an exception. Fairness: each read takes at most
`READ_BYTES`, a read that may have left more buffered is followed by a yield to the event
loop, and deadlines are checked on every pass, so no stream (a gzip bomb, 1 MiB events, a
never-ending fast stream) can starve the others or outlive its own total deadline.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import aiohttp

from monitor.clock import utc_now
from monitor.config import ProbeSettings, Target, Timeouts, Workload
from monitor.probing.attempt import Attempt, ProbeTrace, build_result, connection_error_kind
from monitor.probing.body import BodyDecoder, EncodingError, RateBucket
from monitor.probing.chunks import Chunk, Done, Malformed, read_event
from monitor.probing.classify import Ending, classify_status, classify_stream, parse_retry_after
from monitor.probing.metrics import StreamMeter, measure, needs_count
from monitor.probing.openrouter_errors import http_error_kind
from monitor.probing.phases import Phases
from monitor.probing.prompts import build_body, new_nonce
from monitor.probing.quality import Capture
from monitor.probing.rxstamp import arrival
from monitor.probing.session import StampingHandler, is_traced, tracing
from monitor.probing.sse import SSEError, SSEEvent, SSEItem, SSEParser
from monitor.probing.throttle import Gates
from monitor.probing.tokens import TokenCounter, TokenTally, counter_from_file, default_counter
from monitor.redact import redirect_target, short_message
from monitor.results import Outcome, ProbeResult

__all__ = ["ProbeTrace", "Prober", "connection_error_kind"]

log = logging.getLogger(__name__)

ERROR_BODY_BYTES = 4096
NOT_SSE_BODY_BYTES = 65536
READ_BYTES = 4 * 1024
"""The most one read takes."""
SLICE_NS = 200_000
"""Parsing the events of one read yields to the event loop after this much work."""
TOKEN_STEP_CHARS = 1024
"""Text tokenized between two reads once more than `TOKEN_KEEP_CHARS` wait (about 0.1 ms)."""
TOKEN_KEEP_CHARS = 1024 * 1024
"""Text left uncounted until the end (usage usually makes counting unneeded)."""
BURST_BYTES = 1024 * 1024
"""Bytes a stream may deliver at once before `[probe] max_bytes_per_s` holds it back."""
BURST_EVENTS = 10_000
"""Events a stream may deliver at once before `[probe] max_events_per_s` holds it back."""
COUNT_GRACE_S = 0.5
"""How long past its total deadline a probe may go on counting the tokens it received; what is
left then is estimated."""


class Prober:
    """Runs probes over one aiohttp session; remembers which targets reject `stream_options`.

    The session should come from `monitor.probing.session.probe_session`: its trace hooks give
    the connection phases, and TTFT starts when the request was written. With any other
    session the phases are null and TTFT starts before the connection is made.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        timeouts: Timeouts,
        vantage: str,
        gates: Gates | None = None,
        counter: TokenCounter | None = None,
        settings: ProbeSettings | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._session = session
        self._timeouts = timeouts
        self._vantage = vantage
        self._gates = gates
        self._counter = counter or default_counter()
        self._counters: dict[str, TokenCounter] = {}
        self._settings = settings or ProbeSettings()
        self._now = now
        self._rejects_stream_options: set[str] = set()
        if not is_traced(session):
            log.debug("probe session without phase tracing: phases are null")

    def rejects_stream_options(self, target: Target) -> bool:
        return target.key in self._rejects_stream_options

    def counter_for(self, target: Target) -> TokenCounter:
        """The target's own tokenizer when it names one (loaded once), else the default."""
        path = target.tokenizer
        if path is None:
            return self._counter
        counter = self._counters.get(path)
        if counter is None:
            try:
                counter = counter_from_file(Path(path))
            except ValueError as exc:
                log.error("%s: %s; counting with %s", target.key, exc, self._counter.name)
                counter = self._counter
            self._counters[path] = counter
        return counter

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
        a = Attempt(target=target, workload=workload, vantage=self._vantage, started_at=self._now())
        try:
            return await self._attempt(a, use_so, trace)
        except Exception as exc:  # our bug, not the provider's: record it, keep running
            log.exception("probe of %s failed inside provmon", target.key)
            a.outcome, a.error_kind = Outcome.MONITOR_ERROR, "monitor.internal"
            a.message = type(exc).__name__
            return build_result(a), False

    async def _attempt(
        self, a: Attempt, use_so: bool, trace: ProbeTrace | None
    ) -> tuple[ProbeResult, bool]:
        target, workload = a.target, a.workload
        a.secrets = [target.api_key.reveal()] if target.api_key else []
        counter = self.counter_for(target)
        body = build_body(target, workload, new_nonce(), stream_options=use_so)
        a.prompt_tokens = counter.count(body["messages"][0]["content"])
        headers = {"Accept": "text/event-stream", "Accept-Encoding": "identity"}
        if target.api_key is not None:
            headers["Authorization"] = f"Bearer {target.api_key.reveal()}"
        url = f"{target.base_url}/chat/completions"
        to = self._timeouts
        loop = asyncio.get_running_loop()
        start = loop.time()
        total_deadline = start + to.total_s
        first_deadline = min(start + to.first_token_s, total_deadline)
        a.phases = phases = Phases(start_ns=time.perf_counter_ns())
        try:
            with tracing(phases):
                async with asyncio.timeout_at(first_deadline):
                    resp = await self._session.post(
                        url,
                        json=body,
                        headers=headers,
                        timeout=aiohttp.ClientTimeout(total=None, sock_connect=to.connect_s),
                        allow_redirects=False,
                        auto_decompress=False,
                        trace_request_ctx=phases,
                    )
        except aiohttp.ServerTimeoutError:
            a.outcome, a.error_kind = Outcome.TIMEOUT, "timeout.connect"
            return build_result(a), False
        except TimeoutError:
            a.outcome = Outcome.TIMEOUT
            a.error_kind = "timeout.total" if first_deadline >= total_deadline else "timeout.ttft"
            return build_result(a), False
        except aiohttp.InvalidURL as exc:
            a.outcome, a.error_kind = Outcome.CLIENT_ERROR, "request.invalid_url"
            a.message = short_message(str(exc), a.secrets)
            return build_result(a), False
        except (aiohttp.ClientError, OSError) as exc:
            a.outcome, a.error_kind = Outcome.CONNECTION_ERROR, connection_error_kind(exc)
            a.message = short_message(str(exc) or type(exc).__name__, a.secrets)
            return build_result(a), False
        t0 = phases.sent_ns or phases.start_ns
        proto = resp.connection.protocol if resp.connection is not None else None
        handler = proto if isinstance(proto, StampingHandler) else None
        if handler is not None and handler.headers_ns is not None:
            # the headers' arrival, as the body's: the trace hook ran when the loop got to them
            phases.headers_ns = max(handler.headers_ns, t0)
        if trace is not None:
            trace.t0_ns = t0
        try:
            a.status = resp.status
            if resp.status != 200:
                return await self._http_error(a, resp, use_so, total_deadline)
            tally = TokenTally(counter, TOKEN_STEP_CHARS, TOKEN_KEEP_CHARS)
            meter = StreamMeter(t0, tally, capture=Capture() if a.workload.quality else None)
            feeds = handler.feeds if handler is not None else None
            await self._stream(a, resp, feeds, meter, (first_deadline, total_deadline), trace)
            return build_result(a), False
        finally:
            resp.close()

    async def _http_error(
        self, a: Attempt, resp: aiohttp.ClientResponse, use_so: bool, total_deadline: float
    ) -> tuple[ProbeResult, bool]:
        a.outcome, a.error_kind = classify_status(resp.status)
        if resp.status == 429:
            a.retry_after_s = parse_retry_after(resp.headers.get("Retry-After"), self._now())
        if 300 <= resp.status < 400:
            location = resp.headers.get("Location", "")
            a.message = short_message(f"redirected to {redirect_target(location)}", a.secrets)
            return build_result(a), False
        raw = b""
        try:
            read_until = min(total_deadline, asyncio.get_running_loop().time() + 5)
            async with asyncio.timeout_at(read_until):
                raw = await resp.content.read(ERROR_BODY_BYTES)
        except (TimeoutError, aiohttp.ClientError, OSError):
            pass  # the status says enough
        a.message = short_message(raw, a.secrets) or None
        a.error_kind = http_error_kind(a.target.route, resp.status, raw) or a.error_kind
        rejected = use_so and resp.status == 400 and b"stream_options" in raw
        return build_result(a), rejected

    async def _stream(
        self,
        a: Attempt,
        resp: aiohttp.ClientResponse,
        feeds: collections.deque[tuple[int, int]] | None,
        meter: StreamMeter,
        deadlines: tuple[float, float],
        trace: ProbeTrace | None,
    ) -> None:
        """Read the stream to its end (or a deadline, the byte cap, a fault) into `a`; `feeds`
        are the connection's noted socket reads (`StampingHandler.feeds`), None without."""
        r = _Reading(meter, trace, deadlines[1], self._timeouts.idle_s)
        first_deadline, total_deadline = deadlines
        loop = asyncio.get_running_loop()
        settings = self._settings
        cap = settings.max_stream_bytes
        bytes_bucket = RateBucket(settings.max_bytes_per_s, BURST_BYTES, loop.time())
        events_bucket = RateBucket(settings.max_events_per_s, BURST_EVENTS, loop.time())
        parser = SSEParser()
        received = decoded = 0
        body_head = bytearray()
        reader = resp.content
        try:
            decoder = BodyDecoder(resp.headers.get("Content-Encoding"))
        except EncodingError as exc:
            decoder, r.ending = BodyDecoder(None), Ending.ENCODING
            a.message = short_message(str(exc), a.secrets)
        while r.ending is None and r.timeout_kind is None:
            deadline = first_deadline if meter.first_token_ns is None else r.idle_deadline
            if loop.time() >= deadline:
                r.timed_out(deadline)
                break
            data = b""
            if not decoder.pending:  # decode what is already here before reading more
                want = READ_BYTES
                if feeds:
                    while feeds and feeds[0][0] <= received:
                        feeds.popleft()
                    if feeds:  # read what one socket read brought, so it has one time
                        want = min(READ_BYTES, feeds[0][0] - received)
                try:
                    async with asyncio.timeout_at(deadline):
                        data = await reader.read(want)
                except TimeoutError:
                    r.timed_out(deadline)
                    break
                except (aiohttp.ClientError, OSError) as exc:
                    r.ending = Ending.CUT
                    a.message = short_message(str(exc) or type(exc).__name__, a.secrets)
                    break
                received += len(data)
                r.slice_ns = time.perf_counter_ns()
                stamp = arrival(feeds, received, r.slice_ns) if data else r.slice_ns
                r.arrived_ns = max(stamp, meter.t0_ns)  # bytes sent before the request: not earlier
            t, events_before = r.arrived_ns, r.events
            try:
                if data or decoder.pending:
                    decoder.push(data)
                    data = decoder.pull(READ_BYTES)
                    decoded += len(data)
                    if max(received, decoded) > cap:
                        r.ending = Ending.TOO_LARGE
                        a.message = f"the stream sent more than {cap} bytes"
                        break
                    items = parser.feed(data)
                    if r.events == 0 and len(body_head) < NOT_SSE_BODY_BYTES:
                        body_head += data[: NOT_SSE_BODY_BYTES - len(body_head)]
                else:
                    items = parser.close()
                    r.ending, r.end_ns = Ending.EOF, t
                message = await r.consume(items, t)
            except EncodingError as exc:
                r.ending, message = Ending.ENCODING, str(exc)
            except Exception as exc:  # whatever the bytes broke is the provider's fault
                log.debug("parsing %s's stream failed", a.target.key, exc_info=True)
                r.ending, message = Ending.MALFORMED, f"unparseable stream: {type(exc).__name__}"
            if message is not None:
                a.message = short_message(message, a.secrets)
            meter.tally.step(TOKEN_STEP_CHARS)
            now = loop.time()
            pause = max(
                bytes_bucket.take(len(data), now), events_bucket.take(r.events - events_before, now)
            )
            if pause > 0:
                await asyncio.sleep(pause)  # faster than any model streams: hold it back
            elif len(data) >= READ_BYTES or decoder.pending:
                await asyncio.sleep(0)  # more may be buffered: let the other streams run
        if needs_count(meter, a.workload.max_tokens, a.prompt_tokens):
            await self._count(meter, total_deadline + COUNT_GRACE_S)
        ending = r.ending
        if ending is Ending.EOF and r.events == 0:
            ending = Ending.NOT_SSE
            a.message = short_message(bytes(body_head), a.secrets) or "empty body"
        end_ns = r.end_ns if ending in (Ending.DONE, Ending.EOF) else None
        a.measurements = m = measure(
            meter,
            end_ns,
            prompt_tokens=a.prompt_tokens,
            prices=a.target.prices,
            max_tokens=a.workload.max_tokens,
        )
        a.meter = meter
        if r.timeout_kind is not None:
            a.outcome, a.error_kind = Outcome.TIMEOUT, r.timeout_kind
        else:
            assert ending is not None
            a.outcome, a.error_kind = classify_stream(meter, ending, m.output_tokens)
        if meter.error is not None:
            code = f"{meter.error.code}: " if meter.error.code is not None else ""
            a.message = short_message(code + meter.error.message, a.secrets)

    async def _count(self, meter: StreamMeter, until: float) -> None:
        """Count the text still waiting, a step at a time, until `until`; estimate the rest."""
        loop = asyncio.get_running_loop()
        while meter.tally.step(TOKEN_STEP_CHARS, keep=0):
            if loop.time() >= until:
                meter.tally.give_up()
                return
            await asyncio.sleep(0)


@dataclass(slots=True)
class _Reading:
    """The state of one stream being read: how it ended, and the current time slice."""

    meter: StreamMeter
    trace: ProbeTrace | None
    total_deadline: float
    idle_s: float
    ending: Ending | None = None
    end_ns: int | None = None
    timeout_kind: str | None = None
    events: int = 0
    last_data: float = 0.0
    slice_ns: int = 0
    arrived_ns: int = 0

    @property
    def idle_deadline(self) -> float:
        return min(self.total_deadline, self.last_data + self.idle_s)

    def timed_out(self, deadline: float) -> None:
        if deadline >= self.total_deadline:
            self.timeout_kind = "timeout.total"
        elif self.meter.first_token_ns is None:
            self.timeout_kind = "timeout.ttft"
        else:
            self.timeout_kind = "timeout.idle"

    async def consume(self, items: list[SSEItem], t: int) -> str | None:
        """Apply parsed items (their bytes arrived at `t`) to the meter; a message when the
        stream went wrong. Yields to the event loop when a slice of work is used up."""
        loop = asyncio.get_running_loop()
        for i, item in enumerate(items):
            if i % 16 == 15 and time.perf_counter_ns() - self.slice_ns > SLICE_NS:
                await asyncio.sleep(0)
                self.slice_ns = time.perf_counter_ns()
                if loop.time() >= self.total_deadline:
                    self.timeout_kind = "timeout.total"
                    return None
            if isinstance(item, SSEEvent):
                self.events += 1
                r = read_event(item)
                if isinstance(r, Chunk):
                    self.meter.add(t, r)
                    self.last_data = loop.time()
                    if self.trace is not None and r.has_token:
                        self.trace.tokens.append((t, r.sent_ns))
                elif isinstance(r, Done):
                    self.ending, self.end_ns = Ending.DONE, t
                    return None
                elif isinstance(r, Malformed):
                    self.ending = Ending.MALFORMED
                    return f"{r.reason}: {r.excerpt}"
            elif isinstance(item, SSEError):
                self.ending = Ending.MALFORMED
                return item.reason
        return None
