"""A model on disk as two files: ``weights.pt`` (tensors only) and ``architecture.json``.

``torch.load(..., weights_only=True)`` reads tensors and plain containers and refuses anything
that would run code. Before that, both files' SHA-256 digests are checked against the ones
recorded in the registry when the version was created: a corrupt or replaced file is refused,
with the check named, instead of crashing somewhere inside ``load_state_dict``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from layer_platform.tracking.architecture import build, describe

WEIGHTS_FILE = "weights.pt"
ARCHITECTURE_FILE = "architecture.json"
#: The format this module writes, recorded in the architecture file and on the model version.
FORMAT = "layer-weights-v1"


class ModelIntegrityError(RuntimeError):
    """A registered model's files fail the SHA-256 check: they are not the files registered."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_model(model: nn.Module, folder: Path, input_spec: dict[str, Any]) -> dict[str, str]:
    """Write ``model``'s weights and architecture into ``folder``; return each file's SHA-256.

    ``input_spec`` (shape with -1 for free sizes, dtype) documents what the network accepts.
    """
    folder.mkdir(parents=True, exist_ok=True)
    description = {"format": FORMAT, "architecture": describe(model), "input": input_spec}
    (folder / ARCHITECTURE_FILE).write_text(json.dumps(description, indent=2, sort_keys=True))
    state = {key: tensor.detach().cpu() for key, tensor in model.state_dict().items()}
    torch.save(state, folder / WEIGHTS_FILE)
    return {name: sha256_of(folder / name) for name in (WEIGHTS_FILE, ARCHITECTURE_FILE)}


def read_model(folder: Path, expected_sha256: Mapping[str, str], label: str) -> nn.Module:
    """Rebuild the network in ``folder`` once both files match ``expected_sha256`` (file name →
    digest, as :func:`write_model` returned them). ``label`` names the model in errors
    (``name vN``). The module is returned on the CPU, in eval mode.

    Raises:
        ModelIntegrityError: a file is missing, or its SHA-256 is not the registered one.
    """
    for name in (WEIGHTS_FILE, ARCHITECTURE_FILE):
        expected = expected_sha256.get(name)
        found = sha256_of(folder / name) if (folder / name).is_file() else "missing"
        if expected is None or found != expected:
            raise ModelIntegrityError(
                f"{label}: SHA-256 check of {name} failed (file {found[:12]}, registry "
                f"{(expected or 'none recorded')[:12]}); refusing to load it"
            )
    weights = folder / WEIGHTS_FILE
    description = json.loads((folder / ARCHITECTURE_FILE).read_text())
    if description.get("format") != FORMAT:
        raise ValueError(f"{label}: unknown model format {description.get('format')!r}")
    model = build(description["architecture"])
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()
