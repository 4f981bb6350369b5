"""Config loading: valid files become frozen objects; errors name the key and the problem."""

from __future__ import annotations

import base64
from pathlib import Path

import pydantic
import pytest

from monitor.config import Secret, load_config, parse_config
from monitor.errors import ConfigError
from monitor.probing.prompts import build_body, build_prompt
from monitor.probing.tokens import estimate_tokens, tiktoken_counter
from monitor.redact import redact, short_message

GOOD = """
vantage = "eu-west"

[timeouts]
connect_s = 5
first_token_s = 30

[workloads.tiny]
input_tokens = 20
max_tokens = 8

[providers.DeepInfra]
requests_per_s = 2
concurrency = 3

[[targets]]
route = "openrouter"
model = "microsoft/wizardlm-2-8x22b"
providers = ["DeepInfra", "Together"]
workloads = ["tiny", "heartbeat"]

[[targets]]
route = "direct"
model = "microsoft/wizardlm-2-8x22b"
provider = "DeepInfra"
base_url = "https://api.deepinfra.com/v1/openai/"
provider_model = "microsoft/WizardLM-2-8x22B"
api_key_env = "DEEPINFRA_API_KEY"
input_price_per_mtok = 0.5
output_price_per_mtok = 0.6
"""
ENV = {"OPENROUTER_API_KEY": "sk-or-secret-1", "DEEPINFRA_API_KEY": "di-secret-2"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "provmon.toml"
    path.write_text(text)
    return path


def test_good_config_expands_targets_and_resolves_secrets(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), ENV)
    assert cfg.vantage == "eu-west"
    assert cfg.timeouts.connect_s == 5
    assert cfg.timeouts.idle_s == 30  # default kept
    assert [t.key for t in cfg.targets] == [
        "microsoft/wizardlm-2-8x22b|DeepInfra|openrouter",
        "microsoft/wizardlm-2-8x22b|Together|openrouter",
        "microsoft/wizardlm-2-8x22b|DeepInfra|direct",
    ]
    direct = cfg.targets[2]
    assert direct.base_url == "https://api.deepinfra.com/v1/openai"
    assert direct.request_model == "microsoft/WizardLM-2-8x22B"
    assert direct.api_key is not None
    assert direct.api_key.reveal() == "di-secret-2"
    assert direct.prices is not None
    assert direct.prices.output_per_mtok == 0.6
    assert cfg.targets[0].api_key == Secret("sk-or-secret-1")
    assert cfg.workloads["tiny"].name == "tiny"
    assert set(cfg.workloads) >= {"heartbeat", "short", "long", "tiny"}
    assert cfg.limits_for("DeepInfra").concurrency == 3
    assert cfg.limits_for("Unknown").concurrency == 4
    with pytest.raises(pydantic.ValidationError):
        cfg.timeouts.connect_s = 1  # type: ignore[misc]


