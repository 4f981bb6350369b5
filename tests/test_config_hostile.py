"""Broken config files and out-of-range command-line dates: each is one clear message naming
the key (or the file) and what to write instead, exit 2, never a traceback, never a hang."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import load_config
from monitor.config.checks import http_url
from monitor.errors import ConfigError
from monitor.reporting.periods import parse_since, parse_week, parse_when, span_period

DIRECT = '[[targets]]\nroute = "direct"\nmodel = "m"\nprovider = "p"\n'


def direct(base_url: str) -> str:
    return DIRECT + f"base_url = {base_url!r}\n"


# (TOML text, the key path, a part of the reason)
BROKEN = [
    ("[schedule]\ninterval_s = inf\n", "schedule.interval_s", "finite"),
    ("[schedule]\ninterval_s = nan\n", "schedule.interval_s", "finite"),
    ("[schedule]\ninterval_s = true\n", "schedule.interval_s", "valid number"),
    ("[schedule]\ninterval_s = 1e-9\n", "schedule.interval_s", "greater than or equal to 1"),
    ("[schedule]\ninterval_s = 0.5\n", "schedule.interval_s", "greater than or equal to 1"),
    ("[schedule]\ninterval_s = 1e300\n", "schedule.interval_s", "less than or equal to 86400"),
    ("[schedule]\ninterval_s = '60'\n", "schedule.interval_s", "valid number"),
    ("[schedule]\njitter_s = 1e300\n", "schedule.jitter_s", "less than or equal to 3600"),
    ("[schedule]\ninterval_s = 10\njitter_s = 10\n", "schedule", "jitter_s must be less"),
    ("[schedule]\njitter_s = -1\n", "schedule.jitter_s", "greater than or equal to 0"),
    ("[schedule]\ndrain_s = inf\n", "schedule.drain_s", "finite"),
    ("[schedule]\nretention_days = 0\n", "schedule.retention_days", "greater than or equal"),
    ("[schedule]\nretention_days = 2.5\n", "schedule.retention_days", "valid integer"),
    ("[schedule]\nretention_days = true\n", "schedule.retention_days", "valid integer"),
    ("[schedule]\nbudget_usd_per_day = -3\n", "schedule.budget_usd_per_day", "greater than"),
    ("[schedule]\nbudget_usd_per_day = inf\n", "schedule.budget_usd_per_day", "finite"),
    ("[schedule]\nstatus_every_s = 0\n", "schedule.status_every_s", "greater than or equal"),
    ("[timeouts]\ntotal_s = 1e9\n", "timeouts.total_s", "less than or equal to 3600"),
    ("[timeouts]\nconnect_s = 0\n", "timeouts.connect_s", "greater than 0"),
    ("[timeouts]\nidle_s = false\n", "timeouts.idle_s", "valid number"),
    ("[timeouts]\nfirst_token_s = 100\ntotal_s = 50\n", "timeouts", "at least first_token_s"),
    ("[workloads.w]\ninput_tokens = 1.5\nmax_tokens = 2\n", "workloads.w.input_tokens", "integer"),
    ("[workloads.w]\ninput_tokens = 1\nmax_tokens = 0\n", "workloads.w.max_tokens", "greater"),
    ("[providers.X]\nconcurrency = true\n", "providers.X.concurrency", "valid integer"),
    ("[providers.X]\nrequests_per_s = inf\n", "providers.X.requests_per_s", "finite"),
    ("[providers.X]\nrequests_per_s = 0\n", "providers.X.requests_per_s", "greater than 0"),
    ("[alerts]\nquorum = 1.5\n", "alerts.quorum", "less than or equal to 1"),
    ("[alerts]\nfailure_threshold = 0\n", "alerts.failure_threshold", "greater than or equal"),
    ("[alerts]\nsend_resolved = 1\n", "alerts.send_resolved", "valid boolean"),
    ("[alerts]\nrepeat_interval_s = 0.01\n", "alerts.repeat_interval_s", "greater than or equal"),
    ("[alerts]\nconnectivity_url = 'example.com'\n", "alerts.connectivity_url", "http://"),
    ("[alerts]\ndegraded_ttft_p50_ms = inf\n", "alerts.degraded_ttft_p50_ms", "finite"),
    ("[reports]\nweekly_hour = 24\n", "reports.weekly_hour", "less than or equal to 23"),
    ("[reports]\nweekly_hour = true\n", "reports.weekly_hour", "valid integer"),
    ("[uptime]\nmin_samples = 0\n", "uptime.min_samples", "greater than or equal"),
    ("[uptime]\nfailure_outcomes = ['ok']\n", "uptime.failure_outcomes", "not a failure"),
    ("[uptime]\nfailure_outcomes = ['down']\n", "uptime.failure_outcomes[0]", "Input should be"),
    ('[database]\nurl = "mysql://x"\n', "database.url", "must start with sqlite+aiosqlite://"),
    ('[database]\nurl = "sqlite+aiosqlite:///"\n', "database.url", "give a file"),
    (direct("http://127.0.0.1:99999/v1"), "targets[0].base_url", "port must be a number"),
    (direct("https://u:secret@host/v1"), "targets[0].base_url", "must not carry credentials"),
    (direct("https://host/v1/chat/completions"), "targets[0].base_url", "'https://host/v1'"),
    (direct("https://host/v1?key=x"), "targets[0].base_url", "must not have a query"),
    (direct("https://host/v1#x"), "targets[0].base_url", "must not have a query"),
    (direct("ftp://host/v1"), "targets[0].base_url", "http:// or https://"),
    (direct("https:///v1"), "targets[0].base_url", "has no host"),
    (direct("https://host /v1"), "targets[0].base_url", "white space"),
    (DIRECT + 'base_url = "https://h/v1"\ninterval_s = 0\n', "targets[0].interval_s", "greater"),
    (DIRECT + 'base_url = "https://h/v1"\ncontext_length = -1\n', "targets[0].context_length", ""),
    (DIRECT + 'base_url = "https://h/v1"\nstream_options = 0\n', "targets[0].stream_options", ""),
    (
        '[openrouter]\nbase_url = "https://openrouter.ai/api/v1/chat/completions"\n',
        "openrouter",
        "",
    ),
    (
        '[[alerts.channels]]\nname = "w"\ntype = "webhook"\nurl = "http://h:0/x"\n',
        "alerts.channels[0]",
        "port must be a number",
    ),
]


@pytest.mark.parametrize(("text", "key", "reason"), BROKEN)
def test_broken_values_name_the_key(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = tmp_path / "provmon.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    problems = info.value.problems
    assert any(p.startswith(f"{key}:") or p.startswith(f"{key}.") for p in problems), problems
    assert any(reason in p for p in problems), problems


def test_secrets_in_a_base_url_never_reach_the_message(tmp_path: Path) -> None:
    path = tmp_path / "provmon.toml"
    path.write_text(direct("https://user:hunter2hunter2@host/v1"))
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert "hunter2" not in str(info.value)


def test_good_urls_pass_and_lose_their_trailing_slash() -> None:
    assert http_url("https://api.deepinfra.com/v1/openai/", base=True) == (
        "https://api.deepinfra.com/v1/openai"
    )
    assert http_url("http://127.0.0.1:8080/v1", base=True) == "http://127.0.0.1:8080/v1"
    assert http_url("https://hooks.example/x?token=1", base=False).endswith("?token=1")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: os.mkfifo(p), "not a regular file"),
        (lambda p: p.write_bytes(b'vantage = "\xff\xfe"\n'), "not UTF-8"),
        (lambda p: p.write_text("a = " + "[" * 50_000 + "]" * 50_000 + "\n"), "nested"),
        (lambda p: p.write_text("a = " + "{b = " * 20_000 + "1" + "}" * 20_000 + "\n"), "nested"),
        (lambda p: p.write_text("x = [1, 2\n"), "not valid TOML"),
        (lambda p: p.write_bytes(b"# " + b"x" * (5 * 1024 * 1024)), "at most 4 MiB"),
    ],
)
def test_file_problems_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, reason: str
) -> None:
    path = tmp_path / "provmon.toml"
    make(path)  # type: ignore[operator]
    assert main(["check", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert reason in err
    assert str(path) in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "provmon.toml"
    path.write_text("[schedule]\ninterval_s = inf\nretention_days = true\n[alerts]\nquorum = 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    keys = sorted(p.split(":")[0] for p in info.value.problems)
    assert keys == ["alerts.quorum", "schedule.interval_s", "schedule.retention_days"]


NOW = datetime(2026, 12, 2, tzinfo=UTC)


@pytest.mark.parametrize(
    "parse",
    [
        lambda: parse_when("0001-01-02"),
        lambda: parse_when("9999-12-31"),
        lambda: parse_since("99999999d", NOW),
        lambda: parse_since("999999999m", NOW),
        lambda: parse_since("0001-01-01", NOW),
        lambda: parse_week("0001-W01"),
        lambda: parse_week("9999-W52"),
        lambda: span_period(parse_when("1970-01-02"), parse_when("2999-01-01")),
    ],
)
def test_dates_out_of_range_are_value_errors(parse: object) -> None:
    with pytest.raises(ValueError, match=r"range|before|year|ten years|since"):
        parse()  # type: ignore[operator]


def test_ages_and_dates_in_range() -> None:
    assert parse_since("7d", NOW) == datetime(2026, 11, 25, tzinfo=UTC)
    assert parse_since("90m", NOW) == datetime(2026, 12, 1, 22, 30, tzinfo=UTC)
    assert parse_since("2026-11-20", NOW) == datetime(2026, 11, 20, tzinfo=UTC)
    period = span_period(parse_when("2026-11-20"), parse_when("2026-11-22T12:00"))
    assert period.previous().start == datetime(2026, 11, 17, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "--since", "0001-01-02"],
        ["report", "--since", "2026-11-01", "--until", "99999-01-01"],
        ["report", "--week", "0001-W01"],
        ["incidents", "--since", "99999999d"],
        ["incidents", "--since", "0001-01-01"],
    ],
)
def test_out_of_range_dates_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    cfg = tmp_path / "provmon.toml"
    cfg.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/p.db"\n')
    assert main([*argv, "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip()
    assert not (tmp_path / "p.db").exists()
