//! The routing decision for one query string that starts outside a
//! transaction, combining every rule in the order the issue gives them.
//!
//! Precedence, first match wins:
//! 1. Balancing disabled, or the database has no replicas: primary.
//! 2. A `primary_only_users` user: primary.
//! 3. A `/* sluice:... */` comment on the statement.
//! 4. The session's `SET sluice.route`.
//! 5. The statement's classification ([`classify`](super::classify)).
//! 6. A read: the least busy healthy replica that has replayed the
//!    client's required position ([`Hosts::choose`]); none: primary.
//!
//! Inside a transaction the gateway keeps the server the transaction
//! started on and does not ask again.

use std::fmt;

use super::classify::{Classification, PrimaryReason, Route, RouteSetting};
use super::config::LoadBalancing;
use super::hosts::{Choice, Hosts, Limits, NoReplica};
use super::lsn::Lsn;

/// Where a query string goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Primary(PrimaryBecause),
    /// The replica at this index of [`Hosts::replicas`].
    Replica(usize),
}

/// Why a query string goes to the primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryBecause {
    /// `enabled = false`.
    BalancingDisabled,
    /// The user is in `primary_only_users`.
    PrimaryOnlyUser,
    /// `SET sluice.route = 'primary'`.
    SessionRoute,
    /// The statement must run on the primary (including a hint).
    Statement(PrimaryReason),
    /// It is a read, but no replica can serve it.
    NoReplica(NoReplica),
}

impl fmt::Display for PrimaryBecause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrimaryBecause::BalancingDisabled => f.write_str("load balancing disabled"),
            PrimaryBecause::PrimaryOnlyUser => f.write_str("user is in primary_only_users"),
            PrimaryBecause::SessionRoute => f.write_str("sluice.route = 'primary'"),
            PrimaryBecause::Statement(reason) => write!(f, "statement {reason}"),
            PrimaryBecause::NoReplica(reason) => reason.fmt(f),
        }
    }
}

/// A session's routing state that outlives one statement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionRouting {
    /// `SET sluice.route`.
    pub route: RouteSetting,
    /// `SET sluice.min_lsn`: a position carried over from another service.
    pub min_lsn: Option<Lsn>,
}

/// The position a replica must have replayed: the later of the sticky
/// store's answer and the session's `sluice.min_lsn`.
pub fn required_position(from_store: Option<Lsn>, min_lsn: Option<Lsn>) -> Option<Lsn> {
    from_store.max(min_lsn)
}

