//! The pool's queue, reserve pool and timeouts, without a server.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use super::wait::{Handoff, Waiter};
use super::*;

#[tokio::test]
async fn min_pool_size_gives_back_the_slots_it_could_not_fill() {
    // A port nothing listens on: every connect is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let text = format!(
        "[proxy]\nauth_type = \"trust\"\nmin_pool_size = 3\ndefault_pool_size = 5\n\
         [databases.app]\nhost = \"127.0.0.1\"\nport = {port}\n"
    );
    let config = Config::parse(std::path::Path::new("gw.toml"), &text).unwrap();
    let pool = Pools::default().get(&config, "app", "app").unwrap();
    pool.maintain(true).await;
    assert_eq!(pool.stats.server_connect_errors.load(Relaxed), 1);
    assert_eq!(pool.snapshot().open, 0);
}

fn pool(settings: &str) -> Arc<Pool> {
    let text = format!(
        "[proxy]\nauth_type = \"trust\"\n{settings}\n\
         [databases.app]\nhost = \"127.0.0.1\"\nport = 1\n"
    );
    let config = Config::parse(std::path::Path::new("gw.toml"), &text).unwrap();
    Pools::default().get(&config, "app", "app").unwrap()
}

async fn permit(pool: &Arc<Pool>, slot: &Arc<WaitSlot>) -> ConnectPermit {
    match pool.acquire(slot).await {
        Err(NoConn::Permit(permit)) => permit,
        Err(NoConn::TimedOut(waited)) => panic!("timed out after {waited:?}"),
        Ok(_) => panic!("no server connection exists"),
    }
}

#[tokio::test]
async fn a_freed_slot_goes_to_the_longest_waiter() {
    let pool = pool("default_pool_size = 1\nquery_wait_timeout = 0");
    let held = permit(&pool, &Arc::default()).await;
    let (first, second) = (Arc::default(), Arc::default());
    let first_wait = tokio::spawn({
        let (pool, slot) = (pool.clone(), Arc::clone(&first));
        async move { permit(&pool, &slot).await }
    });
    while pool.snapshot().waiting < 1 {
        tokio::task::yield_now().await;
    }
    let second_wait = tokio::spawn({
        let (pool, slot) = (pool.clone(), Arc::clone(&second));
        async move { permit(&pool, &slot).await }
    });
    while pool.snapshot().waiting < 2 {
        tokio::task::yield_now().await;
    }
    drop(held);
    let got = first_wait.await.unwrap();
    assert_eq!(open_idle_waiting(&pool), (1, 0, 1));
    assert!(!second_wait.is_finished());
    drop(got);
    drop(second_wait.await.unwrap());
    assert_eq!(open_idle_waiting(&pool), (0, 0, 0));
    assert_eq!(pool.stats.waits.load(Relaxed), 2);
}

#[tokio::test]
async fn a_waiter_that_gives_up_leaves_the_queue_or_passes_on_its_slot() {
    let pool = pool("default_pool_size = 1\nquery_wait_timeout = 0");
    let held = permit(&pool, &Arc::default()).await;
    let slot = Arc::default();
    // Gives up while queued.
    let waited = tokio::time::timeout(Duration::from_millis(50), pool.acquire(&slot)).await;
    assert!(waited.is_err());
    assert_eq!(pool.snapshot().waiting, 0);
    // Handed the slot, then dropped before it looked: the slot is freed.
    let mut waiting = Box::pin(pool.acquire(&slot));
    assert!(futures_poll_once(waiting.as_mut()).await.is_none());
    drop(held);
    drop(waiting);
    assert_eq!(open_idle_waiting(&pool), (0, 0, 0));
}

#[tokio::test]
async fn waiters_get_the_reserve_pool_then_time_out() {
    let pool = pool(
        "default_pool_size = 1\nreserve_pool_size = 1\nreserve_pool_timeout = 0.1\n\
         query_wait_timeout = 0.3",
    );
    let _held = permit(&pool, &Arc::default()).await;
    let started = Instant::now();
    let _reserve = permit(&pool, &Arc::default()).await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert_eq!(pool.stats.reserve_used.load(Relaxed), 1);
    assert!(
        pool.stats.wait_time_us.load(Relaxed) >= 100_000,
        "the reserve wait is counted"
    );
    let started = Instant::now();
    match pool.acquire(&Arc::default()).await {
        Err(NoConn::TimedOut(waited)) => assert!(waited >= Duration::from_millis(300)),
        _ => panic!("expected query_wait_timeout"),
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(pool.stats.wait_timeouts.load(Relaxed), 1);
    assert_eq!(open_idle_waiting(&pool), (2, 0, 0));
}

#[test]
fn due_waiters_are_served_from_the_front_and_the_next_deadline_returned() {
    let pool = pool(
        "default_pool_size = 1\nreserve_pool_size = 1\nreserve_pool_timeout = 1\n\
         query_wait_timeout = 10",
    );
    let t0 = Instant::now();
    let secs = |s: u64| t0 + Duration::from_secs(s);
    let waiter = |since: u64, tried: bool| Waiter {
        slot: Arc::default(),
        queued_at: secs(since),
        reserve_at: (!tried).then(|| secs(since + 1)),
        deadline: Some(secs(since + 10)),
    };
    let mut st = State {
        open: 1,
        waiters: [
            waiter(0, true),
            waiter(1, false),
            waiter(2, false),
            waiter(5, false),
        ]
        .into(),
        ..pool.empty_state()
    };
    let slots: Vec<_> = st.waiters.iter().map(|w| w.slot.clone()).collect();
    // At 3 s: the first untried waiter gets the one reserve connection,
    // the next has its try and waits on; the last is not due.
    assert_eq!(pool.expire_waiters(&mut st, secs(3)), Some(secs(6)));
    assert!(matches!(slots[1].take(), Some(Handoff::Permit)));
    assert!(slots[2].take().is_none());
    assert_eq!(st.open, 2);
    assert_eq!(st.waiters.len(), 3);
    // At 11 s the first waiter times out; then the reserve try of the
    // last is due (the pool is full); next is the new front's deadline.
    assert_eq!(pool.expire_waiters(&mut st, secs(11)), Some(secs(12)));
    assert!(matches!(slots[0].take(), Some(Handoff::TimedOut)));
    assert!(slots[3].take().is_none());
    assert!(st.waiters.iter().all(|w| w.reserve_at.is_none()));
    assert_eq!(pool.expire_waiters(&mut st, secs(20)), None);
    assert!(st.waiters.is_empty());
    assert_eq!(pool.stats.wait_timeouts.load(Relaxed), 3);
}

fn open_idle_waiting(pool: &Pool) -> (u32, u32, u32) {
    let snapshot = pool.snapshot();
    (snapshot.open, snapshot.idle, snapshot.waiting)
}

/// Polls `future` once: its output if it was ready.
async fn futures_poll_once<F: Future + Unpin>(mut future: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        Poll::Ready(match Pin::new(&mut future).poll(cx) {
            Poll::Ready(out) => Some(out),
            Poll::Pending => None,
        })
    })
    .await
}
