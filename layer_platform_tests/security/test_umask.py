"""What the platform creates is private to its user (umask 077) unless LAYER_UMASK says else."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from layer_platform.cli import main
from layer_platform.io import Volume, write_volume
from layer_platform.settings import LayerPaths
from layer_platform.umask import apply_umask, configured_umask
from layer_platform.warehouse.store import Warehouse


@pytest.fixture
def restored_umask() -> Iterator[None]:
    """The umask is process-wide: put back the one pytest started with."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield
    os.umask(previous)


def create_warehouse_and_artifact(home: Path) -> list[Path]:
    paths = LayerPaths.under(home).ensure()
    with Warehouse(paths.warehouse).connect() as connection:
        connection.execute("CREATE TABLE scans (scan_id VARCHAR)")
    write_volume(
        paths.artifacts / "scan" / "bmode.nii", Volume(np.zeros((4, 4, 4), "f4"), (1.0,) * 3)
    )
    return [paths.warehouse, paths.artifacts / "scan" / "bmode.nii", paths.artifacts / "scan"]


def others_and_group(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode) & 0o077


def test_created_files_are_private_by_default(tmp_path: Path, restored_umask: None) -> None:
    os.umask(0o022)  # a typical login umask: world-readable
    assert apply_umask({}) == 0o077
    created = create_warehouse_and_artifact(tmp_path / "home")
    assert {path.name: oct(others_and_group(path)) for path in created} == {
        path.name: "0o0" for path in created
    }


def test_a_shared_group_can_be_configured(tmp_path: Path, restored_umask: None) -> None:
    apply_umask({"LAYER_UMASK": "027"})
    warehouse = create_warehouse_and_artifact(tmp_path / "home")[0]
    assert stat.S_IMODE(warehouse.stat().st_mode) & 0o077 == 0o040  # group reads, others nothing


def test_the_cli_entry_point_applies_it(
    tmp_path: Path, restored_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    os.umask(0o022)
    monkeypatch.setenv("LAYER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAYER_UMASK", "007")
    assert main(["status"]) == 0
    assert os.umask(0o022) == 0o007


@pytest.mark.parametrize("value", ["rw", "1000", "020"])
def test_a_bad_or_world_writable_mask_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="LAYER_UMASK"):
        configured_umask({"LAYER_UMASK": value})
