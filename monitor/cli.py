"""The `provmon` command line: parses arguments (`cli_parser`), loads config, calls the
composition root (`app`)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from monitor import app, demo
from monitor.cli_parser import PROBE_TIMEOUT_FLAGS, build_parser
from monitor.clock import utc_now
from monitor.config import (
    DEFAULT_CONFIG_PATH,
    Config,
    adhoc_config,
    discover_source,
    load_config,
    with_timeouts,
)
from monitor.errors import EXIT_FAIL, EXIT_OK, ConfigError, ProvmonError, UsageError
from monitor.logs import setup_logging
from monitor.reporting.periods import (
    Period,
    parse_since,
    parse_week,
    parse_when,
    span_period,
    week_period,
)
from monitor.sdnotify import SystemdNotifier
from monitor.web.security import DEFAULT_LISTEN, Listen


def _config(args: argparse.Namespace) -> Config:
    return load_config(Path(args.config), os.environ)


def _period(args: argparse.Namespace) -> Period:
    try:
        if args.week:
            if args.since or args.until:
                raise UsageError("give --week, or --since/--until, not both")
            return parse_week(args.week)
        if args.since or args.until:
            since = parse_when(args.since) if args.since else None
            until = parse_when(args.until) if args.until else utc_now()
            if since is None:
                raise UsageError("--until needs --since")
            return span_period(since, until)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return week_period(utc_now())


def _formats(text: str | None) -> list[str] | None:
    if not text:
        return None
    formats = [f.strip() for f in text.split(",") if f.strip()]
    unknown = set(formats) - {"html", "md", "csv", "json"}
    if unknown:
        raise UsageError(f"unknown format(s) {', '.join(sorted(unknown))}: use html,md,csv,json")
    return formats


def _since(text: str) -> datetime:
    """`--since`: an ISO date or timestamp (UTC when naive), or an age such as 90m, 24h, 7d."""
    try:
        return parse_since(text, utc_now())
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _probe_config(args: argparse.Namespace) -> Config:
    """The config file's targets, or (with --base-url/--model) one ad-hoc target that keeps
    the config file's other settings when there is one."""
    if bool(args.base_url) != bool(args.model):
        raise UsageError("--base-url and --model go together")
    if not args.base_url:
        return _config(args)
    base = _config(args) if args.config_given or Path(args.config).exists() else None
    return adhoc_config(
        args.base_url,
        args.model,
        os.environ,
        provider=args.provider,
        api_key_env=args.api_key_env,
        base=base,
    )


def cmd_check(args: argparse.Namespace) -> int:
    return app.run(app.check(_config(args), sys.stdout, sys.stderr))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    return app.run(app.db_upgrade(_config(args), sys.stdout))


def cmd_report(args: argparse.Namespace) -> int:
    cfg, period, formats = _config(args), _period(args), _formats(args.format)
    out_dir = Path(args.out) if args.out else None
    return app.run(
        app.report(
            cfg, period, sys.stdout, models=args.model or None, formats=formats, out_dir=out_dir
        )
    )


def cmd_status(args: argparse.Namespace) -> int:
    return app.run(app.show_status(_config(args), sys.stdout, as_json=args.json))


def cmd_incidents(args: argparse.Namespace) -> int:
    cfg = _config(args)
    since = _since(args.since) if args.since else None
    return app.run(
        app.incidents(cfg, sys.stdout, open_only=args.open, since=since, as_json=args.json)
    )


def cmd_alerts_test(args: argparse.Namespace) -> int:
    return app.run(app.alerts_test(_config(args), sys.stdout))


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _config(args)
    systemd = SystemdNotifier.from_values(*args.systemd_env)
    return app.run_service(
        lambda stop: app.run_daemon(cfg, stop, metrics_listen=args.metrics_listen, systemd=systemd)
    )


def cmd_serve(args: argparse.Namespace) -> int:
    cfg = _config(args)
    if args.listen is not None:
        listen = Listen(*args.listen)
    else:
        listen = Listen.parse(cfg.web.listen or DEFAULT_LISTEN)
    return app.run(app.serve_pages(cfg, listen, sys.stdout), stop_exit_code=EXIT_OK)


def cmd_probe(args: argparse.Namespace) -> int:
    cfg = _probe_config(args)
    overrides = {key: getattr(args, key) for _, key, _ in PROBE_TIMEOUT_FLAGS}
    try:
        cfg = with_timeouts(cfg, {k: v for k, v in overrides.items() if v is not None})
    except ValueError as exc:
        raise UsageError(f"timeouts: {exc}") from None
    job = app.probe(
        cfg,
        sys.stdout,
        provider=args.provider,
        only_model=args.only_model,
        workload=args.workload,
        count=args.count,
        concurrency=args.concurrency,
        as_json=args.json,
    )
    return app.run(job)


def cmd_discover(args: argparse.Namespace) -> int:
    path = Path(args.config) if args.config_given or Path(args.config).exists() else None
    base_url, api_key = discover_source(
        path, os.environ, base_url=args.base_url, api_key_env=args.api_key_env
    )
    return app.run(app.discover(base_url, args.model, api_key, sys.stdout, as_json=args.json))


def cmd_catalogue(args: argparse.Namespace) -> int:
    since, cfg = _since(args.since) if args.since else None, _config(args)
    return app.run(
        app.catalogue(cfg, sys.stdout, since=since, models=args.model, as_json=args.json)
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    job = app.simulate(args.scenario, args.host, args.port, args.seed, sys.stdout)
    return app.run(job, stop_exit_code=EXIT_OK)


def cmd_demo(args: argparse.Namespace) -> int:
    listen = None if args.no_serve else Listen(*args.listen)

    async def main() -> int:
        written = await demo.demo(
            args.duration,
            args.interval,
            sys.stdout,
            workdir=Path(args.dir),
            listen=listen,
            keep_serving=args.keep_serving,
        )
        return EXIT_OK if written else EXIT_FAIL

    return app.run(main(), stop_exit_code=EXIT_OK if args.keep_serving else 130)


HANDLERS = {
    "alerts_test": cmd_alerts_test,
    "check": cmd_check,
    "db_upgrade": cmd_db_upgrade,
    "demo": cmd_demo,
    "discover": cmd_discover,
    "catalogue": cmd_catalogue,
    "incidents": cmd_incidents,
    "probe": cmd_probe,
    "report": cmd_report,
    "run": cmd_run,
    "serve": cmd_serve,
    "simulate": cmd_simulate,
    "status": cmd_status,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(HANDLERS)
    args = parser.parse_args(argv)
    # The only environment the CLI reads (config loading reads the secrets it names).
    env_config = os.environ.get("PROVMON_CONFIG") or None
    args.systemd_env = tuple(
        os.environ.get(name) for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
    )
    if hasattr(args, "config"):
        args.config = args.config or env_config
        args.config_given = args.config is not None
        args.config = args.config or str(DEFAULT_CONFIG_PATH)
    quiet = logging.INFO if args.command == "run" else logging.WARNING
    setup_logging(logging.DEBUG if args.verbose else quiet, args.log_format)
    try:
        code: int = args.func(args)
    except ConfigError as exc:  # its message names the file and each key
        print(str(exc), file=sys.stderr)
        return exc.exit_code
    except ProvmonError as exc:
        print(f"provmon {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    return code


if __name__ == "__main__":
    sys.exit(main())
