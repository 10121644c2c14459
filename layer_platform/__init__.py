"""LAYER platform: which tissue layer drives a model's prediction of myofascial pain?

Domain code (``io``, ``ingestion``, ``simulation``, ``imaging``, ``warehouse``, ``quality``)
imports nothing from Dagster; the Dagster wiring lives in ``layer_platform.defs``.

For notebooks: ``layer_platform.query(sql)`` returns a DataFrame from the warehouse and
``layer_platform.connect()`` a read-only handle on it (``layer_platform.analysis``). Both are
imported on first use, so ``import layer_platform`` itself loads nothing heavy.
"""

from __future__ import annotations

from typing import Any

#: Names resolved lazily by ``__getattr__`` (PEP 562).
_ANALYSIS = frozenset({"connect", "query"})
__all__ = ["__version__", "connect", "query"]


def __getattr__(name: str) -> Any:
    if name in _ANALYSIS:
        from layer_platform import analysis

        return getattr(analysis, name)
    if name == "__version__":
        return package_version()
    raise AttributeError(f"module 'layer_platform' has no attribute {name!r}")


def package_version() -> str:
    """The installed distribution's version (pyproject.toml is the one place it is written)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("layer-platform")
    except PackageNotFoundError:  # a source checkout on PYTHONPATH, never installed
        return "0+unknown"
