//! Real clients through the gateway: psql, pgbench, tokio-postgres, psycopg 3.

mod common;

use common::{cluster, TestGateway};

#[test]
fn psql_simple_query_in_transaction_mode() {
    let cluster = cluster();
    let gw = TestGateway::start(&cluster, "pool_mode = \"transaction\"", "", &[]);
    let (ok, out, err) = gw.psql("SELECT 1 + 1; SELECT current_user");
    assert!(ok, "{err}");
    assert_eq!(out, "2\napp");
}
