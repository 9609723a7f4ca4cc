//! A boxed future whose allocation is recycled per thread.
//!
//! A session boxes its exchange with the server once per transaction, so
//! that an idle client's task stays small (the exchange's state would
//! otherwise sit in every idle client's future). Allocating and freeing
//! that box around every transaction is a pattern general-purpose
//! allocators handle badly: with one exchange alive at a time, mimalloc
//! found its page empty at every free and took its slow path at every
//! allocation (callgrind: about 150 instructions per transaction instead of
//! 45). Like `buffers`, a short per-thread stack of spare blocks turns that
//! into a pop and a push.

use std::alloc::Layout;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// Spare blocks kept per thread (of any layout), enough for the sessions
/// between two transactions at once.
const SPARES: usize = 64;

thread_local! {
    static SPARE: RefCell<Spares> = const { RefCell::new(Spares(Vec::new())) };
}

/// A thread's spare blocks, freed when the thread ends.
struct Spares(Vec<(Layout, NonNull<u8>)>);

impl Drop for Spares {
    fn drop(&mut self) {
        for (layout, block) in self.0.drain(..) {
            // SAFETY: each spare was allocated with its layout and is unused.
            unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
        }
    }
}

/// A heap-allocated future (like `Pin<Box<F>>`) whose memory goes back to
/// a per-thread stack when it is dropped.
pub struct Recycled<F: Future> {
    /// Owns an initialized `F` that never moves (it is pinned).
    future: NonNull<F>,
}

// SAFETY: `Recycled` owns its `F` as a `Box` would; it is Send/Sync exactly
// when `F` is.
unsafe impl<F: Future + Send> Send for Recycled<F> {}
unsafe impl<F: Future + Sync> Sync for Recycled<F> {}

impl<F: Future> Recycled<F> {
    pub fn new(future: F) -> Recycled<F> {
        let layout = Layout::new::<F>();
        let block = if layout.size() == 0 {
            NonNull::<F>::dangling().cast()
        } else {
            take(layout).unwrap_or_else(|| {
                // SAFETY: the layout is not zero-sized.
                let raw = unsafe { std::alloc::alloc(layout) };
                NonNull::new(raw).unwrap_or_else(|| std::alloc::handle_alloc_error(layout))
            })
        };
        let future_ptr = block.cast::<F>();
        // SAFETY: `block` is valid for writes of `F` (allocated, or taken
        // from the spares, with `F`'s exact layout) and properly aligned.
        unsafe { future_ptr.as_ptr().write(future) };
        Recycled { future: future_ptr }
    }
}

impl<F: Future> Future for Recycled<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: the future lives at a fixed heap address until `drop`,
        // so pinning it there is sound; `self` is borrowed mutably, so no
        // other reference to it exists.
        let future = unsafe { Pin::new_unchecked(&mut *self.future.as_ptr()) };
        future.poll(cx)
    }
}

impl<F: Future> Drop for Recycled<F> {
    fn drop(&mut self) {
        // SAFETY: the future is initialized and dropped exactly once, here.
        unsafe { std::ptr::drop_in_place(self.future.as_ptr()) };
        let layout = Layout::new::<F>();
        if layout.size() != 0 {
            give(layout, self.future.cast());
        }
    }
}

fn take(layout: Layout) -> Option<NonNull<u8>> {
    SPARE
        .try_with(|spare| {
            let spare = &mut spare.borrow_mut().0;
            let at = spare.iter().rposition(|(l, _)| *l == layout)?;
            Some(spare.swap_remove(at).1)
        })
        .ok()
        .flatten()
}

fn give(layout: Layout, block: NonNull<u8>) {
    let kept = SPARE
        .try_with(|spare| {
            let spare = &mut spare.borrow_mut().0;
            if spare.len() < SPARES {
                spare.push((layout, block));
                true
            } else {
                false
            }
        })
        .unwrap_or(false);
    if !kept {
        // SAFETY: `block` was allocated with `layout` and is not used any more.
        unsafe { std::alloc::dealloc(block.as_ptr(), layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_recycled_future_runs_and_its_block_is_reused() {
        let first = Recycled::new(async { 40 + 2 });
        let address = first.future.as_ptr() as usize;
        assert_eq!(first.await, 42);
        let second = Recycled::new(async { 7 });
        assert_eq!(second.future.as_ptr() as usize, address, "the same block");
        assert_eq!(second.await, 7);
    }

    #[tokio::test]
    async fn dropping_an_unfinished_future_drops_what_it_holds() {
        struct Counted(Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = Arc::new(AtomicUsize::new(0));
        let held = Counted(drops.clone());
        let pending = Recycled::new(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        drop(pending);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(Recycled::new(async {}).await, ());
    }
}
