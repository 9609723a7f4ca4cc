"""`check_read_only`: what `BasePage.query` lets through."""

import pytest

from sluice_components.base_page import QueryRefused, check_read_only

READS = [
    "SELECT 1",
    "select * from sales;",
    "  -- totals\nSELECT region, sum(total) FROM sales GROUP BY region",
    "/* DELETE in a comment */ SELECT 1",
    "SELECT 'DELETE FROM t; DROP TABLE t' AS words",
    "SELECT 'it''s; delete' AS quoted",
    'SELECT "update", "insert" FROM audit',
    "SELECT $$ delete from t; $$ AS body",
    "SELECT $tag$ ; drop table t $tag$",
    "WITH recent AS (SELECT * FROM orders WHERE day > now() - interval '7 days') SELECT * FROM recent",
    "SHOW work_mem",
    "EXPLAIN SELECT * FROM t",
    "VALUES (1, 'a'), (2, 'b')",
    "TABLE sales",
    "SELECT created_at, updated_by, deleted FROM t",
    "SELECT 1; -- DELETE FROM t",
    "SELECT 1;;",
]

REFUSED = [
    ("DELETE FROM t", "only read-only SQL is allowed and DELETE is not a read"),
    ("  update t set x = 1", "UPDATE is not a read"),
    ("INSERT INTO t VALUES (1)", "INSERT is not a read"),
    ("CREATE TABLE t AS SELECT 1", "CREATE is not a read"),
    ("DROP TABLE t", "DROP is not a read"),
    ("GRANT SELECT ON t TO public", "GRANT is not a read"),
    ("COPY t TO STDOUT", "COPY is not a read"),
    ("CALL refresh()", "CALL is not a read"),
    ("SELECT 1; DELETE FROM t", "only one statement is allowed, found 2"),
    ("select 1 /* ; */; drop table t", "only one statement is allowed, found 2"),
    ("WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone", "this WITH contains DELETE"),
    ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", "this WITH contains INSERT"),
    ("with x as (select 1) update t set a = 1", "this WITH contains UPDATE"),
    ("SELECT * INTO copy_of_t FROM t", "this SELECT contains INTO"),
    ("EXPLAIN ANALYZE DELETE FROM t", "this EXPLAIN contains DELETE"),
    ("SELECT * FROM t FOR UPDATE", "this SELECT contains UPDATE"),
    # An E'' string ends at an unescaped quote: the DELETE after it is real.
    ("SELECT E'\\'' ; DELETE FROM t; -- '", "only one statement is allowed, found 2"),
    ("", "the SQL is empty"),
    ("-- nothing here", "the SQL is empty"),
]


@pytest.mark.parametrize("sql", READS)
def test_reads_are_allowed(sql: str) -> None:
    check_read_only(sql)


@pytest.mark.parametrize(("sql", "message"), REFUSED)
def test_writes_are_refused(sql: str, message: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        check_read_only(sql)
    assert str(refused.value).startswith("query refused: ")
    assert message in str(refused.value)


def test_the_refusal_explains_what_is_allowed() -> None:
    with pytest.raises(QueryRefused) as refused:
        check_read_only("TRUNCATE t")
    assert str(refused.value) == (
        "query refused: only read-only SQL is allowed and TRUNCATE is not a read "
        "(a query starts with one of EXPLAIN, SELECT, SHOW, TABLE, VALUES, WITH)"
    )
