"""``sql`` waits for a writer's lock, then answers; past ``--wait`` it exits 4 in one line."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from layer_platform.cli import main
from layer_platform.settings import LayerPaths

HOLD_WRITE_LOCK = (
    "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]);"
    " print('locked', flush=True); time.sleep(float(sys.argv[2])); con.close()"
)


@contextmanager
def writer_holding(path: Path, seconds: float) -> Iterator[float]:
    """Another process with a read-write connection (the lock a pipeline step holds)."""
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD_WRITE_LOCK, str(path), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "locked"
        yield time.monotonic()
    finally:
        writer.wait(timeout=60)


def test_sql_retries_until_the_writer_is_done(
    tiny_home: LayerPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    with writer_holding(tiny_home.warehouse, 1.5) as locked_at:
        assert (
            main(["sql", "--wait", "60", "--format", "csv", "SELECT count(*) AS n FROM scans"]) == 0
        )
        waited = time.monotonic() - locked_at
    assert capsys.readouterr().out.splitlines() == ["n", "12"]
    assert waited > 1.0


@pytest.mark.parametrize(
    "argv", [["sql", "SELECT 1"], ["status"], ["snapshot", "copy.duckdb"]], ids=lambda a: a[0]
)
def test_reads_give_up_after_wait_with_exit_4(
    tiny_home: LayerPaths,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    with writer_holding(tiny_home.warehouse, 1.5):
        assert main([*argv, "--wait", "0.5"]) == 4
    err = capsys.readouterr().err
    assert err.startswith(f"layer-platform {argv[0]}: error: ") and "locked by a writer" in err
    assert "snapshot" in err and err.count("\n") == 1
    assert not (tmp_path / "copy.duckdb").exists()
