"""The cohort split for other tools: a MONAI datalist and an nnU-Net dataset on the same folds.

A baseline trained from these files sees exactly the subjects, folds and held-out test set the
platform's classifiers saw (``cohort_split``). Volumes are not copied: entries point at the
preprocessed NIfTI files (``bmode.nii``, ``swe.nii``, ``layers.nii``) where they are stored.

- ``datalist.json``: MONAI's ``load_decathlon_datalist`` format. ``training`` holds every
  development scan with its ``fold``; ``test`` the held-out scans. ``label`` is the pain class
  (1 = MP, 0 = control), so load it with ``is_segmentation=False``; ``layers`` names the
  reference tissue labels where a scan has them, ``swe``/``swe_valid`` the SWE maps.
- ``dataset.json`` + ``splits_final.json``: an nnU-Net v2 layer-segmentation dataset of the
  development scans that have reference layers, its ``dataset`` key pointing at the files in
  place, and one ``{"train", "val"}`` entry per fold of the same split.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from layer_platform.classification.data import encode_label
from layer_platform.imaging.preprocess import FILES
from layer_platform.labels import PAIN_LABELS, TISSUE_LAYERS, Layer
from layer_platform.locations import Location, as_location, is_remote, make_folder, publish

#: One row per scan of the split, with what the exports need to know about its files.
SPLIT_WITH_FILES = """
    SELECT c.scan_id, c.subject_id, c.label, c.fold, s.has_swe, s.has_reference_layers
    FROM cohort_split c JOIN scans s USING (scan_id)
    ORDER BY c.scan_id
"""
DATALIST = "datalist.json"
NNUNET_DATASET = "dataset.json"
NNUNET_SPLITS = "splits_final.json"


def _fold(row: Mapping[str, Any]) -> int | None:
    """The stored fold; NULL (None, NaN or pd.NA, by pandas version) marks a test scan."""
    fold = row["fold"]
    return None if pd.isna(fold) else int(fold)


def monai_datalist(rows: Iterable[Mapping[str, Any]], preprocessed: Location) -> dict[str, Any]:
    """The split as a MONAI decathlon datalist (see the module docstring)."""
    training, test = [], []
    for row in rows:
        folder = preprocessed / row["scan_id"]
        entry: dict[str, Any] = {
            "image": str(folder / FILES["bmode"]),
            "label": encode_label(row["label"]),
            "scan_id": row["scan_id"],
            "subject_id": row["subject_id"],
        }
        if row["has_swe"]:
            entry["swe"] = str(folder / FILES["swe"])
            entry["swe_valid"] = str(folder / FILES["swe_valid"])
        if row["has_reference_layers"]:
            entry["layers"] = str(folder / FILES["layers"])
        fold = _fold(row)
        if fold is None:
            test.append(entry)
        else:
            training.append({**entry, "fold": fold})
    return {
        "name": "LAYER cohort split",
        "description": "pain classification (label: 1 = MP, 0 = control) on subject-level folds",
        "tensorImageSize": "3D",
        "modality": {"0": "bmode"},
        "labels": {str(encode_label(label)): label for label in PAIN_LABELS},
        "numTraining": len(training),
        "numTest": len(test),
        "training": training,
        "test": test,
    }


def nnunet_dataset(
    rows: Iterable[Mapping[str, Any]], preprocessed: Location
) -> tuple[dict[str, Any], list[dict[str, list[str]]]]:
    """``dataset.json`` and ``splits_final.json`` for the annotated development scans."""
    cases = {}
    folds: dict[int, list[str]] = {}
    for row in rows:
        fold = _fold(row)
        if fold is None or not row["has_reference_layers"]:
            continue
        folder = preprocessed / row["scan_id"]
        cases[row["scan_id"]] = {
            "images": [str(folder / FILES["bmode"])],
            "label": str(folder / FILES["layers"]),
        }
        folds.setdefault(fold, []).append(row["scan_id"])
    dataset = {
        "name": "LAYER tissue layers",
        "channel_names": {"0": "bmode"},
        "labels": {"background": int(Layer.BACKGROUND)}
        | {layer.key: int(layer) for layer in TISSUE_LAYERS},
        "numTraining": len(cases),
        "file_ending": ".nii",
        # nnU-Net picks a reader by file ending and lists none for an uncompressed ".nii";
        # SimpleITK reads it, for images and labels alike.
        "overwrite_image_reader_writer": "SimpleITKIO",
        "dataset": cases,
    }
    splits = [
        {
            "train": sorted(c for k, ids in folds.items() if k != fold for c in ids),
            "val": sorted(folds[fold]),
        }
        for fold in sorted(folds)
    ]
    return dataset, splits


def write_exports(
    rows: list[Mapping[str, Any]], preprocessed: Location, target: Location
) -> dict[str, Any]:
    """Write the three files into ``target`` (a folder or URL), each whole; return them by
    file name."""
    dataset, splits = nnunet_dataset(rows, preprocessed)
    documents = {
        DATALIST: monai_datalist(rows, preprocessed),
        NNUNET_DATASET: dataset,
        NNUNET_SPLITS: splits,
    }
    target = as_location(target)
    make_folder(target)
    with tempfile.TemporaryDirectory(prefix="layer-datalist-") as staging:
        for name, document in documents.items():
            text = json.dumps(document, indent=2) + "\n"
            if is_remote(target):
                local = Path(staging) / name
                local.write_text(text)
                publish([local], target)
            else:  # staged beside the target: a rename never crosses file systems
                partial = Path(target) / f".{name}.partial"
                partial.write_text(text)
                os.replace(partial, Path(target) / name)
    return documents
