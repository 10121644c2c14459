"""Where the platform keeps its state: one root, ``LAYER_HOME``, every path overridable.

Paths are resolved lazily from the environment you pass in (nnU-Net's ``paths.py`` pattern), so
tests and resources build their own ``LayerPaths`` instead of reading global state.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from layer_platform.locations import Location, as_location, is_remote, make_folder

#: Environment variables, their meaning and their default (relative to ``LAYER_HOME``).
PATH_VARIABLES: dict[str, tuple[str, str]] = {
    "LAYER_LANDING_DIR": ("landing zone: one folder per scan", "landing"),
    "LAYER_DAGSTER_HOME": ("Dagster instance (dagster.yaml, run and event storage)", "dagster"),
    "LAYER_WAREHOUSE": ("DuckDB warehouse file", "warehouse/layer.duckdb"),
    "LAYER_MLFLOW_DIR": ("MLflow store: sqlite database and artifacts", "mlflow"),
    "LAYER_ARTIFACTS_DIR": (
        "preprocessed volumes, segmentations, attribution maps; may be a URL (s3://...)",
        "artifacts",
    ),
}
#: The only location that may be object storage: the others are a DuckDB file, a sqlite store
#: (a server goes in ``MLFLOW_TRACKING_URI``), the Dagster instance and the guarded landing zone.
REMOTE_CAPABLE = frozenset({"LAYER_ARTIFACTS_DIR"})


@dataclass(frozen=True)
class LayerPaths:
    """Every location the platform reads or writes, derived from one root."""

    home: Path
    landing: Path
    dagster_home: Path
    warehouse: Path
    mlflow_dir: Path
    #: A local ``Path``, or a ``UPath`` on object storage when configured as a URL.
    artifacts: Location
    #: A tracking server's URI (``MLFLOW_TRACKING_URI`` when the paths were resolved), or None.
    #: Captured once: MLflow itself writes that variable whenever a store is activated, so
    #: reading it later would silently follow the last store any code in the process used.
    mlflow_server: str | None = None
    #: The MLflow UI that asset metadata links to (``LAYER_MLFLOW_UI_URL``); None: the tracking
    #: server itself, or ``mlflow ui``'s default address for a local store.
    mlflow_ui_url: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LayerPaths:
        """Resolve paths from ``env`` (default: ``os.environ``); relative paths become absolute.

        Raises:
            ValueError: a URL in a variable other than ``LAYER_ARTIFACTS_DIR``.
        """
        env = os.environ if env is None else env
        home = Path(env.get("LAYER_HOME", ".layer_home")).expanduser().resolve()
        resolved = {
            var: _resolve(var, env.get(var)) or home / default
            for var, (_, default) in PATH_VARIABLES.items()
        }
        return cls(
            home=home,
            landing=resolved["LAYER_LANDING_DIR"],
            dagster_home=resolved["LAYER_DAGSTER_HOME"],
            warehouse=resolved["LAYER_WAREHOUSE"],
            mlflow_dir=resolved["LAYER_MLFLOW_DIR"],
            artifacts=resolved["LAYER_ARTIFACTS_DIR"],
            mlflow_server=env.get("MLFLOW_TRACKING_URI") or None,
            mlflow_ui_url=env.get("LAYER_MLFLOW_UI_URL") or None,
        )

    @classmethod
    def under(cls, home: Path | str) -> LayerPaths:
        """All paths below ``home`` with no overrides: what tests and the simulator use."""
        return cls.from_env({"LAYER_HOME": str(home)})

    def to_env(self) -> dict[str, str]:
        """The variables ``from_env`` reads back as these paths: what a process that must work
        on the same state (a run worker, a code server) is started with."""
        env = {
            "LAYER_HOME": str(self.home),
            "LAYER_LANDING_DIR": str(self.landing),
            "LAYER_DAGSTER_HOME": str(self.dagster_home),
            "LAYER_WAREHOUSE": str(self.warehouse),
            "LAYER_MLFLOW_DIR": str(self.mlflow_dir),
            "LAYER_ARTIFACTS_DIR": str(self.artifacts),
        }
        if self.mlflow_server:
            env["MLFLOW_TRACKING_URI"] = self.mlflow_server
        if self.mlflow_ui_url:
            env["LAYER_MLFLOW_UI_URL"] = self.mlflow_ui_url
        return env

    @property
    def mlflow_tracking_uri(self) -> str:
        """The tracking server if one was configured; else a local sqlite store."""
        return self.mlflow_server or f"sqlite:///{self.mlflow_dir / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> str | None:
        """Local artifact location (so runs never land in the current directory); None with a
        tracking server, which then stores artifacts where the server is configured to."""
        return None if self.mlflow_server else (self.mlflow_dir / "artifacts").as_uri()

    @property
    def quarantine_dir(self) -> Path:
        """Where details of quarantined scans are kept (the folders themselves stay in place)."""
        return self.home / "quarantine"

    def ensure(self) -> LayerPaths:
        """Create the writable folders (the landing zone included) and return ``self``."""
        for path in (
            self.landing,
            self.dagster_home,
            self.warehouse.parent,
            self.mlflow_dir,
            self.artifacts,
        ):
            make_folder(path)
        return self


def _resolve(var: str, value: str | None) -> Location | None:
    """``value`` as an absolute local path or, where allowed, a remote URL; None if unset."""
    if not value:
        return None
    location = as_location(value)
    if is_remote(location):
        if var not in REMOTE_CAPABLE:
            raise ValueError(
                f"{var}={value}: only LAYER_ARTIFACTS_DIR may be a URL; this one must be a"
                " local path (see docs/scale-out.md for the tracking server and the warehouse)"
            )
        return location
    return Path(location).resolve()
