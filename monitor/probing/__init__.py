"""The probe path: from a target and a workload to one `ProbeResult`.

Pure: `sse` (bytes → events), `chunks` (events → content, usage, errors), `body` (a content
coding undone in bounded steps), `metrics` (stamps and counts → TTFT, decode speed, ITL, bounded
provider values), `phases` (connection phase stamps → dns/connect/tls/ttfb), `classify` (how a
probe ended → outcome), `openrouter_errors` (OpenRouter's error metadata → finer error kinds),
`tokens` (tokenizers and the incremental tally), `prompts`. I/O, with the simulator's server
the only aiohttp users: `session` (the HTTP session and its trace hooks), `http` (that session
for the rest of provmon, and plain JSON GETs), `client` (stamps each read with
`perf_counter_ns` and hands the bytes on, fairly), `attempt` (one attempt's state →
`ProbeResult`, aiohttp errors → error kinds); `throttle`, the only asyncio-throttle user
(per-provider gates).
"""
