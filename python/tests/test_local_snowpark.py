"""The local Snowpark session `sluice test` and `sluice run` give apps with
fixture tables: Snowpark's real local testing mode, CSV fixtures as tables,
`session.sql` over DuckDB, and the messages when something is missing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice_components.base_page import BasePage
from sluice_runner import local_snowpark

from .conftest import run_spec
ORDERS = "order_id,region,amount\n1,North,120.5\n2,South,80\n3,North,42\n"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An app folder with `tests/data/orders.csv`, as the current folder
    (pages run from their app's folder)."""
    data = tmp_path / "orders_app" / "tests" / "data"
    data.mkdir(parents=True)
    (data / "orders.csv").write_text(ORDERS)
    monkeypatch.chdir(tmp_path / "orders_app")
    yield tmp_path / "orders_app"
    # No session may outlive its test: other tests expect none.
    local_snowpark.close()


def test_fixtures_become_upper_case_tables(app: Path) -> None:
    session = local_snowpark.session_for(str(app))
    assert local_snowpark.loaded_tables() == ["ORDERS"]
    frame = session.table("orders").to_pandas()
    assert list(frame.columns) == ["ORDER_ID", "REGION", "AMOUNT"]
    assert frame["AMOUNT"].sum() == pytest.approx(242.5)
    from snowflake.snowpark.context import get_active_session
    from snowflake.snowpark.functions import col

    assert get_active_session() is session
    assert session.table("ORDERS").filter(col("REGION") == "North").count() == 2
    # Snowpark's telemetry to Snowflake is off: pages run locally talk to nothing.
    assert not session._conn._oob_telemetry.enabled


def test_sql_runs_reads_with_duckdb_over_the_fixtures(app: Path) -> None:
    session = local_snowpark.session_for(str(app))
    totals = session.sql(
        "SELECT region, SUM(amount) AS total FROM orders GROUP BY region ORDER BY region"
    ).to_pandas()
    assert totals.to_dict("list") == {"REGION": ["North", "South"], "TOTAL": [162.5, 80.0]}
    rows = session.sql("SELECT order_id FROM orders WHERE amount > ?", params=[100]).collect()
    assert [row["ORDER_ID"] for row in rows] == [1]
    assert session.sql("SELECT * FROM orders WHERE 1 = 0").count() == 0
    # The example dashboard's live query; Snowpark's local testing takes no time zones.
    live = session.sql(
        "SELECT current_database() AS database_name, current_timestamp AS server_time"
    ).to_pandas()
    assert list(live.columns) == ["DATABASE_NAME", "SERVER_TIME"]
    with pytest.raises(NotImplementedError, match="runs only reads locally .*, not DELETE"):
        session.sql("DELETE FROM orders")
    with pytest.raises(RuntimeError, match=r"with DuckDB over the fixture tables \(ORDERS\)"):
        session.sql("SELECT nope FROM orders")


def test_a_missing_table_names_the_fixture_to_add(app: Path) -> None:
    session = local_snowpark.session_for(str(app))
    with pytest.raises(LookupError) as missing:
        session.table("CUSTOMERS")
    assert str(missing.value) == (
        "table CUSTOMERS is not in the local Snowpark session: add its rows as "
        "tests/data/CUSTOMERS.csv (fixture tables: ORDERS)"
    )


def test_an_empty_fixture_is_an_empty_table(app: Path) -> None:
    (app / "tests" / "data" / "returns.csv").write_text("order_id,reason\n")
    session = local_snowpark.session_for(str(app))
    assert session.table("RETURNS").count() == 0
    assert session.table("RETURNS").columns == ["ORDER_ID", "REASON"]


def test_base_page_query_uses_the_session_without_a_postgres_url(
    app: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLUICE_POSTGRES_URL", raising=False)
    local_snowpark.session_for(str(app))
    frame = BasePage(title="x").query("SELECT COUNT(*) AS n FROM orders")
    assert frame["N"].tolist() == [3]


def run_pages(app: Path, pages: dict[str, str]) -> list[dict]:
    spec = {
        "apps_dir": str(app.parent),
        "timeout": 60,
        "pages": [],
    }
    for name, source in pages.items():
        (app / name).write_text(source)
        spec["pages"].append(
            {"app": app.name, "dir": str(app), "file": str(app / name), "snowpark": True}
        )
    env = {"PATH": "/usr/bin:/bin", "SLUICE_POSTGRES_URL": "postgresql://not-for-snowpark"}
    return run_spec(spec, env)[0]


def test_the_runner_gives_snowpark_pages_the_session_and_no_postgres(app: Path) -> None:
    reads = (
        "import os\nimport streamlit as st\n"
        "from snowflake.snowpark.context import get_active_session\n"
        "assert 'SLUICE_POSTGRES_URL' not in os.environ\n"
        "orders = get_active_session().table('ORDERS').to_pandas()\n"
        "st.metric('Orders', len(orders))\n"
    )
    missing = (
        "from snowflake.snowpark.context import get_active_session\n"
        "get_active_session().table('CUSTOMERS').to_pandas()\n"
    )
    good, bad = run_pages(app, {"reads.py": reads, "missing.py": missing})
    assert good == {"file": str(app / "reads.py"), "ok": True}
    assert bad["ok"] is False
    assert bad["error"] == (
        "LookupError: table CUSTOMERS is not in the local Snowpark session: add its rows "
        "as tests/data/CUSTOMERS.csv (fixture tables: ORDERS)"
    )
