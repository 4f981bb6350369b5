"""The probe path: from a target and a workload to one `ProbeResult`.

Pure: `sse` (bytes → events), `chunks` (events → content, usage, errors), `metrics` (stamps →
TTFT, decode speed, ...), `classify` (how a probe ended → outcome), `tokens`, `prompts`. I/O:
`client`, which stamps each read with `perf_counter_ns` and hands the bytes on, and `http`, the
shared session and plain JSON GETs: with the simulator's server the only aiohttp users;
`throttle`, the only asyncio-throttle user (per-provider gates).
"""
