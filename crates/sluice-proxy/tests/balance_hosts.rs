//! The health checker against a real primary with two hot standbys.

use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use sluice_cluster::{Cluster, ClusterSpec};
use sluice_proxy::balance::config::{HostAddr, LoadBalancing};
use sluice_proxy::balance::health::{spawn_health_checker, CheckerConfig};
use sluice_proxy::balance::hosts::{Choice, HostState, Hosts, Limits, NoReplica};
use sluice_proxy::balance::Lsn;

/// Polls `condition` every 50 ms for at most `limit`; panics naming `what`.
fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < limit, "gave up waiting for: {what}");
        sleep(Duration::from_millis(50));
    }
}

fn addr(port: u16) -> HostAddr {
    HostAddr {
        host: "127.0.0.1".into(),
        port,
    }
}

fn replay_lsn(hosts: &Hosts, index: usize) -> Option<Lsn> {
    hosts.replicas()[index].health().wal_lsn
}

/// Which replicas `choose` returns over `turns` calls.
fn chosen(hosts: &Hosts, required: Option<Lsn>, limits: &Limits, turns: usize) -> Vec<Choice> {
    let mut picks: Vec<Choice> = (0..turns).map(|_| hosts.choose(required, limits)).collect();
    picks.sort_by_key(|c| format!("{c:?}"));
    picks.dedup();
    picks
}

