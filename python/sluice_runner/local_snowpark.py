"""A Snowpark session for pages run locally (`sluice test`, `sluice run`).

Snowflake itself is out of reach locally, so pages that use Snowpark
(`self.session.table(...)`, or `get_active_session()` in a plain Streamlit
in Snowflake app) get a session in Snowpark's own local testing mode
(`Session.builder.config("local_testing", True)`), which evaluates
DataFrame operations in pandas. Its tables are the app's fixtures: every
`tests/data/<NAME>.csv` becomes the table `NAME` (an unquoted identifier is
upper-cased, as Snowflake does; so are the CSV's column names).

Snowpark's local testing has no SQL engine (`Session.sql` raises
`NotImplementedError` there), so this session's `sql` runs read-only queries
with DuckDB over the same fixture tables and returns a Snowpark DataFrame of
the result. DuckDB's dialect is close to Snowflake's for ordinary queries
(joins, CTEs, window functions, `QUALIFY`, `ILIKE`, `::` casts), not for
everything; a query it cannot run fails with a message saying so.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

DATA_DIR = os.path.join("tests", "data")
"""Where an app keeps its fixture tables, relative to the app's folder."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_READ_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES", "TABLE")
_active: dict[str, Any] = {}


class FixtureError(ValueError):
    """A fixture file that cannot be loaded as a table."""


def table_name(csv_file: Path) -> str:
    """`orders.csv` → `ORDERS`: the name an unquoted identifier gets in Snowflake."""
    stem = csv_file.stem
    return stem.upper() if _IDENTIFIER.match(stem) else stem


def _column_name(name: str) -> str:
    return name.upper() if _IDENTIFIER.match(name) else name


def load_fixtures(data_dir: Path) -> dict[str, Any]:
    """Every `*.csv` directly in `data_dir`, as pandas frames by table name."""
    import pandas as pd

    tables: dict[str, Any] = {}
    if not data_dir.is_dir():
        return tables
    for csv_file in sorted(data_dir.glob("*.csv")):
        try:
            frame = pd.read_csv(csv_file)
        except Exception as error:  # pandas raises several types for a bad file
            raise FixtureError(f"{csv_file}: cannot read it as CSV: {error}") from None
        frame.columns = [_column_name(str(c)) for c in frame.columns]
        tables[table_name(csv_file)] = frame
    return tables


def session_for(app_dir: str) -> Any:
    """The local session of the app in `app_dir`, made once. Making another
    app's session closes the previous one, so `get_active_session()` always
    finds exactly one."""
    key = os.path.realpath(app_dir)
    current = _active.get("key")
    if current == key:
        return _active["session"]
    close()
    session, tables = create_session(Path(key) / DATA_DIR)
    _active.update(key=key, session=session, tables=tables)
    return session


def loaded_tables() -> list[str]:
    """The fixture tables of the session `session_for` made last."""
    return list(_active.get("tables", []))


def close() -> None:
    """Closes the session `session_for` made, if any."""
    session = _active.pop("session", None)
    _active.clear()
    if session is not None:
        session.close()


def create_session(data_dir: Path) -> tuple[Any, list[str]]:
    """A local-testing Snowpark session holding the fixtures of `data_dir`,
    and the names of those tables."""
    from snowflake.snowpark import Session

    tables = load_fixtures(data_dir)
    # Local testing reports usage to Snowflake over the network unless told
    # not to; pages run locally must not talk to anything.
    session = (
        Session.builder.config("local_testing", True)
        .config("disable_local_testing_telemetry", True)
        .create()
    )
    for name, frame in tables.items():
        _snowpark_frame(session, frame).write.save_as_table(name, mode="overwrite")
    _explain_missing_tables(session, Path(os.path.relpath(data_dir)), sorted(tables))
    session.sql = _duckdb_sql(session, tables)  # type: ignore[method-assign]
    return session, sorted(tables)


def _snowpark_frame(session: Any, frame: Any) -> Any:
    """`session.create_dataframe` of a pandas frame, also an empty one (whose
    types cannot be inferred: its columns become strings). Local testing
    refuses time zones, so zoned timestamps become UTC without one."""
    import pandas as pd

    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.DatetimeTZDtype):
            frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    if len(frame) > 0:
        return session.create_dataframe(frame)
    from snowflake.snowpark.types import StringType, StructField, StructType

    schema = StructType([StructField(str(c), StringType()) for c in frame.columns])
    return session.create_dataframe([], schema=schema)


def _explain_missing_tables(session: Any, data_dir: Path, names: list[str]) -> None:
    """Makes `session.table` of an unknown table say which fixture to add."""
    original = session.table

    def table(name: Any, *args: Any, **kwargs: Any) -> Any:
        frame = original(name, *args, **kwargs)
        try:
            frame.schema  # resolves the table now, where the page asks for it
        except Exception as error:
            if "does not exist" not in str(error):
                raise
            shown = name if isinstance(name, str) else ".".join(name)
            fixture = data_dir / f"{table_name(Path(shown.rsplit('.', 1)[-1]))}.csv"
            known = ", ".join(names) if names else f"none, {data_dir} has no .csv files"
            raise LookupError(
                f"table {shown} is not in the local Snowpark session: add its rows as "
                f"{fixture} (fixture tables: {known})"
            ) from None
        return frame

    session.table = table


def _duckdb_sql(session: Any, tables: dict[str, Any]) -> Any:
    def sql(query: str, params: Any = None, **_: Any) -> Any:
        first = query.lstrip().split(None, 1)[0].upper() if query.strip() else ""
        if first not in _READ_KEYWORDS:
            raise NotImplementedError(
                f"session.sql runs only reads locally (over the fixture tables), not {first or 'an empty query'}"
            )
        import duckdb

        with duckdb.connect() as connection:
            for name, frame in tables.items():
                connection.register(name, frame)
            try:
                result = connection.execute(query, params or []).df()
            except duckdb.Error as error:
                raise RuntimeError(
                    f"session.sql ran the query locally with DuckDB over the fixture tables "
                    f"({', '.join(sorted(tables)) or 'none'}) and it failed: {error}"
                ) from None
        result.columns = [_column_name(str(c)) for c in result.columns]
        return _snowpark_frame(session, result)

    return sql
