"""Durability at the edges: read-only commands never create a database, the spill is proven
writable before it is needed, Apprise URLs are checked, pruning never drops what is still due."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.cli import main
from tests.factories import config_doc, write_config


@pytest.mark.parametrize(
    "argv",
    [["status"], ["status", "--json"], ["report"], ["incidents"], ["check"]],
)
def test_read_only_commands_never_create_a_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    db = tmp_path / "missing.db"
    cfg = write_config(tmp_path / "provmon.toml", config_doc(database=db))
    assert main([*argv, "-c", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"no database at {db}" in err
    assert "provmon db upgrade" in err
    assert not db.exists()
    assert main(["db", "upgrade", "-c", str(cfg)]) == 0  # the one command that creates it
    assert db.exists()


def write_cfg(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "provmon.toml"
    cfg.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/p.db"\n{extra}')
    return cfg


def test_check_proves_the_spill_writable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "blocked").write_text("a file, not a folder")
    cfg = write_cfg(tmp_path, f'spill_path = "{tmp_path}/blocked/spill.jsonl"\n')
    assert main(["db", "upgrade", "-c", str(cfg)]) == 0
    assert main(["check", "-c", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert f"spill: cannot write {tmp_path}/blocked/spill.jsonl" in err
    good = write_cfg(tmp_path, f'spill_path = "{tmp_path}/ok/spill.jsonl"\n')
    assert main(["check", "-c", str(good)]) == 0
    assert "spill file" in capsys.readouterr().out
    assert list((tmp_path / "ok").iterdir()) == []  # the probe file was removed


def test_run_refuses_an_unwritable_spill_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "blocked").write_text("x")
    cfg = write_cfg(
        tmp_path,
        f'spill_path = "{tmp_path}/blocked/s.jsonl"\n'
        '[[targets]]\nroute = "direct"\nmodel = "m"\nprovider = "p"\n'
        'base_url = "http://127.0.0.1:9/v1"\n',
    )
    assert main(["db", "upgrade", "-c", str(cfg)]) == 0
    assert main(["run", "-c", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "spill: cannot write" in err
    assert "Traceback" not in err


def test_check_validates_apprise_urls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_cfg(
        tmp_path,
        '[[alerts.channels]]\nname = "chat"\ntype = "apprise"\nurl = "nosuchscheme://x"\n',
    )
    assert main(["check", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "alerts.channels[0]" in err
    assert "Apprise does not understand" in err


async def test_pruning_keeps_every_row_still_to_send(migrated: AsyncEngine) -> None:
    from sqlalchemy import insert, select

    from monitor.storage.schema import IncidentRow, JobRunRow, OutboxRow
    from monitor.storage.store import Store

    old, new = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)
    cutoff = datetime(2026, 11, 1, tzinfo=UTC)
    async with migrated.begin() as conn:
        ended, still_open = (
            (
                await conn.execute(
                    insert(IncidentRow).returning(IncidentRow.id),
                    [
                        {
                            "kind": "down",
                            "started_at": old,
                            "ended_at": end,
                            "vantages": [],
                            "error_kinds": {},
                        }
                        for end in (old, None)
                    ],
                )
            )
            .scalars()
            .all()
        )
        rows = []
        for incident, status, created in [
            (ended, "sent", old),  # pruned
            (ended, "failed", old),  # pruned: given up long ago
            (ended, "pending", old),  # kept: still to send
            (ended, "sending", old),  # kept: claimed
            (ended, "sent", new),  # kept: recent
            (still_open, "sent", old),  # kept: its incident is open
        ]:
            rows.append(
                {
                    "incident_id": incident,
                    "transition": f"{status}-{created.month}",
                    "channel": "hook",
                    "payload": {},
                    "status": status,
                    "next_attempt_at": created,
                    "created_at": created,
                }
            )
        await conn.execute(insert(OutboxRow), rows)
        await conn.execute(
            insert(JobRunRow),
            [
                {"name": "prune", "period": "2026-10-01", "vantage": "v", "ran_at": old},
                {"name": "prune", "period": "2026-11-30", "vantage": "v", "ran_at": new},
            ],
        )
    outbox, runs = await Store(migrated).prune_bookkeeping(cutoff)
    assert (outbox, runs) == (2, 1)
    async with migrated.connect() as conn:
        left = {
            (r.incident_id == still_open, r.status, r.created_at.month)
            for r in await conn.execute(select(OutboxRow))
        }
        periods = set((await conn.execute(select(JobRunRow.period))).scalars())
    assert left == {
        (False, "pending", 10),
        (False, "sending", 10),
        (False, "sent", 11),
        (True, "sent", 10),
    }
    assert periods == {"2026-11-30"}
