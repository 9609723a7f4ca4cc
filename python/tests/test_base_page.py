"""`BasePage`: the page lifecycle and `query` against no database, an
unreachable one and a real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice_components import base_page
from sluice_components.base_page import (
    BasePage,
    DataSourceUnavailable,
    QueryRefused,
    redact_url,
)

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class Page(BasePage):
    def __init__(self) -> None:
        super().__init__(title="Test page")
        self.calls: list[str] = []

    def set_page_layout(self) -> None:
        self.calls.append("set_page_layout")

    def setup_ui(self) -> None:
        self.calls.append("setup_ui")


def test_run_lays_out_then_draws() -> None:
    page = Page()
    page.run()
    assert page.calls == ["set_page_layout", "setup_ui"]


def test_setup_ui_must_be_defined() -> None:
    with pytest.raises(NotImplementedError, match="BasePage must define setup_ui"):
        BasePage(title="x").setup_ui()


def test_redact_url_hides_the_password() -> None:
    assert redact_url("postgresql://app:s3cret@db:5432/app") == "postgresql://app:***@db:5432/app"
    assert redact_url("postgresql://app@db/app") == "postgresql://app@db/app"


def test_writes_are_refused_before_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(base_page.POSTGRES_URL_VARIABLE, "postgresql://u:p@127.0.0.1:1/db")
    with pytest.raises(QueryRefused, match="DELETE is not a read"):
        Page().query("DELETE FROM t")


def test_no_data_source_says_how_to_get_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(base_page.POSTGRES_URL_VARIABLE, raising=False)
    monkeypatch.setattr(base_page, "_in_snowflake", lambda: False)
    with pytest.raises(DataSourceUnavailable) as missing:
        Page().query("SELECT 1")
    assert str(missing.value) == (
        "SLUICE_POSTGRES_URL is not set (sluice run and sluice test set it from the "
        "`local` environment in sluice.yml) and this is not Snowflake"
    )


def test_an_unreachable_database_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv(base_page.POSTGRES_URL_VARIABLE, f"postgresql://u:pw@127.0.0.1:{port}/db")
    with pytest.raises(DataSourceUnavailable) as unreachable:
        Page().query("SELECT 1")
    message = str(unreachable.value)
    assert message.startswith(
        f"cannot connect to the local database at postgresql://u:***@127.0.0.1:{port}/db: "
    )
    assert "pw" not in message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
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


def test_query_reads_rows_from_postgres(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(base_page.POSTGRES_URL_VARIABLE, postgres_url)
    frame = Page().query(
        "SELECT n, n * n AS square FROM generate_series(1, %s) AS n ORDER BY n", (3,)
    )
    assert list(frame.columns) == ["n", "square"]
    assert frame["square"].tolist() == [1, 4, 9]
    # The example dashboard's live query works on PostgreSQL.
    live = Page().query(
        "SELECT current_database() AS database_name, current_timestamp AS server_time"
    )
    assert live["database_name"].tolist() == ["postgres"]
