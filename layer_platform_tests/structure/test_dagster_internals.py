"""Every private Dagster name the project imports is pinned here: a Dagster upgrade that moves,
renames or changes one fails this test, naming it, instead of failing somewhere downstream."""

import ast
from pathlib import Path

import dagster as dg

import layer_platform
import layer_platform_tests
from layer_platform.orchestration import dagster_internals
from layer_platform_tests import dagster_internals as test_internals

PRODUCT_MODULE = "layer_platform/orchestration/dagster_internals.py"
TESTS_MODULE = "layer_platform_tests/dagster_internals.py"


def test_partition_range_tags_keep_their_values():
    """The tags a batched run carries; their values are what the daemon and UI read."""
    assert dagster_internals.ASSET_PARTITION_RANGE_START_TAG == (
        "dagster/asset_partition_range_start"
    )
    assert dagster_internals.ASSET_PARTITION_RANGE_END_TAG == "dagster/asset_partition_range_end"


def test_define_asset_job_returns_the_pinned_class():
    """The return type ``defs/jobs.py`` annotates its job factory with."""
    job = dg.define_asset_job("pinned", selection=dg.AssetSelection.assets("a"))
    assert isinstance(job, dagster_internals.UnresolvedAssetJobDefinition)


def test_test_only_internals_keep_their_meaning():
    assert test_internals.DATA_VERSION_TAG == "dagster/data_version"
    assert {"FRESH", "STALE", "MISSING"} <= set(test_internals.StaleStatus.__members__)
    assert "SUCCEEDED" in test_internals.AssetCheckExecutionRecordStatus.__members__
    assert callable(test_internals.CachingStaleStatusResolver)
    assert callable(test_internals.LoadingContextForTest)


def _private_dagster_imports(root: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            private = [n for n in names if n.startswith("dagster._")]
            if private:
                found.setdefault(path.relative_to(root.parent).as_posix(), []).extend(private)
    return found


def test_private_dagster_imports_live_in_the_two_pinned_modules():
    for package in (layer_platform, layer_platform_tests):
        root = Path(package.__file__).parent
        found = _private_dagster_imports(root)
        assert set(found) <= {PRODUCT_MODULE, TESTS_MODULE}, found


def test_launch_internals_keep_their_shape(tmp_path: Path):
    """What ``orchestration/launcher.py`` builds a code server and a run with, and the name
    of the daemon that drains Dagster's default (queued) run coordinator."""
    instance = dg.DagsterInstance.from_config(str(tmp_path))
    assert isinstance(instance.run_coordinator, dg.QueuedRunCoordinator)
    assert dagster_internals.QUEUED_RUN_DAEMON in instance.get_required_daemon_types()
    target = dagster_internals.ModuleTarget("layer_platform.definitions", "defs", None, "loc")
    (origin,) = target.create_origins()
    assert origin.location_name == "loc"
    assert origin.loadable_target_origin.module_name == "layer_platform.definitions"
    selector = dagster_internals.JobSubsetSelector(
        location_name="loc", repository_name="r", job_name="j", op_selection=None
    )
    assert selector.job_name == "j"
    assert callable(dagster_internals.WorkspaceProcessContext.create_request_context)
