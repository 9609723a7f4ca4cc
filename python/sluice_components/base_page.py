"""The base class every Sluice page inherits from.

`sluice init` copies this file into a workspace's `applications/components/`,
where maintainers own it. A page is a class with four methods and a
module-level `main()`::

    class SalesPage(BasePage):
        def __init__(self) -> None:
            super().__init__(title="Sales")

        def set_page_layout(self) -> None:
            super().set_page_layout()

        def setup_ui(self) -> None:
            st.dataframe(self.query("SELECT region, total FROM sales"))

        def run(self) -> None:
            self.set_page_layout()
            self.setup_ui()

    def main() -> None:
        SalesPage().run()

Data access goes through `self.query(sql)`, which only runs read-only SQL,
or Snowpark's session, `self.session`. In Snowflake both use Snowpark's
active session. Locally (`sluice run`, `sluice test`) an app reads either
PostgreSQL at `$SLUICE_POSTGRES_URL` (from the `local` environment of
`sluice.yml`), or, when it has fixture tables in `tests/data/*.csv` (or there
is no `postgres_url`), a Snowpark session in Snowpark's local testing mode
holding those tables, which `query` then uses too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Union

import pandas as pd
import streamlit as st

POSTGRES_URL_VARIABLE = "SLUICE_POSTGRES_URL"
"""The variable holding the local PostgreSQL URL (set by `sluice run/test`)."""

REQUIRE_DATA_VARIABLE = "SLUICE_REQUIRE_DATA"
"""Set to `1` by `sluice test --require-data`: a page that cannot reach its
data then fails instead of showing its fallback."""

CONNECT_TIMEOUT_SECONDS = 5

READ_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "EXPLAIN", "VALUES", "TABLE"})
"""A query must start with one of these."""

WRITE_KEYWORDS = frozenset(
    {
        "INSERT",
        "UPDATE",  # also refuses SELECT ... FOR UPDATE: a row lock is not a read
        "DELETE",
        "MERGE",
        "INTO",  # SELECT ... INTO creates a table
        "CREATE",
        "DROP",
        "ALTER",
        "TRUNCATE",
        "GRANT",
        "REVOKE",
        "COPY",
        "CALL",
        "LOCK",
    }
)
"""Words that make a query a write wherever they appear (outside strings,
quoted identifiers and comments): a CTE ending in DML, `EXPLAIN ANALYZE
DELETE` (which executes the delete), `SELECT ... INTO`."""

# typing.Union, not `|`: Streamlit in Snowflake may run Python older than 3.10.
Params = Union[Sequence[Any], Mapping[str, Any], None]


class QueryRefused(ValueError):
    """The SQL given to `BasePage.query` is not a single read-only statement."""


class DataSourceUnavailable(RuntimeError):
    """There is no database to query: not in Snowflake, no local URL, or unreachable."""


class DataRequired(RuntimeError):
    """The data source is unavailable while `SLUICE_REQUIRE_DATA=1`.

    Deliberately not a `DataSourceUnavailable`, so a page's fallback for a
    missing database does not catch it and the page's test fails."""


def check_read_only(sql: str) -> None:
    """Raises `QueryRefused` unless `sql` is one read-only statement.

    A small, conservative check (it may refuse an unusual read, never
    accepts a write it can see): the first keyword must be one of
    `READ_KEYWORDS`, there is no second statement, and no `WRITE_KEYWORDS`
    word appears outside string literals, quoted identifiers and comments.
    """
    statements = _statement_words(sql)
    if not statements:
        raise QueryRefused("query refused: the SQL is empty")
    if len(statements) > 1:
        raise QueryRefused(
            f"query refused: only one statement is allowed, found {len(statements)}"
        )
    words = statements[0]
    if words[0] not in READ_KEYWORDS:
        allowed = ", ".join(sorted(READ_KEYWORDS))
        raise QueryRefused(
            f"query refused: only read-only SQL is allowed and {words[0]} is not a read "
            f"(a query starts with one of {allowed})"
        )
    for word in words[1:]:
        if word in WRITE_KEYWORDS:
            raise QueryRefused(
                f"query refused: only read-only SQL is allowed and this {words[0]} "
                f"contains {word}"
            )


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def _statement_words(sql: str) -> list[list[str]]:
    """The upper-cased words of each non-empty `;`-separated statement,
    skipping comments, string literals, quoted identifiers and dollar quotes."""
    statements: list[list[str]] = [[]]
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c == "'":
            # E'...' strings take backslash escapes; plain ones only ''.
            escaped = i > 0 and sql[i - 1] in "eE" and (i < 2 or not _is_word_char(sql[i - 2]))
            i = _skip_quoted(sql, i, "'", backslash=escaped)
        elif c == '"':
            i = _skip_quoted(sql, i, '"', backslash=False)
        elif c == "$" and (i == 0 or not _is_word_char(sql[i - 1])):
            tag = _DOLLAR_TAG.match(sql, i)
            if tag:
                end = sql.find(tag.group(0), tag.end())
                i = n if end < 0 else end + len(tag.group(0))
            else:
                i += 1
        elif c == ";":
            statements.append([])
            i += 1
        elif c.isalpha() or c == "_":
            word = _WORD.match(sql, i)
            assert word is not None
            statements[-1].append(word.group(0).upper())
            i = word.end()
        else:
            i += 1
    return [s for s in statements if s]


