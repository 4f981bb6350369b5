"""The Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`) and the OpenTelemetry export of
a running daemon.

`sidecar` (in the daemon) starts `server` (a process of its own) and sends it each probe and a
health snapshot; `registry` holds the Prometheus metrics there and `otel` the OTLP export;
`model` is what they exchange; `health` gathers the daemon's own numbers.
"""
