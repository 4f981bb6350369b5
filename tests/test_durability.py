"""Durability at the edges: commands that only read never create a database."""

from __future__ import annotations

from pathlib import Path

import pytest

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
