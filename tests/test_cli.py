"""The command line, run as a user runs it, against the simulator served from a thread."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import parse_config
from monitor.simulator import DEMO_MODEL, Simulator
from tests.conftest import SIM_THREAD_KEY as KEY
from tests.factories import config_doc, direct_target, openrouter_target
from tests.factories import write_config as write_config_file

SECTION2_FIELDS = {
    "ttft_ms",
    "ttfa_ms",
    "latency_ms",
    "output_tokens",
    "token_source",
    "decode_tps",
    "e2e_tps",
    "chunks",
    "buffered",
    "cost_usd",
    "input_tokens",
    "http_status",
    "retry_after_s",
    "outcome",
    "error_kind",
    "started_at",
    "model",
    "provider",
    "route",
    "vantage",
    "workload",
}


def write_config(tmp_path: Path, sim: Simulator) -> Path:
    doc = config_doc(
        [
            openrouter_target(["plain", "http-500"], workloads=["small"]),
            direct_target(
                sim.direct_base_url("comments"), "comments", key_env="SIM_KEY", workloads=["small"]
            ),
        ],
        vantage="cli-test",
        timeouts={"first_token_s": 2, "idle_s": 1, "total_s": 5},
        workloads={"small": {"input_tokens": 20, "max_tokens": 10}},
        openrouter={"base_url": sim.openrouter_base_url, "api_key_env": "SIM_KEY"},
    )
    return write_config_file(tmp_path / "provmon.toml", doc)


def test_probe_json_prints_one_object_per_probe(
    threaded_sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIM_KEY", KEY)
    cfg = write_config(tmp_path, threaded_sim)
    code = main(["probe", "-c", str(cfg), "--json", "--count", "2"])
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 6
    for obj in lines:
        assert set(obj) >= SECTION2_FIELDS
        assert obj["vantage"] == "cli-test"
    by_provider = {o["provider"]: o for o in lines}
    assert by_provider["plain"]["outcome"] == "ok"
    assert by_provider["comments"]["outcome"] == "ok"
    assert by_provider["http-500"]["outcome"] == "stream_error"
    assert code == 1  # not every probe was ok
    assert KEY not in out


def test_probe_table_and_filter(
    threaded_sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SIM_KEY", KEY)
    cfg = write_config(tmp_path, threaded_sim)
    code = main(["probe", "-c", str(cfg), "--provider", "plain", "--count", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0].startswith("provider")
    assert out.count("plain") >= 3  # two rows and the comparison
    assert "uptime%" in out


def test_adhoc_probe(
    threaded_sim: Simulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_KEY", KEY)
    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "probe",
            "--base-url",
            threaded_sim.direct_base_url("reasoning"),
            "--model",
            DEMO_MODEL,
            "--provider",
            "reasoning",
            "--api-key-env",
            "MY_KEY",
            "--workload",
            "short",
            "--json",
        ]
    )
    obj = json.loads(capsys.readouterr().out)
    assert code == 0
    assert obj["outcome"] == "ok"
    assert obj["workload"] == "short"
    assert obj["ttft_ms"] < obj["ttfa_ms"]


def test_discover_prints_loadable_toml(
    threaded_sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "discover",
            DEMO_MODEL,
            "--base-url",
            threaded_sim.openrouter_base_url,
            "--api-key-env",
            "X",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    doc = tomllib.loads(out)
    target = doc["targets"][0]
    assert target["route"] == "openrouter"
    assert target["model"] == DEMO_MODEL
    by_tag = {e["endpoint"]: e for e in target["endpoints"]}
    assert {"plain/fp8", "comments/fp8", "http-500/fp8"} <= set(by_tag)
    assert by_tag["plain/fp8"]["provider"] == "plain"
    assert by_tag["plain/fp8"]["context_length"] > 0
    # What discover prints is a valid config: each endpoint a target pinned by its tag.
    cfg = parse_config(doc, {"OPENROUTER_API_KEY": "k"})
    plain = next(t for t in cfg.targets if t.provider == "plain/fp8")
    assert plain.pin == "plain/fp8"
    assert plain.context_length == by_tag["plain/fp8"]["context_length"]
    assert plain.prices is not None


def test_discover_unknown_model_is_a_clear_error(
    threaded_sim: Simulator, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["discover", "nobody/nothing", "--base-url", threaded_sim.openrouter_base_url])
    err = capsys.readouterr().err
    assert code == 1
    assert "HTTP 404" in err


def test_check_good_and_bad(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = write_config_file(
        tmp_path / "good.toml",
        config_doc([openrouter_target(["X", "Y"], model="a/b")], database=tmp_path / "p.db"),
    )
    monkeypatch.setenv("OPENROUTER_API_KEY", "k")
    assert main(["check", "-c", str(good)]) == 1  # config fine, database not migrated
    captured = capsys.readouterr()
    assert "2 targets" in captured.out
    assert "run `provmon db upgrade`" in captured.err
    assert main(["db", "upgrade", "-c", str(good)]) == 0
    assert "upgraded from empty" in capsys.readouterr().out
    assert main(["check", "-c", str(good)]) == 0
    assert "database reachable" in capsys.readouterr().out
    monkeypatch.delenv("OPENROUTER_API_KEY")
    assert main(["check", "-c", str(good)]) == 2
    err = capsys.readouterr().err
    assert "openrouter.api_key_env: environment variable OPENROUTER_API_KEY is not set" in err
    bad = write_config_file(tmp_path / "bad.toml", config_doc(timeouts={"idle_s": "soon"}))
    assert main(["check", "-c", str(bad)]) == 2
    assert "timeouts.idle_s" in capsys.readouterr().err
    assert main(["check", "-c", str(tmp_path / "missing.toml")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["probe", "--base-url", "http://127.0.0.1:1/v1"]) == 2
    assert "--base-url and --model go together" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["probe", "--count", "0"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "demo" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_runs_and_compares_providers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    workdir = tmp_path / "demo"
    code = main(["demo", "--duration", "6", "--interval", "1", "--dir", str(workdir)])
    out = capsys.readouterr().out
    assert code == 0
    assert list(here.iterdir()) == []  # everything went under --dir
    assert (workdir / "provmon-demo.db").exists()
    assert list((workdir / "reports").glob("*/*/report.html"))
    for provider in ("Swiftly", "Budget", "Flaky", "Throttled"):
        assert provider in out
    assert "uptime%" in out
    assert "rate_limited" in out or "rate_ltd%" in out


def test_database_trouble_is_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config_file(
        tmp_path / "provmon.toml",
        config_doc(database="postgresql+asyncpg://nobody@127.0.0.1:1/none"),
    )
    for command in (["status"], ["report"], ["incidents"], ["check"], ["db", "upgrade"]):
        assert main([*command, "-c", str(cfg)]) == 1, command
        err = capsys.readouterr().err
        assert "cannot reach the database" in err, (command, err)
        assert "Traceback" not in err
    monkeypatch.setenv("DB_URL", "postgresql://u:secret@127.0.0.1/db")
    write_config_file(cfg, config_doc(database={"url_env": "DB_URL"}))
    assert main(["check", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "database.url_env: the URL in DB_URL must start with" in err
    assert "secret" not in err
