"""A throwaway PostgreSQL server on loopback, from the distribution's own binaries.

``initdb`` into a temporary folder, ``pg_ctl start`` on a free port, password authentication,
no Unix socket; stopped and deleted afterwards. PostgreSQL refuses to run as root, so under
root the server runs as the ``postgres`` account Debian's package creates (else ``nobody``).
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

#: Where Debian and Ubuntu put the server binaries (not on PATH): /usr/lib/postgresql/<major>/bin.
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: Throwaway data: durability settings off, so start-up and Dagster's migrations are quick.
FAST_UNSAFE = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    log: Path

    def dsn(self, db_name: str = "postgres") -> str:
        return (
            f"host={self.host} port={self.port} user={self.user} password={self.password}"
            f" dbname={db_name}"
        )


def find_server_binaries() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (PATH first, then the newest Debian major)."""
    on_path = [shutil.which(tool) for tool in ("initdb", "pg_ctl")]
    if all(on_path):
        return Path(on_path[0]).resolve().parent  # type: ignore[arg-type]
    majors = sorted(
        (p for p in Path("/").glob(DEBIAN_BIN_GLOB.lstrip("/")) if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return majors[-1] if majors else None


def _run_as() -> tuple[list[str], int | None]:
    """Command prefix and uid for running the server: nothing unless we are root."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root without `runuser`: cannot start PostgreSQL as a user")
    for account in ("postgres", "nobody"):
        try:
            return [runuser, "-u", account, "--"], pwd.getpwnam(account).pw_uid
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def postgres_server(binaries: Path, user: str = "layer") -> Iterator[PostgresServer]:
    """Start a server and yield how to reach it; always stop it and delete its data."""
    prefix, uid = _run_as()
    root = Path(tempfile.mkdtemp(prefix="layer-pg-"))
    password = secrets.token_hex(16)
    (root / "password").write_text(password + "\n")
    if uid is not None:
        for path in (root, root / "password"):
            os.chown(path, uid, -1)
    data, log = root / "data", root / "server.log"
    port = _free_port()

    def run(*command: str) -> None:
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command[:2])} failed ({done.returncode}):\n{done.stdout}"
                f"\n{done.stderr}\n{server_log}"
            )

    try:
        run(
            str(binaries / "initdb"), "-D", str(data), "-U", user, "-E", "UTF8", "--no-sync",
            f"--pwfile={root / 'password'}", "--auth=scram-sha-256", "--no-instructions",
        )  # fmt: skip
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
        run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
            "-o", options + FAST_UNSAFE, "start")  # fmt: skip
        try:
            yield PostgresServer("127.0.0.1", port, user, password, log)
        finally:
            run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
