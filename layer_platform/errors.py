"""Errors that name the scan and the problem, so bad input is quarantined rather than fatal."""

from __future__ import annotations


class ScanError(Exception):
    """A problem with one scan's input: the scan is quarantined, the rest of the cohort goes on.

    Args:
        reason: what is wrong, phrased for the person who exported the scan.
        folder: the landing folder's name, when known.
        scan_id: the scan's id from ``scan.json``, when it could be read.
    """

    def __init__(self, reason: str, *, folder: str | None = None, scan_id: str | None = None):
        self.reason = reason
        self.folder = folder
        self.scan_id = scan_id
        super().__init__(self._message())

    def _message(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"folder {self.folder!r}" if self.folder else "",
                f"scan {self.scan_id!r}" if self.scan_id else "",
            )
            if part
        )
        return f"{where}: {self.reason}" if where else self.reason

    def located(self, *, folder: str | None = None, scan_id: str | None = None) -> ScanError:
        """Return a copy that also names the folder and scan (readers do not know them)."""
        return type(self)(
            self.reason, folder=self.folder or folder, scan_id=self.scan_id or scan_id
        )


class VolumeReadError(ScanError):
    """An image file cannot be read as a 3D volume (corrupt, truncated, wrong dimensionality)."""


class ConfigurationError(Exception):
    """The platform is misconfigured (a path, an environment variable); not a data problem."""
