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


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _git() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
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
