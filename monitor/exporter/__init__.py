"""The Prometheus endpoint: `/metrics`, `/healthz`, `/readyz` of a running daemon.

`sidecar` (in the daemon) starts `server` (a process of its own) and sends it each probe and a
health snapshot; `registry` holds the metrics there; `model` is what they exchange; `health`
gathers the daemon's own numbers.
"""
