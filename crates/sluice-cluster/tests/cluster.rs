//! Starts a real primary with two hot standbys and exercises every control the tests rely on.

use sluice_cluster::{Cluster, ClusterSpec, Role};

#[test]
fn primary_and_standbys_replicate_pause_and_restart() {
    let cluster = Cluster::start(ClusterSpec {
        replicas: 2,
        ..Default::default()
    })
    .unwrap();
    let primary = cluster.primary();
    assert_eq!(primary.role(), Role::Primary);
    assert_eq!(
        cluster.sql(primary, "SELECT pg_is_in_recovery()").unwrap(),
        "f"
    );
    for replica in cluster.replicas() {
        assert_eq!(
            cluster.sql(replica, "SELECT pg_is_in_recovery()").unwrap(),
            "t"
        );
        assert_ne!(replica.port(), primary.port());
    }

    cluster
        .sql_in(
            primary,
            "app",
            "CREATE TABLE t(v int); INSERT INTO t VALUES (1)",
        )
        .unwrap();
    cluster.wait_caught_up().unwrap();
    let replica = &cluster.replicas()[0];
    assert_eq!(
        cluster
            .sql_in(replica, "app", "SELECT count(*) FROM t")
            .unwrap(),
        "1"
    );

    // Paused replay makes the standby stale, for real.
    cluster.pause_replay(replica).unwrap();
    cluster
        .sql_in(primary, "app", "INSERT INTO t VALUES (2)")
        .unwrap();
    assert_eq!(
        cluster
            .sql_in(replica, "app", "SELECT count(*) FROM t")
            .unwrap(),
        "1"
    );
    cluster.resume_replay(replica).unwrap();
    cluster.wait_caught_up().unwrap();
    assert_eq!(
        cluster
            .sql_in(replica, "app", "SELECT count(*) FROM t")
            .unwrap(),
        "2"
    );

    // A stopped server refuses queries; started again it serves them.
    cluster.stop(replica).unwrap();
    assert!(cluster.sql(replica, "SELECT 1").is_err());
    cluster.start_node(replica).unwrap();
    assert_eq!(cluster.sql(replica, "SELECT 1").unwrap(), "1");
    cluster.restart(primary).unwrap();
    assert_eq!(cluster.sql(primary, "SELECT 1").unwrap(), "1");
}

#[test]
fn users_have_their_authentication_methods() {
    let cluster = Cluster::start(ClusterSpec::default()).unwrap();
    let hba = cluster.sql(cluster.primary(), "SELECT string_agg(DISTINCT auth_method, ',' ORDER BY auth_method) FROM pg_hba_file_rules WHERE type = 'host'").unwrap();
    assert_eq!(hba, "md5,scram-sha-256,trust");
    let md5 = cluster
        .sql(
            cluster.primary(),
            "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'md5user'",
        )
        .unwrap();
    assert_eq!(md5, "md5");
}