def _is_word_char(c: str) -> bool:
    return c.isalnum() or c in "_$"


def _skip_quoted(sql: str, start: int, quote: str, *, backslash: bool) -> int:
    """The index just past the literal opened at `start` (the end when unterminated)."""
    i, n = start + 1, len(sql)
    while i < n:
        c = sql[i]
        if backslash and c == "\\":
            i += 2
        elif c == quote:
            if i + 1 < n and sql[i + 1] == quote:  # doubled quote: an escaped quote
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def redact_url(url: str) -> str:
    """`postgresql://app:secret@host/db` → `postgresql://app:***@host/db`."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


class BasePage:
    """A page of a Sluice app. Subclasses define `setup_ui` (and usually
    override the other methods, calling `super()`)."""

    def __init__(
        self,
        title: str,
        icon: str = "📊",
        layout: Literal["centered", "wide"] = "wide",
    ) -> None:
        self.title = title
        self.icon = icon
        self.layout = layout

    def set_page_layout(self) -> None:
        """Page configuration and title; runs before `setup_ui`."""
        st.set_page_config(page_title=self.title, page_icon=self.icon, layout=self.layout)
        st.title(self.title)

    def setup_ui(self) -> None:
        """Draws the page. Every page defines its own."""
        raise NotImplementedError(f"{type(self).__name__} must define setup_ui()")

    def run(self) -> None:
        """The page's entry point, called by the module's `main()`."""
        self.set_page_layout()
        self.setup_ui()

    @property
    def session(self) -> Any:
        """Snowpark's active session: Snowflake's, or locally the app's
        local-testing session over its `tests/data/*.csv` tables.

        Raises `DataSourceUnavailable` when there is none (locally: an app
        that reads PostgreSQL and has no `tests/data/`).
        """
        try:
            from snowflake.snowpark.context import get_active_session
        except ImportError:
            raise DataSourceUnavailable(
                "Snowpark is not installed here; run `sluice setup`"
            ) from None
        try:
            return get_active_session()
        except Exception:  # Snowpark's SnowparkSessionException, whose text speaks of UDFs
            raise DataSourceUnavailable(
                "no active Snowpark session: locally an app gets one when it has fixture "
                "tables in tests/data/*.csv"
            ) from None

    def query(self, sql: str, params: Params = None) -> pd.DataFrame:
        """Runs one read-only statement and returns its rows.

        Raises `QueryRefused` for anything but a read, and
        `DataSourceUnavailable` when there is no database to ask (or
        `DataRequired` then, under `sluice test --require-data`).
        """
        check_read_only(sql)
        try:
            return self._query(sql, params)
        except DataSourceUnavailable as reason:
            if os.environ.get(REQUIRE_DATA_VARIABLE) == "1":
                raise DataRequired(f"{REQUIRE_DATA_VARIABLE}=1 and {reason}") from None
            raise

    def _query(self, sql: str, params: Params) -> pd.DataFrame:
        url = os.environ.get(POSTGRES_URL_VARIABLE)
        if url:
            return _postgres_query(url, sql, params)
        session = _active_session()
        if session is not None:
            return session.sql(sql, params=params).to_pandas()
        raise DataSourceUnavailable(
            f"{POSTGRES_URL_VARIABLE} is not set (sluice run and sluice test set it from "
            "the `local` environment in sluice.yml) and there is no Snowpark session "
            "(Snowflake's, or locally one over the app's tests/data/*.csv)"
        )


def _active_session() -> Any:
    """Snowpark's active session, or None (no Snowpark, or no session)."""
    try:
        from snowflake.snowpark.context import get_active_session
    except ImportError:
        return None
    try:
        return get_active_session()
    except Exception:  # SnowparkSessionException: no session
        return None


def _postgres_query(url: str, sql: str, params: Params) -> pd.DataFrame:
    try:
        import psycopg
    except ImportError:
        raise DataSourceUnavailable(
            "psycopg is not installed in this Python; run `sluice setup`"
        ) from None
    try:
        connection = psycopg.connect(
            url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
        )
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataSourceUnavailable(
            f"cannot connect to the local database at {redact_url(url)}: {reason}"
        ) from None
    with connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.description is None:
            return pd.DataFrame()
        columns = [column.name for column in cursor.description]
        return pd.DataFrame(cursor.fetchall(), columns=columns)
