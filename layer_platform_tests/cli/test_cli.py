"""The console script: every command has --help, and simulate/run/status work end to end."""

from __future__ import annotations

import pytest

from layer_platform.cli import build_parser, main
from layer_platform.settings import LayerPaths
from layer_platform.simulation import SimulationConfig, ground_truth_path, load_ground_truth
from layer_platform.simulation.config import SCENARIO_FIELDS


@pytest.mark.parametrize(
    "command", ["simulate", "run", "status", "ranking", "export", "sql", "snapshot", "dev"]
)
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: layer-platform" in capsys.readouterr().out


def test_simulate_arrive_run_and_status(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAYER_HOME", str(tmp_path / "home"))
    assert (
        main(
            [
                "simulate",
                "--subjects",
                "3",
                "--seed",
                "2",
                "--bmode-driver",
                "deep_fat",
                "--swe-driver",
                "none",
                "--bmode-effect-db",
                "4",
            ]
        )
        == 0
    )
    assert main(["simulate", "--arrive", "2"]) == 0
    # in-process: launching costs a code server and a run process (~45 s more on two loaded
    # cores); the launched path is covered by defs/test_launched_runs.py and the PHI scan
    assert main(["run", "--until", "ingest", "--in-process"]) == 0
    capsys.readouterr()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert "scans=8" in out and "subjects=4" in out


def test_unknown_driver_layer_is_a_clear_error(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAYER_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="unknown tissue layer"):
        main(["simulate", "--subjects", "2", "--bmode-driver", "fascia"])


def test_simulate_takes_every_simulator_scenario(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAYER_HOME", str(tmp_path))
    given = {
        "bmode_driver2": "superficial_fascia",
        "bmode_driver_kind": "texture",
        "bmode_spill_mm": 1.5,
        "swe_spill_mm": 2.0,
        "thickness_effect": 0.3,
        "unilateral_fraction": 0.5,
        "site_confounding": 0.4,
        "fat_confounding": 0.2,
        "swe_coverage_confounding": 0.3,
    }
    assert set(given) == set(SCENARIO_FIELDS)
    options = [
        arg for name, value in given.items() for arg in (f"--{name.replace('_', '-')}", str(value))
    ]
    assert main(["simulate", "--subjects", "1", *options]) == 0
    landing = LayerPaths.from_env().landing
    config = load_ground_truth(ground_truth_path(landing)).config
    assert config == SimulationConfig(n_subjects=1, **given)
