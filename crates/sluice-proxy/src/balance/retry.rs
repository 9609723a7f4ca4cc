//! Retrying a request elsewhere: a read sent to a replica that fails
//! before any of its answer reached the client goes to another replica,
//! then the primary (a read on a hot standby cannot have changed anything,
//! so resending it is safe); a primary that cannot be reached is tried a
//! few times with a doubling wait.

use std::time::Duration;

use bytes::BytesMut;

/// Connection attempts to the primary before the client gets an error.
const PRIMARY_CONNECT_TRIES: u32 = 3;
/// The first wait before retrying the primary; doubled each time.
const PRIMARY_RETRY_DELAY: Duration = Duration::from_millis(100);

/// How a request sent to a replica is retried elsewhere if the replica
/// fails before any of its answer reached the client (a read on a hot
/// standby cannot have changed anything, so resending it is safe).
#[derive(Debug, Default)]
pub struct Retry {
    /// The request as sent, until the first byte of its answer.
    resend: Option<Resend>,
    /// Replica failures for the pending request.
    pub(super) replica_failures: usize,
    /// Something was sent on the current server.
    pub(super) sent: bool,
}

/// A request that may still be sent to another host.
#[derive(Debug)]
pub struct Resend {
    pub bytes: BytesMut,
    pub request_end: usize,
    pub has_named: bool,
}

impl Retry {
    /// Before the first send on a replica, keeps a copy of the request.
    pub fn keep(&mut self, on_replica: bool, pending: &[u8], request_end: usize, has_named: bool) {
        if on_replica && self.resend.is_none() && !self.sent {
            self.resend = Some(Resend {
                bytes: BytesMut::from(pending),
                request_end,
                has_named,
            });
        }
        self.sent = true;
    }

    /// The request went to a replica and nothing of its answer reached the
    /// client yet: it may still go elsewhere.
    pub fn awaiting_first_answer(&self) -> bool {
        self.resend.is_some()
    }

    /// The first answer arrived: the request stays where it is.
    pub fn answered(&mut self) {
        self.resend = None;
    }

    /// The replica failed: the request to send again, if any.
    pub fn take_resend(&mut self) -> Option<Resend> {
        self.replica_failures += 1;
        self.resend.take()
    }

    /// The request was served: the next one starts afresh.
    pub fn done(&mut self) {
        *self = Retry::default();
    }
}

/// Connection attempts to the primary, with exponential backoff.
#[derive(Debug, Default)]
pub struct PrimaryRetry {
    tries: u32,
}

impl PrimaryRetry {
    /// After a failed attempt: how long to wait before the next one, or
    /// `None` when the attempts are used up.
    pub fn next_delay(&mut self) -> Option<Duration> {
        self.tries += 1;
        (self.tries < PRIMARY_CONNECT_TRIES).then(|| PRIMARY_RETRY_DELAY * (1 << (self.tries - 1)))
    }

    pub fn tries(&self) -> u32 {
        self.tries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_is_tried_three_times_with_doubling_waits() {
        let mut retry = PrimaryRetry::default();
        assert_eq!(retry.next_delay(), Some(Duration::from_millis(100)));
        assert_eq!(retry.next_delay(), Some(Duration::from_millis(200)));
        assert_eq!(retry.next_delay(), None);
        assert_eq!(retry.tries(), 3);
    }

    #[test]
    fn a_request_is_kept_for_resending_only_before_its_first_send() {
        let mut retry = Retry::default();
        retry.keep(true, b"request", 7, false);
        assert!(retry.awaiting_first_answer());
        retry.keep(true, b"more", 4, false);
        let resend = retry.take_resend().expect("kept");
        assert_eq!(&resend.bytes[..], b"request");
        assert_eq!(retry.replica_failures, 1);
        retry.done();
        retry.keep(false, b"on the primary", 14, false);
        assert!(!retry.awaiting_first_answer());
    }
}
