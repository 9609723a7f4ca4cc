//! Client read buffers, recycled per thread.
//!
//! An idle client holds no read buffer (so that 10,000 idle clients cost
//! little memory), so each request needs one again. Allocating 8 KiB and
//! freeing it around every transaction took the allocator's slow path each
//! time; a short per-thread stack of spare buffers makes it a pop and a push.

use std::cell::RefCell;

use bytes::BytesMut;

/// The size of a client read buffer.
pub const SIZE: usize = 8 * 1024;

/// Spare buffers kept per thread: at most 512 KiB, about the buffers of the
/// clients between two requests at once under load.
const SPARES: usize = 64;

thread_local! {
    static SPARE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer with room for `SIZE` bytes.
pub fn take() -> BytesMut {
    SPARE
        .with(|spare| spare.borrow_mut().pop())
        .unwrap_or_else(|| BytesMut::with_capacity(SIZE))
}

/// Gives a buffer back for [`take`]. Only plain `SIZE` buffers are kept;
/// grown ones go back to the allocator.
pub fn give(mut buf: BytesMut) {
    buf.clear();
    // On an empty buffer this moves its start back to the beginning of its
    // allocation (consumed bytes leave a gap in front), without copying.
    buf.reserve(SIZE);
    if buf.capacity() != SIZE {
        return;
    }
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.len() < SPARES {
            spare.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use bytes::Buf;

    use super::*;

    #[test]
    fn a_given_buffer_comes_back_whole() {
        let mut buf = take();
        assert!(buf.is_empty() && buf.capacity() == SIZE);
        buf.extend_from_slice(&[7; 100]);
        buf.advance(60);
        let address = buf.as_ptr() as usize - 60;
        give(buf);
        let again = take();
        assert!(again.is_empty());
        assert_eq!(again.capacity(), SIZE, "the consumed gap is reclaimed");
        assert_eq!(again.as_ptr() as usize, address, "the same allocation");
    }

    #[test]
    fn grown_buffers_and_extra_spares_are_not_kept() {
        let mut big = take();
        big.reserve(4 * SIZE);
        give(big);
        assert!(SPARE.with(|s| s.borrow().iter().all(|b| b.capacity() == SIZE)));
        for _ in 0..2 * SPARES {
            give(BytesMut::with_capacity(SIZE));
        }
        assert_eq!(SPARE.with(|s| s.borrow().len()), SPARES);
    }
}
