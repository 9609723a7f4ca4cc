//! The client side of a session's bytes (mini-redis's `Connection`): the
//! stream and one read buffer, scanned into whole messages and requests.
//!
//! A *request* ends with a message after which the client waits for an
//! answer: `Query`, `Sync`, `Flush`, `FunctionCall`, or COPY data. The
//! session checks a server out only once a whole request is there, so that
//! a client typing slowly never holds one. The buffer is given back while
//! the client is idle, so that an idle client costs only its socket and a
//! few small fields.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ClientError;
use crate::buffers;
use crate::net::ClientStream;
use crate::protocol::{self, sqlstate, Frontend, Messages};

/// Pending client bytes beyond which a request is sent without waiting for its end.
const MAX_PENDING: usize = 1 << 20;

/// A client's stream and what it sent that was not forwarded yet.
pub struct ClientConn<S> {
    pub stream: S,
    /// Client bytes: complete messages in `buf[..scanned]`, then a partial one.
    pub buf: BytesMut,
    pub scanned: usize,
    /// `buf[..request_end]` ends with a request boundary (Query, Sync, ...).
    pub request_end: usize,
    /// The pending messages name a prepared statement (they may need renaming).
    pub has_named: bool,
    /// The client sent Terminate: nothing after it matters.
    pub terminating: bool,
    max_packet: usize,
}

impl<S: ClientStream> ClientConn<S> {
    pub fn new(stream: S, max_packet: usize) -> ClientConn<S> {
        ClientConn {
            stream,
            buf: BytesMut::new(),
            scanned: 0,
            request_end: 0,
            has_named: false,
            terminating: false,
            max_packet,
        }
    }

    /// Reads more client bytes. An idle client holds no buffer: wait until
    /// the stream is readable, then take one.
    pub async fn read(&mut self) -> io::Result<usize> {
        if self.buf.capacity() == 0 {
            self.stream.readable().await?;
            self.buf = buffers::take();
        } else if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(buffers::SIZE);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Writes what fits without waiting.
    pub fn write_now(&mut self, bytes: &[u8]) {
        self.stream.write_now(bytes);
    }

    /// Gives the read buffer back while nothing is pending.
    pub fn release_idle_buffer(&mut self) -> bool {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            buffers::give(std::mem::take(&mut self.buf));
            return true;
        }
        false
    }

    /// The whole messages received and not yet forwarded.
    pub fn pending(&self) -> &[u8] {
        &self.buf[..self.scanned]
    }

    /// The pending messages up to the last request boundary.
    pub fn request(&self) -> &[u8] {
        &self.buf[..self.request_end]
    }

    /// The pending messages, one by one.
    pub fn messages(&self) -> Messages<'_> {
        Messages::new(self.pending())
    }

    /// Whether everything pending is one or more whole requests (nothing
    /// after the last boundary).
    pub fn request_complete(&self) -> bool {
        self.request_end == self.scanned
    }

    /// The first pending message, if it is the whole request (its tag and bytes).
    pub fn lone_message(&self) -> Option<protocol::RawMessage<'_>> {
        let first = self.messages().next()?;
        (first.end() == self.request_end).then_some(first)
    }

    /// Finds the complete messages in the buffer and where the request ends.
    pub fn scan(&mut self) -> Result<(), ClientError> {
        loop {
            let rest = &self.buf[self.scanned..];
            let Some(len) = protocol::frame_len(rest, self.max_packet)? else {
                break;
            };
            match protocol::decode_frontend(&rest[..len])? {
                Frontend::Terminate => {
                    // Nothing after Terminate matters, and servers never see it.
                    self.terminating = true;
                    self.buf.truncate(self.scanned);
                    self.request_end = self.scanned;
                    return Ok(());
                }
                Frontend::Password(_) => {
                    return Err(ClientError::fatal(
                        sqlstate::PROTOCOL_VIOLATION,
                        "unexpected password message after login",
                    ))
                }
                Frontend::Query(_)
                | Frontend::Sync
                | Frontend::Flush
                | Frontend::FunctionCall(_)
                | Frontend::CopyData(_)
                | Frontend::CopyDone
                | Frontend::CopyFail(_) => {
                    self.scanned += len;
                    self.request_end = self.scanned;
                }
                Frontend::Parse { name, .. }
                | Frontend::Bind {
                    statement: name, ..
                }
                | Frontend::Describe { kind: b'S', name }
                | Frontend::Close { kind: b'S', name } => {
                    // Only named statements need renaming.
                    self.has_named |= !name.is_empty();
                    self.scanned += len;
                }
                Frontend::Describe { .. } | Frontend::Close { .. } | Frontend::Execute { .. } => {
                    self.scanned += len
                }
            }
        }
        if self.scanned >= MAX_PENDING {
            self.request_end = self.scanned;
        }
        Ok(())
    }

    /// Drops the first `len` pending bytes (forwarded or answered).
    pub fn consume(&mut self, len: usize) {
        self.buf.advance(len);
        self.scanned -= len;
        self.request_end = self.request_end.saturating_sub(len);
        if self.scanned == 0 {
            self.has_named = false;
        }
    }

    /// Puts a request that must be sent again in front of whatever the
    /// client sent since (see `balance::session::Resend`).
    pub fn put_back(&mut self, mut bytes: BytesMut, request_end: usize, has_named: bool) {
        let len = bytes.len();
        bytes.extend_from_slice(&self.buf);
        self.buf = bytes;
        self.scanned += len;
        self.request_end = if self.request_end > 0 {
            self.request_end + len
        } else {
            request_end
        };
        self.has_named |= has_named;
    }
}

