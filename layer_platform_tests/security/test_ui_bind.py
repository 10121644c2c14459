"""The Dagster UI listens on loopback unless the operator asks for another address.

``layer-platform dev`` is the documented way to open the UI; it must hand ``dagster dev`` the
loopback host by default (the webserver has no authentication of its own: see
docs/security.md for a reverse proxy with authentication in front of it).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from layer_platform import cli


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def test_dev_binds_loopback_unless_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    launched: list[list[str]] = []
    real_popen = subprocess.Popen

    def fake_dagster_dev(command, *args, **kwargs):  # other subprocesses (imports) run as usual
        if list(command[1:4]) != ["-m", "dagster", "dev"]:
            return real_popen(command, *args, **kwargs)
        launched.append(command)  # record the command line instead of serving
        return SimpleNamespace(wait=lambda: 0)

    monkeypatch.setattr(cli.subprocess, "Popen", fake_dagster_dev)
    monkeypatch.setenv("LAYER_HOME", str(tmp_path / "home"))

    assert cli.main(["dev"]) == 0
    assert cli.main(["dev", "--host", "10.0.0.5", "--port", "3100"]) == 0

    default, configured = launched
    assert default[default.index("dagster") + 1] == "dev"
    assert (_option(default, "-h"), _option(default, "-p")) == ("127.0.0.1", "3000")
    assert (_option(configured, "-h"), _option(configured, "-p")) == ("10.0.0.5", "3100")
    assert "http://127.0.0.1:3000" in capsys.readouterr().out


def test_the_default_host_is_loopback_in_the_parser() -> None:
    assert cli.build_parser().parse_args(["dev"]).host == "127.0.0.1"