def test_secrets_never_print(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD), ENV)
    text = repr(cfg) + str(cfg.targets)
    assert "sk-or-secret-1" not in text
    assert "di-secret-2" not in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[timeouts]\nconnect_s = -1\n", "timeouts.connect_s: Input should be greater than 0"),
        ("[timeouts]\nconect_s = 1\n", "timeouts.conect_s: unknown key"),
        ("[timeouts]\nfirst_token_s = 90\ntotal_s = 60\n", "timeouts: total_s must be at least"),
        ('[[targets]]\nroute = "carrier-pigeon"\n', "targets[0]: route must be 'direct' or"),
        ('[[targets]]\nmodel = "m"\n', "targets[0]: missing 'route'"),
        (
            '[[targets]]\nroute = "direct"\nmodel = "m"\nprovider = "p"\n',
            "targets[0].base_url: Field required",
        ),
        (
            '[[targets]]\nroute = "direct"\nmodel = "m"\nprovider = "p"\nbase_url = "ftp://x"\n',
            "targets[0].base_url: must start with http:// or https://",
        ),
        (
            '[[targets]]\nroute = "openrouter"\nmodel = "m"\nproviders = []\n',
            "targets[0]: give providers, endpoints, or both",
        ),
        (
            '[[targets]]\nroute = "openrouter"\nmodel = "m"\nproviders = ["A"]\n'
            'workloads = ["huge"]\n',
            "targets[0].workloads: unknown workload 'huge'",
        ),
        (
            '[[targets]]\nroute = "direct"\nmodel = "m"\nprovider = "p"\n'
            'base_url = "http://x"\napi_key_env = "NOT_SET_ANYWHERE"\n',
            "targets[0].api_key_env: environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            '[[targets]]\nroute = "direct"\nmodel = "m"\nprovider = "p"\n'
            'base_url = "http://x"\napi_key_env = "sk-live-123"\n',
            "targets[0].api_key_env: String should match pattern",
        ),
        (
            '[[targets]]\nroute = "openrouter"\nmodel = "m"\nproviders = ["A", "A"]\n',
            "targets: 'm|A|openrouter' is listed 2 times",
        ),
        ("vantage = \n", "not valid TOML"),
        ("[workloads.x]\ninput_tokens = 0\nmax_tokens = 1\n", "workloads.x.input_tokens"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    assert any(expected in p for p in info.value.problems), info.value.problems
    assert str(write(tmp_path, text)) in str(info.value)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml", {})


def test_openrouter_key_only_needed_with_openrouter_targets() -> None:
    cfg = parse_config({}, {})
    assert cfg.targets == ()
    assert cfg.openrouter_key is None


def test_prompt_size_nonce_and_body() -> None:
    cfg = parse_config(
        {"targets": [{"route": "openrouter", "model": "a/b", "providers": ["X"]}]},
        {"OPENROUTER_API_KEY": "k"},
    )
    long = cfg.workloads["long"]
    p1, p2 = build_prompt(long, "n1"), build_prompt(long, "n2")
    assert p1 != p2
    assert "n1" in p1
    assert 900 <= len(p1.split()) <= 1100  # about one token per filler word
    body = build_body(cfg.targets[0], cfg.workloads["heartbeat"], "n", stream_options=True)
    assert body["stream"] is True
    assert body["max_tokens"] == 1
    assert body["stream_options"] == {"include_usage": True}
    assert body["provider"] == {"only": ["X"], "allow_fallbacks": False}
    body = build_body(cfg.targets[0], cfg.workloads["short"], "n", stream_options=False)
    assert "stream_options" not in body


def test_redaction() -> None:
    text = 'auth failed for Bearer abc.def key sk-proj-ABCDEFGH1234 "api_key": "zzz" mine=s3cr3t'
    out = redact(text, ["s3cr3t"])
    for secret in ("abc.def", "sk-proj-ABCDEFGH1234", "zzz", "s3cr3t"):
        assert secret not in out
    assert len(short_message("x" * 1000)) == 300
    assert short_message(b"a\n\n  b\xff") == "a b\ufffd"


def test_tiktoken_counter_from_a_local_bpe_file(tmp_path: Path) -> None:
    pytest.importorskip("tiktoken")
    # A tiny byte-level BPE: every single byte, plus a merge for "ab".
    ranks = [bytes([i]) for i in range(256)] + [b"ab"]
    lines = [f"{base64.b64encode(tok).decode()} {rank}" for rank, tok in enumerate(ranks)]
    bpe = tmp_path / "tiny.tiktoken"
    bpe.write_text("\n".join(lines) + "\n")
    counter = tiktoken_counter(bpe)
    assert counter.count("ab") == 1
    assert counter.count("abc") == 2
    assert counter.count("") == 0
    with pytest.raises(ValueError, match="cannot read tokenizer file"):
        tiktoken_counter(tmp_path / "missing.tiktoken")
    assert estimate_tokens("abcd" * 10) == 10


def test_probe_byte_cap_and_target_tokenizer(tmp_path: Path) -> None:
    tok = tmp_path / "tokenizer.json"
    tok.write_text("{}")
    target = {"route": "direct", "model": "m", "provider": "p", "base_url": "http://h/v1"}
    cfg = parse_config(
        {"probe": {"max_stream_bytes": 65536}, "targets": [{**target, "tokenizer": str(tok)}]}, {}
    )
    assert cfg.probe.max_stream_bytes == 65536
    assert cfg.targets[0].tokenizer == str(tok)
    assert parse_config({}, {}).probe.max_stream_bytes == 16 * 1024 * 1024
    with pytest.raises(ConfigError, match=r"targets\[0\]\.tokenizer: no such file"):
        parse_config({"targets": [{**target, "tokenizer": str(tmp_path / "nope.json")}]}, {})
    with pytest.raises(ConfigError, match=r"probe\.max_stream_bytes"):
        parse_config({"probe": {"max_stream_bytes": 10}}, {})
    assert parse_config({}, {}).probe.max_events_per_s == 10_000
    with pytest.raises(ConfigError, match=r"probe\.max_events_per_s"):
        parse_config({"probe": {"max_events_per_s": 10}}, {})
