//! Limits several pools share: `max_db_connections` (every user's pool of
//! one database) and `max_user_connections` (every database's pool of one
//! user). As in pgbouncer, a full limit never fails a client: it waits in
//! its pool's queue. To make room, the least recently used idle connection
//! of another pool under the same limit is closed; otherwise the pool is
//! woken when one of the others closes a connection.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::Pool;

/// One shared limit on open server connections.
#[derive(Debug, Default)]
pub struct ConnCap {
    /// 0: no limit.
    max: AtomicU32,
    open: AtomicU32,
    /// Every pool under this limit (to evict from, and to wake).
    pools: Mutex<Vec<Weak<Pool>>>,
}

impl ConnCap {
    pub fn new(max: u32) -> ConnCap {
        ConnCap {
            max: AtomicU32::new(max),
            ..ConnCap::default()
        }
    }

    /// Connections open under this limit now.
    pub fn open(&self) -> u32 {
        self.open.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> u32 {
        self.max.load(Ordering::Relaxed)
    }

    /// A reload changed the limit.
    pub fn set_max(&self, max: u32) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Counts one more connection if the limit allows it.
    pub fn try_take(&self) -> bool {
        let max = self.max.load(Ordering::Relaxed);
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |open| {
                (max == 0 || open < max).then_some(open + 1)
            })
            .is_ok()
    }

    /// One connection under this limit closed.
    pub fn give_back(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |open| {
                open.checked_sub(1)
            });
    }

    pub(super) fn join(&self, pool: &Arc<Pool>) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.retain(|p| p.strong_count() > 0);
        pools.push(Arc::downgrade(pool));
    }

    /// The pools under this limit (that still exist).
    pub(super) fn pools(&self) -> Vec<Arc<Pool>> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.iter().filter_map(Weak::upgrade).collect()
    }
}

/// The two limits a pool's connections count against.
#[derive(Debug, Clone)]
pub struct PoolCaps {
    pub database: Arc<ConnCap>,
    pub user: Arc<ConnCap>,
}

impl PoolCaps {
    /// Counts a new connection against both limits, or neither.
    pub fn try_take(&self) -> bool {
        if !self.database.try_take() {
            return false;
        }
        if !self.user.try_take() {
            self.database.give_back();
            return false;
        }
        true
    }

    pub fn give_back(&self) {
        self.database.give_back();
        self.user.give_back();
    }

    /// Whichever limit is full (for eviction), if one is.
    pub fn full(&self) -> Option<&Arc<ConnCap>> {
        [&self.database, &self.user]
            .into_iter()
            .find(|cap| cap.max() > 0 && cap.open() >= cap.max())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_counts_and_gives_back() {
        let caps = PoolCaps {
            database: Arc::new(ConnCap::new(2)),
            user: Arc::new(ConnCap::new(0)),
        };
        assert!(caps.try_take() && caps.try_take());
        assert!(!caps.try_take(), "the database limit is reached");
        assert_eq!(caps.user.open(), 2, "the user's count stays consistent");
        assert!(caps.full().is_some());
        caps.give_back();
        assert!(caps.full().is_none());
        assert!(caps.try_take());
        caps.database.set_max(0);
        assert!(caps.try_take(), "no limit any more");
        caps.give_back();
        caps.give_back();
        caps.give_back();
        caps.give_back();
        assert_eq!(caps.database.open(), 0, "never below zero");
    }
}
