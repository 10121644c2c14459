"""Facts about the machine a report came from: CPU, threads, memory, versions, device, load."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


def _proc_field(path: str, key: str) -> str | None:
    """The value of ``key: value`` in a ``/proc`` file, or None where there is none."""
    try:
        for line in Path(path).read_text().splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key:
                return value.strip()
    except OSError:
        pass
    return None


def _cpu_model() -> str:
    return _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    total = _proc_field("/proc/meminfo", "MemTotal")  # "24641160 kB"
    return round(int(total.split()[0]) / 2**20, 1) if total else None


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _git() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    try:
        sha = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha} (uncommitted changes)" if dirty else sha


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min), {five:.1f} (5 min)"


def machine_facts(device: torch.device, threads: int) -> dict[str, Any]:
    """What the report's "Machine" table shows."""
    cuda = device.type == "cuda"
    return {
        "cpu_model": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)),
        "torch_threads": threads,
        "memory_gib": _memory_gib(),
        "device": torch.cuda.get_device_name(device) if cuda else "cpu (no CUDA device)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "captum": _package("captum"),
        "monai": _package("monai"),
        "duckdb": _package("duckdb"),
        "pandas": _package("pandas"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": _git(),
        "load_average_start": load_average(),
    }
