//! Waiting for a server connection: the pool's FIFO queue of clients, and
//! one timer task per pool that serves the reserve pool and
//! query_wait_timeout from the queue's deadlines (pgbouncer's janitor
//! checks them the same way), so a wait allocates nothing and arms no
//! timer of its own.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{Checkout, ConnectPermit, Pool, State};
use crate::backend::ServerConn;

pub(crate) enum Handoff {
    /// A ready connection.
    Conn(Box<ServerConn>),
    /// A slot: the receiver may open a new connection (already counted in `open`).
    Permit,
    /// query_wait_timeout passed.
    TimedOut,
}

/// Where one client waits for a server connection. A client keeps one for
/// its whole session and the pool queues a reference to it, so a wait
/// allocates nothing (a oneshot channel and a timer per wait showed in
/// profiles at `pgbench -c 64`: most requests wait there).
#[derive(Default)]
pub struct WaitSlot {
    inner: Mutex<SlotInner>,
}

#[derive(Default)]
struct SlotInner {
    handoff: Option<Handoff>,
    waker: Option<Waker>,
}

impl WaitSlot {
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands the waiter what it waited for (called under the pool's lock,
    /// just after taking the waiter out of the queue).
    pub(crate) fn fill(&self, handoff: Handoff) {
        let waker = {
            let mut inner = self.lock();
            inner.handoff = Some(handoff);
            inner.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub(crate) fn take(&self) -> Option<Handoff> {
        self.lock().handoff.take()
    }

    fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Handoff> {
        let mut inner = self.lock();
        match inner.handoff.take() {
            Some(handoff) => {
                inner.waker = None;
                Poll::Ready(handoff)
            }
            None => {
                match &inner.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => inner.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

pub(crate) struct Waiter {
    pub(crate) slot: Arc<WaitSlot>,
    /// When it joined the queue (for `maxwait`).
    pub(crate) queued_at: Instant,
    /// When the reserve pool may open for this waiter (`None`: not, or no more).
    pub(crate) reserve_at: Option<Instant>,
    /// When it gives up (`None`: never).
    pub(crate) deadline: Option<Instant>,
}

/// What [`Pool::acquire`] got instead of a server connection.
pub enum NoConn {
    /// The right to open one (see [`Pool::connect`]).
    Permit(ConnectPermit),
    /// query_wait_timeout passed after this long.
    TimedOut(Duration),
}

impl Pool {
    /// Puts `slot` at the end of the queue, with deadlines counted from
    /// `now`, and makes sure a timer watches them. `now` is read under the
    /// pool's lock, so it only grows along the queue: the deadlines come in
    /// queue order.
    pub(crate) fn enqueue(self: &Arc<Self>, st: &mut State, slot: Arc<WaitSlot>, now: Instant) {
        let limits = &st.limits;
        let reserve_at = (limits.reserve_pool_size > 0).then(|| now + limits.reserve_pool_timeout);
        let deadline =
            (!limits.query_wait_timeout.is_zero()).then(|| now + limits.query_wait_timeout);
        let waiter = Waiter {
            slot,
            queued_at: now,
            reserve_at,
            deadline,
        };
        let timed = waiter.reserve_at.is_some() || waiter.deadline.is_some();
        st.waiters.push_back(waiter);
        if timed && !st.timer_running {
            st.timer_running = true;
            tokio::spawn(self.clone().watch_waiters());
        }
    }

    /// The queue's timer (one task per pool while clients wait, not one
    /// timer per wait): at each waiter's reserve_pool_timeout, a permit
    /// for a reserve connection if there is room; at its
    /// query_wait_timeout, the error.
    async fn watch_waiters(self: Arc<Self>) {
        loop {
            let next = {
                let mut st = self.lock();
                match self.expire_waiters(&mut st, Instant::now()) {
                    Some(next) => next,
                    None => {
                        st.timer_running = false;
                        return;
                    }
                }
            };
            tokio::time::sleep_until(next.into()).await;
        }
    }

    /// Serves or fails the waiters whose time has come; returns when the
    /// next one's does (`None`: no waiter has a deadline left).
    ///
    /// Deadlines come in queue order (see [`Pool::enqueue`]), so only the
    /// front of the queue can be due; waiters that had their one try at
    /// the reserve pool are a prefix of it.
    pub(crate) fn expire_waiters(&self, st: &mut State, now: Instant) -> Option<Instant> {
        while st
            .waiters
            .front()
            .is_some_and(|w| w.deadline.is_some_and(|d| now >= d))
        {
            let waiter = st.waiters.pop_front().expect("front exists");
            self.stats.wait_timeouts.fetch_add(1, Relaxed);
            waiter.slot.fill(Handoff::TimedOut);
        }
        let mut untried = st.waiters.partition_point(|w| w.reserve_at.is_none());
        while let Some(waiter) = st.waiters.get_mut(untried) {
            if waiter.reserve_at.is_none_or(|r| now < r) {
                break;
            }
            // One try: with the reserve pool full, the client waits on for
            // a returned connection.
            waiter.reserve_at = None;
            let room = st.limits.pool_size + st.limits.reserve_pool_size;
            if st.open < room && self.caps.try_take() {
                st.open += 1;
                let waiter = st.waiters.remove(untried).expect("index in range");
                self.stats.reserve_used.fetch_add(1, Relaxed);
                waiter.slot.fill(Handoff::Permit);
            } else {
                untried += 1;
            }
        }
        let next_deadline = st.waiters.front().and_then(|w| w.deadline);
        let next_reserve = st.waiters.get(untried).and_then(|w| w.reserve_at);
        match (next_deadline, next_reserve) {
            (Some(d), Some(r)) => Some(d.min(r)),
            (d, r) => d.or(r),
        }
    }

    /// Gives waiting clients the permits the pool now has room for (after
    /// a reload made it bigger, or another pool under the same
    /// `max_db_connections`/`max_user_connections` closed a connection).
    pub fn grant_waiters(&self) {
        let mut st = self.lock();
        while !st.waiters.is_empty() && st.open < st.limits.pool_size && self.caps.try_take() {
            st.open += 1;
            let waiter = st.waiters.pop_front().expect("not empty");
            waiter.slot.fill(Handoff::Permit);
        }
    }

    /// A waiter gave up (its future was dropped): take it out of the queue,
    /// or pass on what it was handed meanwhile.
    pub(crate) fn abandon(&self, slot: &Arc<WaitSlot>) {
        let handoff = {
            let mut st = self.lock();
            match st.waiters.iter().position(|w| Arc::ptr_eq(&w.slot, slot)) {
                Some(position) => {
                    st.waiters.remove(position);
                    None
                }
                None => slot.take(),
            }
        };
        match handoff {
            Some(Handoff::Conn(conn)) => self.checkin(conn),
            Some(Handoff::Permit) => self.release_slot(),
            Some(Handoff::TimedOut) | None => {}
        }
    }
}

/// The future of [`Pool::acquire`]. Dropped while queued, it leaves the
/// queue (or passes on what it was just handed).
pub struct Acquire<'a> {
    pool: &'a Arc<Pool>,
    slot: &'a Arc<WaitSlot>,
    /// When it first had to wait.
    since: Option<Instant>,
    queued: bool,
}

impl<'a> Acquire<'a> {
    pub(super) fn new(pool: &'a Arc<Pool>, slot: &'a Arc<WaitSlot>) -> Acquire<'a> {
        Acquire {
            pool,
            slot,
            since: None,
            queued: false,
        }
    }

    fn done(&self, got: Result<Checkout, NoConn>) -> Poll<Result<Checkout, NoConn>> {
        if got.is_ok() {
            self.pool
                .stats
                .server_assignment_count
                .fetch_add(1, Relaxed);
        }
        if let Some(since) = self.since {
            self.pool.stats.observe_wait(since.elapsed());
        }
        Poll::Ready(got)
    }
}

impl Future for Acquire<'_> {
    type Output = Result<Checkout, NoConn>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let pool = self.pool;
        loop {
            if self.queued {
                let handoff = std::task::ready!(self.slot.poll_take(cx));
                self.queued = false;
                match handoff {
                    Handoff::Conn(conn) => match pool.accept_handoff(conn, false) {
                        Some(checkout) => return self.done(Ok(checkout)),
                        None => continue, // it had died: queue again
                    },
                    Handoff::Permit => return self.done(Err(NoConn::Permit(pool.permit()))),
                    Handoff::TimedOut => {
                        let waited = self.since.map(|s| s.elapsed()).unwrap_or_default();
                        return self.done(Err(NoConn::TimedOut(waited)));
                    }
                }
            }
            let mut st = pool.lock();
            if let Some(conn) = st.idle.pop_back() {
                let check = !st.limits.server_check_query.is_empty()
                    && conn.last_used.elapsed() >= st.limits.server_check_delay;
                drop(st);
                match pool.accept_handoff(conn, check) {
                    Some(checkout) => return self.done(Ok(checkout)),
                    None => continue,
                }
            }
            if st.open < st.limits.pool_size {
                if pool.caps.try_take() {
                    st.open += 1;
                    drop(st);
                    return self.done(Err(NoConn::Permit(pool.permit())));
                }
                // The database's or user's limit is full: make room by
                // closing another pool's idle connection, else wait.
                drop(st);
                if pool.evict_for_caps() {
                    continue;
                }
                st = pool.lock();
            }
            // (Queued again after being handed a dead connection, a client's
            // deadlines start over; `since` keeps its whole wait.)
            let now = Instant::now();
            self.since.get_or_insert(now);
            pool.enqueue(&mut st, self.slot.clone(), now);
            self.queued = true;
        }
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        if self.queued {
            self.pool.abandon(self.slot);
        }
    }
}
