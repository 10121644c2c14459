"""Shared fixtures (where ``../shared`` real files live, a temporary LAYER_HOME) and the order
the suite runs in.

``make test`` spreads the suite over processes (pytest-xdist, ``--dist loadgroup``): each module
is one group, so its module-scoped cohort is built once, and the modules that share a costly
session fixture are one group too. Groups holding a ``slow`` test are handed out first, so the
long end-to-end tests do not all wait for the end of the run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from layer_platform.settings import LayerPaths

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_REAL = REPO_ROOT.parent / "shared" / "data" / "real"


#: Test modules that share a costly session fixture (a cohort run twice, an MLflow store), by
#: path prefix: one process runs each family, so it builds the fixture once.
SHARED_FIXTURE_MODULES = {
    "from_scratch": tuple(
        f"layer_platform_tests/reliability/test_{name}.py"
        for name in ("determinism", "phi_scan", "scan_failures")
    ),
    "shared_tracking": ("layer_platform_tests/tracking/",),
}


#: What a ``slow`` test without ``seconds`` is taken to cost when groups are ordered.
SLOW_SECONDS = 30.0


def group_of(nodeid: str) -> str:
    """The group one xdist worker takes whole: a shared fixture's family, else the module."""
    module = nodeid.split("::")[0]
    for fixture, prefixes in SHARED_FIXTURE_MODULES.items():
        if module.startswith(prefixes):
            return fixture
    return module


#: The working grid the suite's pipelines run on unless ``LAYER_PRESET`` names another
#: (``LAYER_PRESET=cpu make test`` runs them on the CPU grid): every stage, half the voxels
#: (``PreprocessConfig.smoke``).
TEST_PRESET = "smoke"


def pytest_configure(config: pytest.Config) -> None:
    """The suite's working grid (``TEST_PRESET``), for every process the tests start too.

    In an xdist worker, torch (here and in every process the tests start) takes its share of
    the cores: two workers each running two-thread kernels on two cores spend their time
    waiting on each other's threads."""
    os.environ.setdefault("LAYER_PRESET", TEST_PRESET)
    workers = getattr(config, "workerinput", {}).get("workercount")
    if workers:
        import torch

        threads = str(max(1, (os.cpu_count() or 1) // workers))
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
        torch.set_num_threads(int(threads))


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadgroup`` with the groups of :func:`group_of` (xdist's own loadgroup reads
    ``xdist_group`` marks through a node-id rewrite that pytest 9.2 no longer honours:
    pytest-dev/pytest-xdist#1386)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)


def slow_seconds(item: pytest.Item) -> float:
    """What a ``slow`` test declares it takes under ``make test`` (``slow(seconds=N)``, fixture
    set-up included), else ``SLOW_SECONDS``; 0 for a test that is not slow."""
    marker = item.get_closest_marker("slow")
    return 0.0 if marker is None else float(marker.kwargs.get("seconds", SLOW_SECONDS))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the groups heaviest first (the ``slow`` seconds their tests declare): two workers
    then finish together instead of one running a four-minute test while the other idles (the
    longest-job-first rule). A stable sort keeps each group's tests together and in file order,
    so a plain ``pytest`` run builds every module fixture once too; ``make test`` keeps this
    order with ``--no-loadscope-reorder`` (xdist would hand out the groups with most tests
    first).

    A test that uses a shared fixture outside its family is refused: it would build it again.
    """
    groups = {item: group_of(item.nodeid) for item in items}
    for item in items:
        for fixture in SHARED_FIXTURE_MODULES:
            if fixture in item.fixturenames and groups[item] != fixture:
                raise pytest.UsageError(
                    f"{item.nodeid} uses {fixture}: add its module to SHARED_FIXTURE_MODULES"
                )
    cost: dict[str, float] = {}
    for item in items:
        cost[groups[item]] = cost.get(groups[item], 0.0) + slow_seconds(item)
    first = {group: index for index, group in enumerate(dict.fromkeys(groups.values()))}
    items.sort(
        key=lambda item: (
            -cost[groups[item]],
            groups[item] not in SHARED_FIXTURE_MODULES,  # a shared fixture's family: costly
            first[groups[item]],
        )
    )


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Real ultrasound files written by other software (``../shared/data/real``)."""
    if not SHARED_REAL.is_dir():
        pytest.skip(f"real files not found at {SHARED_REAL}: clone the project beside ../shared")
    return SHARED_REAL


@pytest.fixture
def layer_paths(tmp_path: Path) -> LayerPaths:
    """A fresh, isolated LAYER_HOME for one test."""
    return LayerPaths.under(tmp_path / "layer_home").ensure()
