"""The `provmon` argument parser: every command, its options and its help text."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from monitor import __version__
from monitor.config import DEFAULT_CONFIG_PATH
from monitor.config.checks import parse_listen

Handler = Callable[[argparse.Namespace], int]


PROBE_TIMEOUT_FLAGS = (
    ("--timeout", "total_s", "deadline for the whole probe"),
    ("--first-token-timeout", "first_token_s", "deadline for the first token"),
    ("--idle-timeout", "idle_s", "longest gap between events after the first token"),
    ("--connect-timeout", "connect_s", "deadline for the connection (TCP and TLS)"),
)

PROBE_JSON_FIELDS = """\
JSON fields (--json), one object per probe; times in ms, null when not measured:
  model, provider, route, vantage, workload   what was probed, from where
  started_at        when the probe started (ISO 8601, UTC)
  outcome           ok, rate_limited, client_error, server_error, timeout,
                    connection_error, stream_error, empty_response, monitor_error
  error_kind        finer cause: http.503, http.302, timeout.ttft, timeout.idle,
                    conn.refused, stream.malformed_json, stream.too_large, ...
  error_message     the provider's message, shortened, secrets redacted
  http_status, retry_after_s   the response status; Retry-After in seconds
  dns_ms, connect_ms, tls_ms   phases of the probe's fresh connection
  ttfb_ms           request written -> response headers
  ttft_ms           request written -> first token (answer, reasoning or tool call)
  ttfa_ms           request written -> first answer token
  latency_ms        request written -> end of stream
  itl_p50_ms, itl_p99_ms, max_gap_ms   gaps between token events
  output_tokens, input_tokens, token_source   counts; source usage, tokenizer
                    (counted, tiktoken cl100k_base or the target's tokenizer) or
                    estimate (characters / 4)
  decode_tps        (output_tokens - 1) / (last token - first token)
  e2e_tps           output_tokens / latency
  chunks            token events (several tokens may share one)
  buffered          true when the answer came all at once
  cost_usd          the route's reported cost, else tokens x configured price
  finish_reason, served_by   as the provider sent them (sanitised)
  flags             provider values not believed: usage_implausible,
                    cost_implausible
"""


def _listen(text: str) -> tuple[str, int]:
    try:
        return parse_listen(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def build_parser(handlers: Mapping[str, Handler]) -> argparse.ArgumentParser:
    """Every command's arguments and help; `handlers` maps each command to its function."""
    parser = argparse.ArgumentParser(
        prog="provmon",
        description=(
            "LLM provider benchmarking and uptime monitor: probes every provider serving your "
            "models and measures time to first token, tokens per second and errors."
        ),
    )
    parser.add_argument("--version", action="version", version=f"provmon {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (DEBUG)")
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="log lines as readable text (default) or one JSON object each",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-c",
            "--config",
            default=None,
            help=f"TOML config file (default: $PROVMON_CONFIG, else ./{DEFAULT_CONFIG_PATH})",
        )

    p = sub.add_parser(
        "demo",
        help="run the simulator and probe it: a per-provider comparison in under a minute",
        description=(
            "Starts the built-in provider simulator on loopback (four providers of one model: "
            "fast, cheap-but-slow, flaky with an outage, rate-limited), probes each directly "
            "and through the OpenRouter-like front, and prints a comparison."
        ),
    )
    p.add_argument(
        "--duration", type=_positive_float, default=90.0, help="seconds of probing (default 90)"
    )
    p.add_argument(
        "--interval",
        type=_positive_float,
        default=3.0,
        help="seconds between probes of each target (default 3)",
    )
    p.add_argument(
        "--dir", default=".", help="where provmon-demo.db and reports/ go (default: here)"
    )
    p.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 8787),
        metavar="HOST:PORT",
        help="where the live page is served while it runs (default 127.0.0.1:8787, another "
        "free port when taken)",
    )
    p.add_argument(
        "--keep-serving",
        action="store_true",
        help="keep the live page up after the report is written, until Ctrl-C",
    )
    p.add_argument("--no-serve", action="store_true", help="no live page")
    p.set_defaults(func=handlers["demo"])

    p = sub.add_parser(
        "serve",
        help="the live model pages and JSON API over the database (read-only)",
        description=(
            "Serves / (every model), /models/AUTHOR/SLUG (providers, performance, uptime, "
            "incidents), the JSON API under /api/v1/, badges, /healthz and /readyz, until "
            "Ctrl-C or SIGTERM. Loopback by default; another address needs [web] "
            "auth_token_env or allow_anonymous = true. `provmon run` serves the same pages "
            "when [web] listen is set."
        ),
    )
    with_config(p)
    p.add_argument(
        "--listen",
        type=_listen,
        metavar="HOST:PORT",
        help="where to serve (overrides [web] listen; default 127.0.0.1:8787; port 0: any)",
    )
    p.set_defaults(func=handlers["serve"])

    p = sub.add_parser(
        "run",
        help="the daemon: probe every target on schedule, store results, prune old probes",
        description=(
            "Schedules each target × workload at its interval (with jitter), stores every probe "
            "in the database (a local spill file keeps them while the database is away), "
            "enforces the daily budget and retention. SIGTERM or Ctrl-C stops it: no new "
            "probes, probes in flight get up to schedule.drain_s to finish, results are "
            "flushed, exit 0. The database must be migrated first: provmon db upgrade. "
            "With [metrics] listen or --metrics-listen it serves /metrics (Prometheus), "
            "/healthz and /readyz; under systemd (NOTIFY_SOCKET) it sends READY=1, WATCHDOG=1 "
            "and STOPPING=1."
        ),
    )
    with_config(p)
    p.add_argument(
        "--metrics-listen",
        type=_listen,
        metavar="HOST:PORT",
        help="serve /metrics, /healthz, /readyz there (overrides [metrics] listen; port 0: any)",
    )
    p.set_defaults(func=handlers["run"])

    p = sub.add_parser(
        "report",
        help="write the uptime and performance report (HTML, Markdown, CSV, JSON)",
        description=(
            "Writes one report per model for an ISO week (--week 2026-W47, UTC) or any period "
            "(--since/--until); default: the current week so far. Files go under "
            "reports/PERIOD/MODEL/ (or --out). A finished week is frozen on first report: "
            "later runs give the same numbers even after raw probes are pruned."
        ),
    )
    with_config(p)
    p.add_argument("--week", help="ISO week, e.g. 2026-W47")
    p.add_argument("--since", help="start, e.g. 2026-11-20 or 2026-11-20T08:00Z (UTC)")
    p.add_argument("--until", help="end (default: now)")
    p.add_argument("--model", action="append", help="only this model (repeatable)")
    p.add_argument("--format", help="comma-separated: html,md,csv,json (default: all)")
    p.add_argument("--out", help="output folder (default: reports.out_dir, ./reports)")
    p.set_defaults(func=handlers["report"])

    p = sub.add_parser(
        "status",
        help="each target's state and 5m / 30m / 1d uptime, p50 TTFT and throughput",
        description="Reads the database: per target its alert state and, over the last 5 "
        "minutes, 30 minutes and day, uptime %, p50 TTFT (ms) and p50 decode speed (tokens/s).",
    )
    with_config(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=handlers["status"])

    p = sub.add_parser(
        "incidents",
        help="incidents, open and resolved, with duration, vantages and error kinds",
        description="Lists incidents from the database, oldest first: a provider DOWN or "
        "DEGRADED (across vantages), a target that answers only client errors (config), a "
        "vantage alone failing to reach a provider (vantage), the monitor's own connectivity "
        "(monitor). Open ones show their duration so far with a '+'.",
    )
    with_config(p)
    p.add_argument("--open", action="store_true", help="only incidents still open")
    p.add_argument(
        "--since", help="those open at or after: 2026-11-20, 2026-11-20T08:00Z, or 24h, 7d"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per incident")
    p.set_defaults(func=handlers["incidents"])

    p = sub.add_parser("alerts", help="alert commands: test")
    alerts_sub = p.add_subparsers(dest="alerts_command", metavar="ALERTS_COMMAND", required=True)
    p = alerts_sub.add_parser(
        "test",
        help="send a test notification to every configured channel and report each result",
        description="Sends one test alert (alertname ProvmonTest) to each channel under "
        "[[alerts.channels]]; prints 'sent' or why it failed per channel. Exit 0 when every "
        "channel took it, 1 otherwise. Needs no database.",
    )
    with_config(p)
    p.set_defaults(func=handlers["alerts_test"])

    p = sub.add_parser("db", help="database commands: upgrade")
    db_sub = p.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    p = db_sub.add_parser(
        "upgrade",
        help="migrate the database to the current schema (creates it when empty)",
        description="Runs the Alembic migrations up to head on the configured database.",
    )
    with_config(p)
    p.set_defaults(func=handlers["db_upgrade"])

    p = sub.add_parser(
        "probe",
        help="one-off probes of the configured targets, or of --base-url/--model",
        description=(
            "Sends streamed chat completions and prints one row per probe (or, with --json, one "
            "JSON object per line, fields below). Exit status 0 when every probe was ok, 1 "
            "otherwise, 2 for a bad command line or config."
        ),
        epilog=PROBE_JSON_FIELDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    with_config(p)
    for flag, key, what in PROBE_TIMEOUT_FLAGS:
        p.add_argument(
            flag,
            dest=key,
            type=_positive_float,
            metavar="S",
            help=f"{what}, in seconds (overrides [timeouts] {key})",
        )
    p.add_argument("--base-url", help="an OpenAI-compatible base URL, e.g. http://host/v1")
    p.add_argument("--model", help="model name to send (with --base-url)")
    p.add_argument(
        "--provider", help="provider name: filters configured targets, or names the ad-hoc one"
    )
    p.add_argument("--only-model", help="probe only configured targets of this model")
    p.add_argument("--api-key-env", help="environment variable holding the key (with --base-url)")
    p.add_argument("--workload", help="workload name (default: each target's own workloads)")
    p.add_argument("--count", type=_positive_int, default=1, help="probes per target (default 1)")
    p.add_argument(
        "--concurrency", type=_positive_int, default=8, help="probes in flight (default 8)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object per probe")
    p.set_defaults(func=handlers["probe"])

    p = sub.add_parser(
        "discover",
        help="list the endpoints OpenRouter serves a model from, as config entries",
        description="Reads {base-url}/models/MODEL/endpoints, with the key when it is set, and "
        "prints a [[targets]] entry with one [[targets.endpoints]] per endpoint (its tag pinned).",
    )
    with_config(p)
    p.add_argument("model", help="model id, e.g. microsoft/wizardlm-2-8x22b")
    p.add_argument("--base-url", help="API base URL (default: the config's [openrouter])")
    p.add_argument("--api-key-env", help="variable holding the key (default: [openrouter])")
    p.add_argument("--json", action="store_true", help="print the endpoints as JSON")
    p.set_defaults(func=handlers["discover"])

    p = sub.add_parser("catalogue", help="changes in OpenRouter's endpoints of the models")
    with_config(p)
    p.add_argument("--since", help="changes at or after: 2026-11-20, 2026-11-20T08:00Z, or 7d")
    p.add_argument("--model", action="append", help="only this model (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per change")
    p.set_defaults(func=handlers["catalogue"])

    p = sub.add_parser(
        "check",
        help="validate the config and reach the database; exit status 0 when healthy",
        description="Loads and validates the config, resolving every api_key_env, then "
        "reaches the database and checks its schema. Exit 0 when healthy, 1 when the "
        "database is unreachable or not migrated, 2 when the config is invalid.",
    )
    with_config(p)
    p.set_defaults(func=handlers["check"])

    p = sub.add_parser(
        "simulate",
        help="run the provider simulator alone",
        description="Serves simulated OpenAI-compatible providers and an OpenRouter-like front "
        "until Ctrl-C or SIGTERM.",
    )
    p.add_argument("--scenario", choices=["demo", "quirks"], default="demo")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8808)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=handlers["simulate"])
    return parser
