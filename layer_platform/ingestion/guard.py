"""One folder's unexpected failure becomes that folder's quarantine reason, not the cohort's end."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from layer_platform.errors import ScanError


def unexpected(step: str, exc: BaseException) -> ScanError:
    """The reason for an exception no check anticipated: the step and the class, no message.

    The message is left out on purpose: a library's message can quote the input (a header
    field, a JSON value), and a reason is stored and logged.
    """
    return ScanError(
        f"{step} failed unexpectedly ({type(exc).__name__}); the folder is quarantined and the"
        " rest of the cohort goes on"
    )


@contextmanager
def guarded(step: str) -> Iterator[None]:
    """Let ``ScanError`` through; turn any other ``Exception`` (``RecursionError``,
    ``MemoryError``, ``IsADirectoryError``, a library's ``ValueError``) into one."""
    try:
        yield
    except ScanError:
        raise
    except Exception as exc:  # see the docstring: any failure of one folder is that folder's
        raise unexpected(step, exc) from None