#[test]
fn checker_follows_replay_lag_and_failures() {
    let cluster = Cluster::start(ClusterSpec {
        replicas: 2,
        ..Default::default()
    })
    .unwrap();
    let primary = cluster.primary();
    // A third "replica" that accepts connections and never answers: a hung
    // host. (The kernel completes the handshake; nobody ever reads.)
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut replicas: Vec<HostAddr> = cluster.replicas().iter().map(|r| addr(r.port())).collect();
    replicas.push(addr(hung.local_addr().unwrap().port()));
    let hosts = Arc::new(Hosts::new(addr(primary.port()), replicas));
    let settings = LoadBalancing {
        replica_check_interval: Duration::from_millis(100),
        max_replication_lag_bytes: 1024 * 1024,
        ..LoadBalancing::default()
    };
    let limits = Limits::from(&settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let checker = {
        let _entered = runtime.enter();
        let config = CheckerConfig::new(&settings, "postgres", Some("postgres"), "postgres");
        spawn_health_checker(config, hosts.clone())
    };
    let limit = Duration::from_secs(30);

    // Both standbys come up, in recovery, caught up: zero lag, reads spread.
    cluster.wait_caught_up().unwrap();
    wait_for("both replicas up and caught up", limit, || {
        hosts.replicas()[..2].iter().all(|r| {
            let h = r.health();
            h.state == HostState::Up && h.in_recovery == Some(true) && h.lag == Some(Duration::ZERO)
        })
    });
    assert_eq!(hosts.primary().health().in_recovery, Some(false));
    wait_for("the hung host times out", limit, || {
        hosts.replicas()[2].health().state == HostState::Down
    });
    let hung_health = hosts.replicas()[2].health();
    assert!(
        hung_health
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("timed out")),
        "{hung_health:?}"
    );
    assert_eq!(
        chosen(&hosts, None, &limits, 4),
        [Choice::Replica(0), Choice::Replica(1)]
    );

    // Pause replay on replica 0 and write: only replica 1 may serve a read
    // that must see the write.
    cluster.pause_replay(&cluster.replicas()[0]).unwrap();
    cluster
        .sql_in(
            primary,
            "app",
            "CREATE TABLE sticky_probe (v int); INSERT INTO sticky_probe VALUES (1)",
        )
        .unwrap();
    let written: Lsn = cluster
        .sql(primary, "SELECT pg_current_wal_insert_lsn()")
        .unwrap()
        .parse()
        .unwrap();
    wait_for("replica 1 replays the write", limit, || {
        replay_lsn(&hosts, 1) >= Some(written)
    });
    assert!(replay_lsn(&hosts, 0) < Some(written), "replica 0 is paused");
    assert_eq!(
        chosen(&hosts, Some(written), &limits, 6),
        [Choice::Replica(1)]
    );
    // Without a sticky requirement the paused replica (still within the
    // limits) keeps serving.
    assert_eq!(
        chosen(&hosts, None, &limits, 6),
        [Choice::Replica(0), Choice::Replica(1)]
    );

    // Write more than max_replication_lag_bytes: the paused replica stops
    // receiving any reads.
    cluster
        .sql_in(
            primary,
            "app",
            "INSERT INTO sticky_probe SELECT g FROM generate_series(1, 100000) g",
        )
        .unwrap();
    wait_for("replica 0 lags by more than the byte limit", limit, || {
        hosts.replicas()[0]
            .health()
            .lag_bytes
            .is_some_and(|b| b > limits.max_lag_bytes)
    });
    let bulk: Lsn = cluster
        .sql(primary, "SELECT pg_current_wal_insert_lsn()")
        .unwrap()
        .parse()
        .unwrap();
    wait_for("replica 1 replays the bulk insert", limit, || {
        replay_lsn(&hosts, 1) >= Some(bulk)
            && hosts.replicas()[1]
                .health()
                .lag_bytes
                .is_some_and(|b| b <= limits.max_lag_bytes)
    });
    assert_eq!(chosen(&hosts, None, &limits, 6), [Choice::Replica(1)]);

    // Resume: it catches up and rejoins for sticky reads too.
    cluster.resume_replay(&cluster.replicas()[0]).unwrap();
    cluster.wait_caught_up().unwrap();
    let now_written: Lsn = cluster
        .sql(primary, "SELECT pg_current_wal_insert_lsn()")
        .unwrap()
        .parse()
        .unwrap();
    wait_for("replica 0 catches up", limit, || {
        replay_lsn(&hosts, 0) >= Some(now_written)
            && hosts.replicas()[0].health().lag_bytes == Some(0)
    });
    assert_eq!(
        chosen(&hosts, Some(written), &limits, 6),
        [Choice::Replica(0), Choice::Replica(1)]
    );

    // Stop replica 1: marked down and skipped; start it: it returns.
    let replica1 = &cluster.replicas()[1];
    cluster.stop(replica1).unwrap();
    wait_for("replica 1 marked down", limit, || {
        hosts.replicas()[1].health().state == HostState::Down
    });
    let down = hosts.replicas()[1].health();
    assert!(down.consecutive_failures >= 1);
    assert!(down.last_error.is_some());
    assert_eq!(chosen(&hosts, None, &limits, 6), [Choice::Replica(0)]);
    cluster.start_node(replica1).unwrap();
    wait_for("replica 1 up again", limit, || {
        hosts.replicas()[1].health().state == HostState::Up
    });
    wait_for("reads spread over both again", limit, || {
        chosen(&hosts, None, &limits, 6) == [Choice::Replica(0), Choice::Replica(1)]
    });

    // A replica that leaves recovery (promoted) gets no more reads.
    cluster.sql(replica1, "SELECT pg_promote()").unwrap();
    wait_for("replica 1 seen out of recovery", limit, || {
        hosts.replicas()[1].health().in_recovery == Some(false)
    });
    assert_eq!(chosen(&hosts, None, &limits, 6), [Choice::Replica(0)]);

    // Every replica gone: reads fall back to the primary.
    cluster.stop(&cluster.replicas()[0]).unwrap();
    cluster.stop(replica1).unwrap();
    wait_for("both replicas down", limit, || {
        hosts
            .replicas()
            .iter()
            .all(|r| r.health().state == HostState::Down)
    });
    assert_eq!(
        hosts.choose(None, &limits),
        Choice::Primary(NoReplica::NoneHealthy)
    );

    checker.stop();
    drop(hung);
    drop(runtime);
}
