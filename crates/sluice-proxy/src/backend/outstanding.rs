//! What a server connection still owes for the requests sent on it, in
//! order: one `ReadyForQuery` per batch (a Query, a Sync or a FunctionCall
//! ends one), and one ParseComplete / CloseComplete per Parse / Close. The
//! relay uses it to know when the server is idle again, and which
//! ParseComplete and CloseComplete answer messages the gateway injected
//! (those never reach the client).
//!
//! Every change goes through the methods here, called as messages are sent
//! and as their answers arrive.

use std::collections::VecDeque;

use crate::protocol::client_tag;

/// What the server still owes, in order.
#[derive(Debug, Default)]
pub struct Outstanding {
    /// Batches sent and not yet answered by ReadyForQuery.
    batches_sent: u64,
    batches_done: u64,
    /// Messages were sent after the last batch end: the batch is open.
    unsynced: bool,
    /// One entry per Parse sent, in order.
    parses: VecDeque<PendingParse>,
    /// One entry per Close sent, in order.
    closes: VecDeque<PendingClose>,
}

/// A Parse sent to the server and not yet answered.
#[derive(Debug, Clone, Copy)]
struct PendingParse {
    /// The gateway's statement it creates (for gateway-named statements).
    statement: Option<u64>,
    /// The gateway injected it: its ParseComplete is not the client's.
    injected: bool,
    batch: u64,
}

/// A Close sent to the server and not yet answered.
#[derive(Debug, Clone, Copy)]
struct PendingClose {
    injected: bool,
    batch: u64,
}

impl Outstanding {
    /// Nothing owed and no batch open: the server waits for a new request.
    pub fn idle(&self) -> bool {
        self.batches_sent == self.batches_done && !self.unsynced
    }

    /// Every batch sent was answered (a batch may still be open).
    pub fn answered(&self) -> bool {
        self.batches_sent == self.batches_done
    }

    /// Messages were sent since the last batch end (a Flush-terminated
    /// request, say): what follows belongs to the same batch.
    pub fn batch_open(&self) -> bool {
        self.unsynced
    }

    /// The number the next batch end sent will have (see [`Outstanding::batches_done`]).
    pub fn next_batch(&self) -> u64 {
        self.batches_sent
    }

    /// How many batches were answered so far.
    pub fn batches_done(&self) -> u64 {
        self.batches_done
    }

    /// A message with `tag` was sent that creates no statement.
    #[inline]
    pub fn sent(&mut self, tag: u8) {
        match tag {
            client_tag::QUERY | client_tag::SYNC | client_tag::FUNCTION_CALL => {
                self.batches_sent += 1;
                self.unsynced = false;
            }
            client_tag::PARSE
            | client_tag::BIND
            | client_tag::DESCRIBE
            | client_tag::CLOSE
            | client_tag::EXECUTE
            | client_tag::FLUSH => self.unsynced = true,
            _ => {}
        }
    }

    /// A Parse was sent; `statement` is the gateway's statement it creates.
    pub fn sent_parse(&mut self, statement: Option<u64>, injected: bool) {
        self.parses.push_back(PendingParse {
            statement,
            injected,
            batch: self.batches_sent,
        });
        self.unsynced = true;
    }

    /// A Close was sent.
    pub fn sent_close(&mut self, injected: bool) {
        self.closes.push_back(PendingClose {
            injected,
            batch: self.batches_sent,
        });
        self.unsynced = true;
    }

    /// A ParseComplete arrived: whether the gateway's own Parse caused it.
    pub fn parse_complete(&mut self) -> bool {
        self.parses.pop_front().is_some_and(|parse| parse.injected)
    }

    /// A CloseComplete arrived: whether the gateway's own Close caused it.
    pub fn close_complete(&mut self) -> bool {
        self.closes.pop_front().is_some_and(|close| close.injected)
    }

    /// A ReadyForQuery arrived: the oldest batch is answered. Parses of it
    /// that never completed (skipped after an error) created nothing:
    /// `forget` is called with each of their statements.
    pub fn ready_for_query(&mut self, mut forget: impl FnMut(u64)) {
        self.batches_done += 1;
        let done = self.batches_done;
        while self.parses.front().is_some_and(|p| p.batch < done) {
            if let Some(statement) = self.parses.pop_front().and_then(|p| p.statement) {
                forget(statement);
            }
        }
        while self.closes.front().is_some_and(|c| c.batch < done) {
            self.closes.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_owed_until_its_ready_for_query() {
        let mut out = Outstanding::default();
        assert!(out.idle());
        out.sent(client_tag::BIND);
        assert!(!out.idle() && out.answered() && out.batch_open());
        out.sent(client_tag::SYNC);
        assert!(!out.idle() && !out.answered() && !out.batch_open());
        assert_eq!(out.next_batch(), 1);
        out.ready_for_query(|_| panic!("no parse was sent"));
        assert!(out.idle());
        assert_eq!(out.batches_done(), 1);
    }

    #[test]
    fn injected_answers_are_told_apart_in_order() {
        let mut out = Outstanding::default();
        out.sent_parse(Some(7), true);
        out.sent_parse(None, false);
        out.sent_close(true);
        out.sent(client_tag::SYNC);
        assert!(out.parse_complete());
        assert!(!out.parse_complete());
        assert!(!out.parse_complete(), "nothing more was owed");
        assert!(out.close_complete());
        out.ready_for_query(|_| panic!("both parses completed"));
        assert!(out.idle());
    }

    #[test]
    fn parses_skipped_after_an_error_are_forgotten() {
        let mut out = Outstanding::default();
        out.sent_parse(Some(1), false);
        out.sent_parse(Some(2), true);
        out.sent(client_tag::SYNC);
        // The second batch's parse stays owed.
        out.sent_parse(Some(3), false);
        out.sent(client_tag::SYNC);
        // Statement 1's ParseComplete, then an error skipped statement 2's.
        assert!(!out.parse_complete(), "the client's own parse");
        let mut forgotten = Vec::new();
        out.ready_for_query(|id| forgotten.push(id));
        assert_eq!(forgotten, vec![2]);
        out.ready_for_query(|id| forgotten.push(id));
        assert_eq!(forgotten, vec![2, 3]);
    }
}
