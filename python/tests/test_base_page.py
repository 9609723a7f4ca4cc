"""`BasePage`: the page lifecycle and `query` against no database, an
unreachable one and a real PostgreSQL server."""

from __future__ import annotations

import pytest

from sluice_components import base_page
from sluice_components.base_page import (
    BasePage,
    DataRequired,
    DataSourceUnavailable,
    QueryRefused,
    redact_url,
)

from .conftest import free_port


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
    monkeypatch.setattr(base_page, "_active_session", lambda: None)
    with pytest.raises(DataSourceUnavailable) as missing:
        Page().query("SELECT 1")
    assert str(missing.value) == (
        "SLUICE_POSTGRES_URL is not set (sluice run and sluice test set it from the "
        "`local` environment in sluice.yml) and there is no Snowpark session "
        "(Snowflake's, or locally one over the app's tests/data/*.csv)"
    )


def test_require_data_turns_a_missing_database_into_a_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv(base_page.POSTGRES_URL_VARIABLE, f"postgresql://u:pw@127.0.0.1:{port}/db")
    monkeypatch.setenv(base_page.REQUIRE_DATA_VARIABLE, "1")
    with pytest.raises(DataRequired) as required:
        Page().query("SELECT 1")
    # A page's `except DataSourceUnavailable` fallback must not swallow it.
    assert not isinstance(required.value, DataSourceUnavailable)
    assert str(required.value).startswith(
        "SLUICE_REQUIRE_DATA=1 and cannot connect to the local database at "
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
