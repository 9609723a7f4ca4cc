use super::*;

const LIMITS: Limits = Limits {
    max_lag_bytes: 1000,
    max_lag: Duration::from_secs(30),
};

fn healthy(replay: u64) -> Candidate {
    Candidate {
        up: true,
        in_recovery: true,
        replay_lsn: Some(Lsn(replay)),
        lag_bytes: Some(0),
        lag: Some(Duration::ZERO),
        in_flight: 0,
    }
}

#[test]
fn no_replicas_means_primary() {
    assert_eq!(
        choose(&[], None, &LIMITS, 0),
        Choice::Primary(NoReplica::NoneConfigured)
    );
}

#[test]
fn least_busy_wins_and_ties_go_round_robin() {
    let mut replicas = [healthy(10), healthy(10), healthy(10)];
    let picks: Vec<Choice> = (0..6)
        .map(|turn| choose(&replicas, None, &LIMITS, turn))
        .collect();
    let expected: Vec<Choice> = [0, 1, 2, 0, 1, 2]
        .into_iter()
        .map(Choice::Replica)
        .collect();
    assert_eq!(picks, expected);

    replicas[0].in_flight = 3;
    replicas[1].in_flight = 1;
    replicas[2].in_flight = 2;
    for turn in 0..4 {
        assert_eq!(choose(&replicas, None, &LIMITS, turn), Choice::Replica(1));
    }
    replicas[2].in_flight = 1;
    let picks: Vec<Choice> = (0..4)
        .map(|turn| choose(&replicas, None, &LIMITS, turn))
        .collect();
    assert_eq!(picks, [1, 2, 1, 2].map(Choice::Replica));
}

#[test]
fn unhealthy_unchecked_and_promoted_replicas_are_excluded() {
    let down = Candidate {
        up: false,
        ..healthy(10)
    };
    let promoted = Candidate {
        in_recovery: false,
        ..healthy(10)
    };
    let unchecked = Candidate::new(&Health::default(), 0);
    for bad in [down, promoted, unchecked] {
        assert_eq!(
            choose(&[bad], None, &LIMITS, 0),
            Choice::Primary(NoReplica::NoneHealthy)
        );
        for turn in 0..3 {
            assert_eq!(
                choose(&[bad, healthy(10)], None, &LIMITS, turn),
                Choice::Replica(1)
            );
        }
    }
    // An idle replica that is down never beats a busy one that is up.
    let busy = Candidate {
        in_flight: 50,
        ..healthy(10)
    };
    assert_eq!(choose(&[down, busy], None, &LIMITS, 0), Choice::Replica(1));
}

#[test]
fn replicas_past_the_lag_limits_are_excluded() {
    let far_bytes = Candidate {
        lag_bytes: Some(1001),
        ..healthy(10)
    };
    let far_time = Candidate {
        lag: Some(Duration::from_secs(31)),
        ..healthy(10)
    };
    let at_limit = Candidate {
        lag_bytes: Some(1000),
        lag: Some(Duration::from_secs(30)),
        ..healthy(10)
    };
    assert_eq!(
        choose(&[far_bytes, far_time], None, &LIMITS, 0),
        Choice::Primary(NoReplica::TooFarBehind)
    );
    assert_eq!(
        choose(&[far_bytes, at_limit], None, &LIMITS, 0),
        Choice::Replica(1)
    );
    // Unknown lag (primary unreachable) does not exclude: reads keep working.
    let unknown = Candidate {
        lag_bytes: None,
        lag: None,
        ..healthy(10)
    };
    assert_eq!(choose(&[unknown], None, &LIMITS, 0), Choice::Replica(0));
}

