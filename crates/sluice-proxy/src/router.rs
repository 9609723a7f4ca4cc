//! The request router's gateway-wide state: per database with `replicas`,
//! the host table and its health checker; the statement classifier cache;
//! the sticky store for application keys.
//!
//! The per-request decisions live in each session's
//! [`crate::balance::session::Balancing`], which asks
//! [`crate::balance::route::target`] with the state kept here.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::balance::classify::Classifier;
use arc_swap::ArcSwap;

use crate::balance::config::{HostAddr, LoadBalancing, StickyMode};
use crate::balance::health::{spawn_health_checker, CheckerConfig, HealthChecker};
use crate::balance::hosts::{Choice, Hosts, NoReplica};
use crate::balance::route::{PrimaryBecause, Target};
use crate::balance::sticky::{AnyStore, StickyError};
use crate::config::Config;

/// Verdicts cached by statement text; enough for any application's set of
/// distinct statements.
const CLASSIFIER_CAPACITY: usize = 16 * 1024;

/// The balancing state of one database.
pub struct BalancedDatabase {
    /// The settings it was built with (sessions read these, so a reload
    /// that changes them builds a new one).
    pub config: LoadBalancing,
    pub hosts: Arc<Hosts>,
    /// How the primary's WAL position was read after writing transactions.
    pub lsn_reads: LsnReads,
    /// Where reads went, and why not to a replica (for the metrics).
    pub reads: ReadRouting,
    /// Stops the checker tasks when the gateway goes away (`None` when
    /// health is staged by hand, as scenario tests do).
    _checker: Option<HealthChecker>,
}

/// Counts of the gateway's `SELECT pg_current_wal_insert_lsn()` after
/// writing transactions (sticky read-your-writes), by how it was sent.
#[derive(Debug, Default)]
pub struct LsnReads {
    /// Appended to the request that ended the transaction (no extra round trip).
    pub pipelined: AtomicU64,
    /// Sent on its own after the transaction ended (one extra round trip).
    pub separate: AtomicU64,
}

/// Counts of the routing decisions for reads (requests a replica could
/// serve), by outcome. Writes and requests sent to the primary by a
/// setting or a hint are not counted: they had no choice to make.
#[derive(Debug, Default)]
pub struct ReadRouting {
    /// Sent to a replica.
    pub replica: AtomicU64,
    /// To the primary: no replica had replayed the client's sticky position
    /// (or the sticky store could not tell it).
    pub primary_sticky: AtomicU64,
    /// To the primary: every healthy replica was past the lag limits.
    pub primary_lag: AtomicU64,
    /// To the primary: no replica was up (and in recovery).
    pub primary_unhealthy: AtomicU64,
}

impl ReadRouting {
    /// Counts a decision of [`crate::balance::route::target`].
    pub fn count_target(&self, target: Target) {
        match target {
            Target::Replica(index) => self.count(Choice::Replica(index)),
            Target::Primary(PrimaryBecause::NoReplica(why)) => self.count(Choice::Primary(why)),
            Target::Primary(_) => {}
        }
    }

    /// Counts a decision of [`Hosts::choose`].
    pub fn count(&self, choice: Choice) {
        let counter = match choice {
            Choice::Replica(_) => &self.replica,
            Choice::Primary(NoReplica::NotCaughtUp | NoReplica::StickyUnknown) => {
                &self.primary_sticky
            }
            Choice::Primary(NoReplica::TooFarBehind) => &self.primary_lag,
            Choice::Primary(NoReplica::NoneHealthy) => &self.primary_unhealthy,
            Choice::Primary(NoReplica::NoneConfigured) => return,
        };
        counter.fetch_add(1, Relaxed);
    }
}

/// Whether the router checks its hosts' health itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthChecks {
    /// A checker task per host (the gateway's normal way).
    Run,
    /// None: whoever built the router stages host health by hand
    /// ([`crate::balance::hosts::HostSlot::mark_up`]), as scenario tests do.
    Manual,
}

/// Everything routing needs that is shared by all clients.
pub struct Router {
    pub classifier: Classifier,
    /// Where application sticky keys (`sticky = "key"`) are kept; `None`
    /// unless that mode is on. Connection keys live in their session.
    pub store: Option<AnyStore>,
    /// Per database with replicas; replaced whole by a reload (sessions
    /// keep the one they logged in with).
    databases: ArcSwap<HashMap<String, Arc<BalancedDatabase>>>,
    checks: HealthChecks,
}

