"""``export --datalist``: the cohort split as MONAI and nnU-Net files, on the same folds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import SimpleITK as sitk
from monai.data import load_decathlon_datalist
from monai.transforms import LoadImaged

from layer_platform.cli import main
from layer_platform.labels import TISSUE_LAYERS
from layer_platform.settings import LayerPaths
from layer_platform.warehouse.store import Warehouse
from layer_platform_tests.cli import tiny_warehouse
from layer_platform_tests.cli.tiny_warehouse import SHAPE, SUBJECTS


@pytest.fixture
def home_with_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LayerPaths:
    monkeypatch.setenv("LAYER_HOME", str(tmp_path / "home"))
    for var in ("LAYER_WAREHOUSE", "LAYER_ARTIFACTS_DIR"):
        monkeypatch.delenv(var, raising=False)
    paths = LayerPaths.under(tmp_path / "home").ensure()
    tiny_warehouse.build(paths, files=True)
    return paths


def stored_split(paths: LayerPaths) -> dict[str, int | None]:
    rows = Warehouse(paths.warehouse).query("SELECT scan_id, fold FROM cohort_split")
    return {r.scan_id: None if pd.isna(r.fold) else int(r.fold) for r in rows.itertuples()}


def test_monai_datalist_loads_with_the_stored_folds(
    home_with_files: LayerPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "split"
    assert main(["export", "--datalist", str(target)]) == 0
    assert "8 training scans, 4 test scans" in capsys.readouterr().out

    training = load_decathlon_datalist(target / "datalist.json", is_segmentation=False)
    test = load_decathlon_datalist(
        target / "datalist.json", is_segmentation=False, data_list_key="test"
    )
    split = stored_split(home_with_files)
    assert {e["scan_id"]: e["fold"] for e in training} == {
        s: f for s, f in split.items() if f is not None
    }
    assert sorted(e["scan_id"] for e in test) == sorted(s for s, f in split.items() if f is None)
    assert all("fold" not in e for e in test)
    for entry in training + test:
        label, _, annotated = SUBJECTS[entry["subject_id"]]
        assert entry["label"] == (1 if label == "MP" else 0)
        assert ("layers" in entry) == annotated
    # a subject's scans never sit in two folds, nor in a fold and the test set
    folds_of = {}
    for entry in training + test:
        folds_of.setdefault(entry["subject_id"], set()).add(entry.get("fold"))
    assert all(len(folds) == 1 for folds in folds_of.values())
    # the paths open with MONAI's own loader
    annotated = next(e for e in training if "layers" in e and "swe" in e)
    loaded = LoadImaged(keys=["image", "swe", "layers"], image_only=True)(annotated)
    assert tuple(loaded["image"].shape) == SHAPE
    assert set(loaded["layers"].unique().int().tolist()) == {int(x) for x in TISSUE_LAYERS}


def test_nnunet_dataset_and_splits_match_the_folds(
    home_with_files: LayerPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "split"
    assert main(["export", "--datalist", str(target)]) == 0
    assert "4 annotated training scans in 2 folds" in capsys.readouterr().out
    dataset = json.loads((target / "dataset.json").read_text())
    splits = json.loads((target / "splits_final.json").read_text())

    assert dataset["labels"] == {
        "background": 0,
        "dermis": 1,
        "superficial_fat": 2,
        "superficial_fascia": 3,
        "deep_fat": 4,
        "deep_fascia": 5,
        "muscle": 6,
    }
    assert dataset["channel_names"] == {"0": "bmode"} and dataset["file_ending"] == ".nii"
    assert dataset["overwrite_image_reader_writer"] == "SimpleITKIO"
    split = stored_split(home_with_files)
    annotated_dev = {s for s, f in split.items() if f is not None and SUBJECTS[s.split("-")[0]][2]}
    assert set(dataset["dataset"]) == annotated_dev and dataset["numTraining"] == 4
    for case in dataset["dataset"].values():
        # what nnU-Net's SimpleITKIO checks: one geometry for the channels and the labels
        label = sitk.ReadImage(case["label"])
        for image in map(sitk.ReadImage, case["images"]):
            assert image.GetSize() == label.GetSize() == SHAPE
            assert image.GetSpacing() == label.GetSpacing()
    assert len(splits) == 2
    for fold, entry in enumerate(splits):
        assert set(entry["val"]) == {s for s in annotated_dev if split[s] == fold}
        assert set(entry["train"]) == annotated_dev - set(entry["val"])


def test_export_without_a_split_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAYER_HOME", str(tmp_path / "home"))
    paths = LayerPaths.under(tmp_path / "home")
    Warehouse(paths.warehouse).ensure_schema()
    Warehouse(paths.warehouse).query("SELECT 1")  # the file exists, with no rows anywhere
    with Warehouse(paths.warehouse).connect() as con:
        con.execute("DROP TABLE cohort_split")
    argv = ["export", "--datalist", str(tmp_path / "split"), "--to", str(tmp_path / "parquet")]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "no cohort_split table" in err and "train_classifiers" in err
    assert not (tmp_path / "split").exists() and not (tmp_path / "parquet").exists()


def test_exports_land_on_object_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Parquet and split files go to a URL; artifacts on a URL give URL paths in the split."""
    bucket = f"memory://layer-analyst-{tmp_path.name}"
    monkeypatch.setenv("LAYER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LAYER_ARTIFACTS_DIR", f"{bucket}/artifacts")
    paths = LayerPaths.from_env()
    tiny_warehouse.build(paths)
    assert main(["export", "--to", f"{bucket}/warehouse", "--datalist", f"{bucket}/split"]) == 0
    assert "tables and views written" in capsys.readouterr().out

    import duckdb
    import fsspec

    fs = fsspec.filesystem("memory")
    datalist = json.loads(fs.cat(f"{bucket}/split/datalist.json"))
    assert datalist["training"][0]["image"].startswith(f"{bucket}/artifacts/preprocessed/")
    assert {p.rsplit("/", 1)[1] for p in fs.ls(f"{bucket}/split", detail=False)} == {
        "datalist.json",
        "dataset.json",
        "splits_final.json",
    }
    con = duckdb.connect()
    con.register_filesystem(fs)
    ranked = con.execute(
        f"SELECT count(*) FROM read_parquet('{bucket}/warehouse/layer_ranking.parquet')"
    )
    assert ranked.fetchone() == (12,)