#[test]
fn sticky_position_excludes_replicas_that_have_not_replayed_it() {
    let replicas = [healthy(100), healthy(200)];
    for turn in 0..3 {
        assert_eq!(
            choose(&replicas, Some(Lsn(150)), &LIMITS, turn),
            Choice::Replica(1)
        );
        assert_eq!(
            choose(&replicas, Some(Lsn(200)), &LIMITS, turn),
            Choice::Replica(1)
        );
    }
    assert_eq!(
        choose(&replicas, Some(Lsn(201)), &LIMITS, 0),
        Choice::Primary(NoReplica::NotCaughtUp)
    );
    assert_eq!(
        choose(&replicas, Some(Lsn(100)), &LIMITS, 0),
        Choice::Replica(0)
    );
    assert_eq!(
        choose(&replicas, Some(Lsn(100)), &LIMITS, 1),
        Choice::Replica(1)
    );
    assert_eq!(
        choose(&replicas, Some(UNKNOWN_POSITION), &LIMITS, 0),
        Choice::Primary(NoReplica::StickyUnknown)
    );
    // The most informative reason is reported.
    let far = Candidate {
        lag_bytes: Some(5000),
        ..healthy(300)
    };
    let down = Candidate {
        up: false,
        ..healthy(300)
    };
    assert_eq!(
        choose(&[down, far, healthy(1)], Some(Lsn(2)), &LIMITS, 0),
        Choice::Primary(NoReplica::NotCaughtUp)
    );
    assert_eq!(
        choose(&[down, far], Some(Lsn(2)), &LIMITS, 0),
        Choice::Primary(NoReplica::TooFarBehind)
    );
}

#[test]
fn shared_table_counts_in_flight_and_served() {
    let addr = |port| HostAddr {
        host: "127.0.0.1".into(),
        port,
    };
    let hosts = Arc::new(Hosts::new(addr(5432), vec![addr(5433), addr(5434)]));
    // Nothing checked yet: everything goes to the primary.
    assert_eq!(
        hosts.choose(None, &LIMITS),
        Choice::Primary(NoReplica::NoneHealthy)
    );
    let up = Health {
        state: HostState::Up,
        in_recovery: Some(true),
        wal_lsn: Some(Lsn(10)),
        lag_bytes: Some(0),
        lag: Some(Duration::ZERO),
        ..Health::default()
    };
    for slot in hosts.replicas() {
        slot.set_health(up.clone());
    }
    let first = hosts.choose(None, &LIMITS);
    let Choice::Replica(busy) = first else {
        panic!("{first:?}")
    };
    let guard = hosts.start_on_replica(busy);
    assert_eq!(guard.replica(), Some(busy));
    assert_eq!(hosts.replicas()[busy].in_flight(), 1);
    for _ in 0..4 {
        assert_eq!(
            hosts.choose(None, &LIMITS),
            Choice::Replica(1 - busy),
            "least busy"
        );
    }
    drop(guard);
    assert_eq!(hosts.replicas()[busy].in_flight(), 0);
    assert_eq!(hosts.replicas()[busy].served(), 1);
    let second = hosts.choose(None, &LIMITS);
    let third = hosts.choose(None, &LIMITS);
    assert_ne!(second, third, "round robin once idle again");

    hosts.mark_replica_down(0, "connection refused");
    let health = hosts.replicas()[0].health();
    assert_eq!(health.state, HostState::Down);
    assert_eq!(health.consecutive_failures, 1);
    assert_eq!(health.last_error.as_deref(), Some("connection refused"));
    for _ in 0..3 {
        assert_eq!(hosts.choose(None, &LIMITS), Choice::Replica(1));
    }
    let _primary = hosts.start_on_primary();
    assert_eq!(hosts.primary().in_flight(), 1);

    let rows = hosts.rows();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (rows[0].role, rows[0].addr.as_str(), rows[0].in_flight),
        ("primary", "127.0.0.1:5432", 1)
    );
    assert_eq!((rows[1].role, rows[1].state), ("replica", HostState::Down));
    assert_eq!(rows[2].lag_seconds, Some(0.0));
    assert_eq!(rows[2].wal_lsn, Some(Lsn(10)));
}

#[test]
fn many_replicas_are_chosen_without_the_inline_buffer_too() {
    let addr = |port| HostAddr {
        host: "127.0.0.1".into(),
        port,
    };
    let hosts = Hosts::new(addr(5432), (0..20).map(|i| addr(6000 + i)).collect());
    let up = Health {
        state: HostState::Up,
        in_recovery: Some(true),
        wal_lsn: Some(Lsn(10)),
        ..Health::default()
    };
    hosts.replicas()[19].set_health(up);
    assert_eq!(hosts.choose(None, &LIMITS), Choice::Replica(19));
    assert_eq!(
        hosts.choose(Some(Lsn(11)), &LIMITS),
        Choice::Primary(NoReplica::NotCaughtUp)
    );
}