/// Whether a request runs anything (a Query, an Execute or a FunctionCall),
/// as opposed to only preparing or describing statements. Reads message
/// headers only.
pub fn request_executes(request: &[u8]) -> bool {
    Messages::new(request).any(|m| {
        matches!(
            m.tag(),
            protocol::client_tag::QUERY
                | protocol::client_tag::EXECUTE
                | protocol::client_tag::FUNCTION_CALL
        )
    })
}

/// Whether messages may run a statement. Parse, Describe and Close (a
/// client preparing a statement) run nothing, nor do Sync and Flush; a Bind
/// may be executed later, so it counts.
pub fn runs_something(messages: &[u8]) -> bool {
    use protocol::client_tag::{CLOSE, DESCRIBE, FLUSH, PARSE, SYNC};
    Messages::new(messages).any(|m| !matches!(m.tag(), PARSE | DESCRIBE | CLOSE | SYNC | FLUSH))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn only_requests_that_run_something_execute() {
        let prepare = [
            message(b'P', b"\0SELECT 1\0\0\0"),
            message(b'D', b"S\0"),
            message(b'S', b""),
        ]
        .concat();
        assert!(!request_executes(&prepare));
        assert!(!runs_something(&prepare));
        let execute = [
            message(b'B', b"\0\0\0\0\0\0\0\0"),
            message(b'E', b"\0\0\0\0\0"),
            message(b'S', b""),
        ]
        .concat();
        assert!(request_executes(&execute));
        assert!(runs_something(&execute));
        assert!(request_executes(&message(b'Q', b"SELECT 1\0")));
        // A truncated header or body is not read past.
        assert!(!request_executes(&prepare[..3]));
        assert!(!request_executes(&[b'P', 0, 0, 0, 200, b'x']));
    }

    #[tokio::test]
    async fn scanning_finds_request_ends_and_terminate() {
        let (ours, _theirs) = tokio::io::duplex(64);
        let mut conn = ClientConn::new(ours, 1 << 20);
        conn.buf
            .extend_from_slice(&message(b'P', b"s1\0SELECT 1\0\0\0"));
        conn.buf.extend_from_slice(&message(b'S', b""));
        conn.buf.extend_from_slice(&message(b'B', b"\0\0\0\0")[..4]);
        conn.scan().unwrap();
        assert!(conn.has_named);
        assert_eq!(conn.request_end, conn.scanned);
        assert_eq!(conn.scanned, conn.buf.len() - 4, "the partial Bind waits");
        let first = conn.messages().next().unwrap().bytes.len();
        conn.consume(first);
        assert!(conn.has_named, "the Sync is still pending");
        let rest = conn.scanned;
        conn.consume(rest);
        assert!(!conn.has_named);
        conn.buf.clear();
        conn.buf.extend_from_slice(&message(b'X', b""));
        conn.buf.extend_from_slice(&message(b'Q', b"SELECT 1\0"));
        conn.scan().unwrap();
        assert!(conn.terminating);
        assert!(conn.buf.is_empty(), "nothing after Terminate is kept");
    }
}
