"""The file-creation mask for everything the platform writes: private to its user by default.

Warehouse, MLflow store, artifacts, state files and the Dagster home hold derived clinical
data and code-bearing models; ``077`` keeps them out of reach of other local users. A team
sharing the files through a group sets ``LAYER_UMASK=027`` (group may read) or ``007``.
Applied once, at the entry points (``cli.main`` and the Definitions module that ``dagster``
loads), never as a side effect of importing a library module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_UMASK = 0o077


def configured_umask(env: Mapping[str, str]) -> int:
    """``LAYER_UMASK`` as an octal mask (``077`` when unset).

    Raises:
        ValueError: not an octal number from 000 to 777, or a mask that leaves files writable
            by every user (its "others write" bit is clear).
    """
    text = env.get("LAYER_UMASK", "").strip()
    if not text:
        return DEFAULT_UMASK
    try:
        mask = int(text, 8)
    except ValueError:
        raise ValueError(
            f"LAYER_UMASK must be an octal mask such as 077 or 027; got {text!r}"
        ) from None
    if not 0 <= mask <= 0o777:
        raise ValueError(f"LAYER_UMASK must be between 000 and 777; got {text!r}")
    if not mask & 0o002:
        raise ValueError(f"LAYER_UMASK={text} would let every user modify the platform's files")
    return mask


def apply_umask(env: Mapping[str, str] | None = None) -> int:
    """Set the process umask from ``env`` (default: ``os.environ``); return the mask set."""
    mask = configured_umask(os.environ if env is None else env)
    os.umask(mask)
    return mask
