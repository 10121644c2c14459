"""Artifact locations: a local ``Path``, or a ``UPath`` for a URL such as ``s3://bucket/layer``.

Moving artifacts to object storage must be a configuration change (``LAYER_ARTIFACTS_DIR``),
so code that writes or reads them takes a ``Location`` and calls the helpers here for the three
things the imaging libraries cannot do on a URL: hand a reader a local file, publish files a
writer produced locally, and remove a folder. Local paths keep plain ``pathlib`` semantics
(atomic ``os.replace``, symlink checks); remote ones go through fsspec, where one ``put`` of an
object makes it appear whole or not at all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from upath import UPath

Location = Path | UPath


def as_location(value: str | os.PathLike[str]) -> Location:
    """``Path`` for a local path or ``file://`` URL; ``UPath`` for any other URL.

    A remote scheme needs its fsspec driver installed (``s3fs`` for ``s3://``, ``gcsfs`` for
    ``gs://``, ``adlfs`` for ``abfs://``); fsspec names the missing package if it is not.
    """
    if isinstance(value, UPath) and is_remote(value):
        return value
    text = os.fspath(value)
    if "://" not in text:
        return Path(text).expanduser()
    parts = urlsplit(text)
    if parts.scheme == "file":
        return Path(parts.path)
    return UPath(text)


def is_remote(location: Location) -> bool:
    """True for a location on an fsspec file system other than the local one."""
    return isinstance(location, UPath) and location.protocol not in ("", "file", "local")


@contextmanager
def local_copy(location: Location) -> Iterator[Path]:
    """A local file with ``location``'s content, for readers that only open local files.

    A local location is yielded as is. A remote one is downloaded into a temporary folder that
    is removed afterwards, together with its siblings of the same stem (the data file of a
    detached ``.mhd``/``.nhdr`` header).
    """
    if not is_remote(location):
        yield Path(location)
        return
    stem = location.name.split(".")[0]
    with tempfile.TemporaryDirectory(prefix="layer-fetch-") as tmp:
        siblings = [p for p in location.parent.iterdir() if p.name.split(".")[0] == stem]
        for remote in siblings or [location]:
            location.fs.get_file(remote.path, os.path.join(tmp, remote.name))
        yield Path(tmp) / location.name


def publish(files: Sequence[Path], folder: UPath) -> None:
    """Upload local ``files`` into ``folder`` in the given order, one whole object each."""
    for file in files:
        folder.fs.put_file(str(file), (folder / file.name).path)


def make_folder(location: Location) -> None:
    """Create a local folder (and parents); object stores have no folders to create."""
    if not is_remote(location):
        Path(location).mkdir(parents=True, exist_ok=True)


def remove_tree(location: Location) -> None:
    """Remove a folder and everything below it; a missing one is fine."""
    if not is_remote(location):
        shutil.rmtree(location, ignore_errors=True)
    elif location.exists():
        location.fs.rm(location.path, recursive=True)
