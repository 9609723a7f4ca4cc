"""Puts `python/` on sys.path (tests import `sluice_components` and
`sluice_runner`), and a throwaway PostgreSQL server for the tests that read data."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PYTHON_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PYTHON_DIR))

PG_BIN = Path("/usr/lib/postgresql/15/bin")
RUNNER = PYTHON_DIR / "sluice_runner" / "apptest_runner.py"


def run_spec(spec: dict, env: dict[str, str] | None = None) -> tuple[list[dict], str]:
    """Runs the page runner on `spec` as `sluice test` does; returns its
    results (asserting stdout holds nothing else) and its stderr."""
    done = subprocess.run(
        [sys.executable, str(RUNNER)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    lines = done.stdout.splitlines()
    assert all(line.startswith("@sluice ") for line in lines), done.stdout
    return [json.loads(line.removeprefix("@sluice ")) for line in lines], done.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL 15 server on a loopback port (as the postgres
    user when running as root, since PostgreSQL refuses root)."""
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 is not installed in {PG_BIN}: run scripts/setup.sh")
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
    data = Path(tempfile.mkdtemp(prefix="sluice-pg-"))
    if as_user:
        shutil.chown(data, "postgres", "postgres")
    port = free_port()

    def pg(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True, cwd="/")

    try:
        pg(str(PG_BIN / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "app")
        pg(
            str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-w", "-l", str(data / "log"),
            "-o", f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start",
        )
        yield f"postgresql://app:unused@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(PG_BIN / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
            capture_output=True, cwd="/",
        )
        shutil.rmtree(data, ignore_errors=True)