impl Router {
    /// Builds the router and, with [`HealthChecks::Run`], starts one health
    /// checker per database with replicas (when `load_balancing.enabled`).
    /// Must run inside a Tokio runtime. Fails only for a Redis URL the
    /// client library refuses.
    pub fn start(config: &Config, checks: HealthChecks) -> Result<Router, StickyError> {
        let lb = &config.load_balancing;
        let databases = build_databases(config, checks, &HashMap::new());
        let store = if lb.enabled && lb.sticky == StickyMode::Key && !databases.is_empty() {
            Some(AnyStore::from_config(&lb.sticky_store, lb.sticky_ttl)?)
        } else {
            None
        };
        Ok(Router {
            classifier: Classifier::new(CLASSIFIER_CAPACITY),
            store,
            databases: ArcSwap::from_pointee(databases),
            checks,
        })
    }

    /// The balancing state of `database`, if reads may go to its replicas.
    pub fn database(&self, database: &str) -> Option<Arc<BalancedDatabase>> {
        self.databases.load().get(database).cloned()
    }

    /// Takes on a changed configuration: a database whose replicas or
    /// `[load_balancing]` settings changed gets a new host table and health
    /// checker; the others keep theirs (and their hosts' health). The
    /// sticky store stays as it started (changing it needs a restart).
    pub fn reconfigure(&self, config: &Config) {
        let current = self.databases.load_full();
        let databases = build_databases(config, self.checks, &current);
        self.databases.store(Arc::new(databases));
    }
}

/// The balancing state of every database with replicas, reusing `current`'s
/// where nothing that matters changed.
fn build_databases(
    config: &Config,
    checks: HealthChecks,
    current: &HashMap<String, Arc<BalancedDatabase>>,
) -> HashMap<String, Arc<BalancedDatabase>> {
    let lb = &config.load_balancing;
    let mut databases = HashMap::new();
    if lb.enabled {
        let user = config
            .health_check_user()
            .unwrap_or_else(|| "postgres".into());
        let password = config.auth.get(&user).and_then(|s| s.password.clone());
        for (name, db) in &config.databases {
            if db.replicas.is_empty() {
                continue;
            }
            let primary = HostAddr {
                host: db.host.clone(),
                port: db.port,
            };
            if let Some(existing) = current.get(name) {
                let same_hosts = existing.hosts.primary().addr == primary
                    && existing
                        .hosts
                        .replicas()
                        .iter()
                        .map(|r| &r.addr)
                        .eq(db.replicas.iter());
                if same_hosts && existing.config == *lb {
                    databases.insert(name.clone(), existing.clone());
                    continue;
                }
            }
            let hosts = Arc::new(Hosts::new(primary, db.replicas.clone()));
            let dbname = db.dbname.clone().unwrap_or_else(|| name.clone());
            let mut checker_config = CheckerConfig::new(lb, &user, password.as_deref(), &dbname);
            checker_config.tls = config.server_tls.clone();
            let checker = (checks == HealthChecks::Run)
                .then(|| spawn_health_checker(checker_config, hosts.clone()));
            tracing::info!(database = %name, replicas = db.replicas.len(), check_user = %user, "load balancing reads");
            databases.insert(
                name.clone(),
                Arc::new(BalancedDatabase {
                    config: lb.clone(),
                    hosts,
                    lsn_reads: LsnReads::default(),
                    reads: ReadRouting::default(),
                    _checker: checker,
                }),
            );
        }
    }
    databases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::classify::PrimaryReason;

    #[test]
    fn read_decisions_are_counted_by_why() {
        let reads = ReadRouting::default();
        reads.count_target(Target::Replica(1));
        reads.count(Choice::Replica(0));
        for why in [NoReplica::NotCaughtUp, NoReplica::StickyUnknown] {
            reads.count_target(Target::Primary(PrimaryBecause::NoReplica(why)));
        }
        reads.count(Choice::Primary(NoReplica::TooFarBehind));
        reads.count(Choice::Primary(NoReplica::NoneHealthy));
        // Not a read that had a choice: not counted.
        reads.count(Choice::Primary(NoReplica::NoneConfigured));
        reads.count_target(Target::Primary(PrimaryBecause::Statement(
            PrimaryReason::Write,
        )));
        reads.count_target(Target::Primary(PrimaryBecause::SessionRoute));
        let counts = [
            &reads.replica,
            &reads.primary_sticky,
            &reads.primary_lag,
            &reads.primary_unhealthy,
        ]
        .map(|c| c.load(Relaxed));
        assert_eq!(counts, [2, 2, 1, 1]);
    }
}
