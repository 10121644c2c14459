"""Artifact locations: local paths and fsspec URLs behave the same for the platform's files.

fsspec's in-memory file system stands in for object storage: ``UPath`` drives it through the
same fsspec calls (``put_file``, ``get_file``, ``ls``, ``rm``) that s3fs and gcsfs implement.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from upath import UPath

from layer_platform.io import Volume, read_volume, write_volume
from layer_platform.locations import as_location, is_remote, local_copy, remove_tree
from layer_platform.settings import LayerPaths


@pytest.fixture
def bucket() -> Iterator[UPath]:
    root = UPath(f"memory://layer-test-{uuid.uuid4().hex}")
    yield root
    remove_tree(root)


def test_local_paths_and_file_urls_stay_pathlib(tmp_path: Path) -> None:
    assert as_location(str(tmp_path)) == tmp_path
    assert as_location(tmp_path.as_uri()) == tmp_path
    assert isinstance(as_location(tmp_path.as_uri()), Path)
    remote = as_location("memory://bucket/layer")
    assert is_remote(remote) and str(remote) == "memory://bucket/layer"
    assert not is_remote(as_location(tmp_path))


@pytest.mark.parametrize("name", ["bmode.nii", "map.nii.gz", "layers.nhdr", "bmode.mha"])
def test_volumes_round_trip_through_object_storage(bucket: UPath, name: str) -> None:
    """Detached headers (.nhdr) included: their data file is published and fetched with them."""
    rng = np.random.default_rng(0)
    array = rng.integers(0, 7, size=(6, 5, 4)).astype(np.uint8)
    target = bucket / "scan" / name
    assert write_volume(target, Volume(array, (0.2, 0.1, 0.5))) == target
    assert target.is_file()
    back = read_volume(target)
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.spacing, (0.2, 0.1, 0.5), rtol=1e-6)
    assert not any(p.name.startswith(".") for p in target.parent.iterdir()), "no staging debris"


def test_local_copy_is_removed_after_use(bucket: UPath) -> None:
    target = bucket / "scan" / "bmode.nii"
    write_volume(target, Volume(np.ones((3, 3, 3), np.float32), (1.0, 1.0, 1.0)))
    with local_copy(target) as local:
        assert local.is_file() and local.name == "bmode.nii"
    assert not local.exists()


def test_remove_tree_removes_a_remote_folder(bucket: UPath) -> None:
    folder = bucket / "saliency" / "S0001-L"
    write_volume(folder / "bmode_ig.nii.gz", Volume(np.zeros((2, 2, 2), np.float32), (1, 1, 1)))
    remove_tree(folder)
    assert not folder.exists()
    remove_tree(folder)  # a missing folder is fine


def test_only_the_artifacts_location_may_be_a_url(tmp_path: Path) -> None:
    env = {"LAYER_HOME": str(tmp_path), "LAYER_ARTIFACTS_DIR": "memory://bucket/artifacts"}
    paths = LayerPaths.from_env(env)
    assert is_remote(paths.artifacts) and str(paths.artifacts) == "memory://bucket/artifacts"
    assert paths.warehouse == tmp_path / "warehouse" / "layer.duckdb"
    with pytest.raises(ValueError, match=re.escape("LAYER_WAREHOUSE=s3://b/layer.duckdb: only")):
        LayerPaths.from_env({**env, "LAYER_WAREHOUSE": "s3://b/layer.duckdb"})