/// Decides where a query string that starts outside a transaction goes.
/// `sticky_required` is the sticky store's answer for the client's key
/// (`None` with `sticky = "off"`).
pub fn target(
    config: &LoadBalancing,
    user: &str,
    session: &SessionRouting,
    statement: &Classification,
    sticky_required: Option<Lsn>,
    hosts: &Hosts,
    executes: bool,
) -> Target {
    if !config.enabled {
        return Target::Primary(PrimaryBecause::BalancingDisabled);
    }
    if hosts.replicas().is_empty() {
        return Target::Primary(PrimaryBecause::NoReplica(NoReplica::NoneConfigured));
    }
    if config.is_primary_only(user) {
        return Target::Primary(PrimaryBecause::PrimaryOnlyUser);
    }
    let route = if statement.hinted {
        statement.route
    } else {
        match session.route {
            RouteSetting::Primary => return Target::Primary(PrimaryBecause::SessionRoute),
            setting => setting.apply(statement.route),
        }
    };
    if let Route::Primary(reason) = route {
        return Target::Primary(PrimaryBecause::Statement(reason));
    }
    let required = required_position(sticky_required, session.min_lsn);
    match hosts.choose_turn(required, &Limits::from(config), executes) {
        Choice::Replica(index) => Target::Replica(index),
        Choice::Primary(reason) => Target::Primary(PrimaryBecause::NoReplica(reason)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::balance::classify::classify;
    use crate::balance::config::HostAddr;
    use crate::balance::hosts::{Health, HostState};

    fn hosts(replays: &[u64]) -> Hosts {
        let addr = |port| HostAddr {
            host: "127.0.0.1".into(),
            port,
        };
        let hosts = Hosts::new(
            addr(5432),
            (0..replays.len() as u16).map(|i| addr(5433 + i)).collect(),
        );
        for (slot, &replay) in hosts.replicas().iter().zip(replays) {
            hosts_set(slot, replay);
        }
        hosts
    }

    fn hosts_set(slot: &crate::balance::hosts::HostSlot, replay: u64) {
        slot.mark_up(Health {
            state: HostState::Up,
            in_recovery: Some(true),
            wal_lsn: Some(Lsn(replay)),
            lag_bytes: Some(0),
            lag: Some(Duration::ZERO),
            ..Health::default()
        });
    }

    fn config() -> LoadBalancing {
        LoadBalancing {
            primary_only_users: vec!["background".into()],
            ..LoadBalancing::default()
        }
    }

    fn decide(
        sql: &str,
        user: &str,
        session: &SessionRouting,
        sticky: Option<Lsn>,
        hosts: &Hosts,
    ) -> Target {
        target(
            &config(),
            user,
            session,
            &classify(sql),
            sticky,
            hosts,
            true,
        )
    }

    #[test]
    fn reads_go_to_replicas_and_writes_to_the_primary() {
        let hosts = hosts(&[100, 100]);
        let plain = SessionRouting::default();
        assert!(matches!(
            decide("SELECT 1", "app", &plain, None, &hosts),
            Target::Replica(_)
        ));
        assert_eq!(
            decide("INSERT INTO t VALUES (1)", "app", &plain, None, &hosts),
            Target::Primary(PrimaryBecause::Statement(PrimaryReason::Write))
        );
    }

    #[test]
    fn precedence_follows_the_documented_order() {
        let hosts = hosts(&[100]);
        let plain = SessionRouting::default();
        let to_primary = SessionRouting {
            route: RouteSetting::Primary,
            ..SessionRouting::default()
        };
        let to_replica = SessionRouting {
            route: RouteSetting::Replica,
            ..SessionRouting::default()
        };

        let disabled = LoadBalancing {
            enabled: false,
            ..config()
        };
        assert_eq!(
            target(
                &disabled,
                "app",
                &plain,
                &classify("SELECT 1"),
                None,
                &hosts,
                true
            ),
            Target::Primary(PrimaryBecause::BalancingDisabled)
        );
        assert_eq!(
            decide("SELECT 1", "app", &plain, None, &self::hosts(&[])),
            Target::Primary(PrimaryBecause::NoReplica(NoReplica::NoneConfigured))
        );
        // primary_only_users beats even a replica hint.
        assert_eq!(
            decide(
                "/* sluice:replica */ SELECT 1",
                "background",
                &plain,
                None,
                &hosts
            ),
            Target::Primary(PrimaryBecause::PrimaryOnlyUser)
        );
        // A comment hint beats the session setting, both ways.
        assert_eq!(
            decide(
                "/* sluice:replica */ SELECT 1",
                "app",
                &to_primary,
                None,
                &hosts
            ),
            Target::Replica(0)
        );
        assert_eq!(
            decide(
                "/* sluice:primary */ SELECT 1",
                "app",
                &to_replica,
                None,
                &hosts
            ),
            Target::Primary(PrimaryBecause::Statement(PrimaryReason::Hint))
        );
        // The session setting beats the classification.
        assert_eq!(
            decide("SELECT 1", "app", &to_primary, None, &hosts),
            Target::Primary(PrimaryBecause::SessionRoute)
        );
        assert_eq!(
            decide("SELECT my_function()", "app", &to_replica, None, &hosts),
            Target::Replica(0)
        );
    }

    #[test]
    fn sticky_and_min_lsn_requirements_pick_caught_up_replicas() {
        let hosts = hosts(&[100, 200]);
        let plain = SessionRouting::default();
        for _ in 0..4 {
            assert_eq!(
                decide("SELECT 1", "app", &plain, Some(Lsn(150)), &hosts),
                Target::Replica(1)
            );
        }
        assert_eq!(
            decide("SELECT 1", "app", &plain, Some(Lsn(250)), &hosts),
            Target::Primary(PrimaryBecause::NoReplica(NoReplica::NotCaughtUp))
        );
        let carried = SessionRouting {
            min_lsn: Some(Lsn(180)),
            ..SessionRouting::default()
        };
        for _ in 0..4 {
            assert_eq!(
                decide("SELECT 1", "app", &carried, Some(Lsn(50)), &hosts),
                Target::Replica(1)
            );
        }
        assert_eq!(required_position(None, None), None);
        assert_eq!(required_position(Some(Lsn(5)), None), Some(Lsn(5)));
        assert_eq!(required_position(Some(Lsn(5)), Some(Lsn(9))), Some(Lsn(9)));
        assert_eq!(
            PrimaryBecause::NoReplica(NoReplica::NotCaughtUp).to_string(),
            "no replica has replayed the last write yet"
        );
    }
}
