"""The example notebook runs in a real Jupyter kernel against a tiny warehouse.

``examples/query_the_warehouse.ipynb`` is executed with nbclient and ipykernel (the ``dev``
extra); its outputs are checked against the rows ``tiny_warehouse.build`` wrote.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from layer_platform.settings import LayerPaths
from layer_platform_tests.cli.tiny_warehouse import SIDES, SUBJECTS

REPO_ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO_ROOT / "examples" / "query_the_warehouse.ipynb"


def output_of(notebook: nbformat.NotebookNode, tag: str) -> str:
    """The text a tagged cell displayed (its result, or what it printed)."""
    cell = next(c for c in notebook.cells if tag in c.metadata.get("tags", []))
    texts = [
        output.get("data", {}).get("text/plain") or output.get("text", "")
        for output in cell.outputs
    ]
    return "\n".join(texts)


def table_rows(text: str) -> list[list[str]]:
    """A DataFrame's text repr as rows of cells, without the header and the index."""
    return [line.split()[1:] for line in text.splitlines()[1:]]


def test_example_notebook_runs_against_the_warehouse(
    tiny_home: LayerPaths, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the kernel inherits the environment: LAYER_HOME (from tiny_home) and this checkout
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()

    assert {"scans", "cohort_split", "layer_ranking"} <= set(
        ast.literal_eval(output_of(notebook, "tables"))  # the list of names the kernel showed
    )
    top = table_rows(output_of(notebook, "top-layers"))
    assert [(mode, method, layer) for mode, method, layer, *_ in top] == [
        (mode, method, "deep_fascia")
        for mode in ("bmode", "bmode_swe")
        for method in ("ablation", "integrated_gradients")
    ]
    split = {
        part: counts
        for part, *counts in table_rows(output_of(notebook, "split").replace("fold ", "fold_"))
    }
    for part, fold in (("fold_0", 0), ("fold_1", 1), ("test", None)):
        members = [s for s, (_, f, _) in SUBJECTS.items() if f == fold]
        mp = [s for s in members if SUBJECTS[s][0] == "MP"]
        assert split[part] == [
            str(len(members)),
            str(len(members) * len(SIDES)),
            str(len(mp) * len(SIDES)),
        ]
    assert table_rows(output_of(notebook, "bound")) == [
        ["ablation", "deep_fascia", "1"],
        ["ablation", "muscle", "2"],
        ["integrated_gradients", "deep_fascia", "1"],
        ["integrated_gradients", "muscle", "2"],
    ]
    assert (
        output_of(notebook, "snapshot").strip()
        == f"{len(SUBJECTS) * len(SIDES)} scans in the snapshot"
    )
