//! The exchange with a checked-out server (pgbouncer's `sbuf.c` and the
//! release rule of `server.c`): send the pending request with one write,
//! then relay the server's answer to the client without decoding bodies;
//! only message headers are read, plus the few messages the gateway must
//! see (`ReadyForQuery`, `ParameterStatus`, the completions of messages it
//! injected, COPY starts). A large row or COPY chunk is streamed through as
//! it arrives.
//!
//! With load balancing the exchange also: keeps a request sent to a
//! replica for a resend until the first byte of its answer; appends the
//! WAL position query behind a request that ends a writing transaction, and
//! takes its answer out of the stream; or holds back the client's final
//! `ReadyForQuery` while the position is read on a separate round trip.

use std::sync::atomic::Ordering::Relaxed;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ClientError, ClientStream, Session};
use crate::backend::params::is_client_settable;
use crate::backend::{must_observe, set_param, BackendError, Observed, Sent, ServerConn};
use crate::balance::session::{LsnProbe, WritePhase, WAL_POSITION_SQL};
use crate::balance::sticky::{StickyStore, UNKNOWN_POSITION};
use crate::clock;
use crate::config::PoolMode;
use crate::protocol::{self, client_tag, server_tag, sqlstate, TxStatus};
use crate::recycle::Recycled;

/// What one exchange ended with.
#[derive(Debug)]
pub(super) enum Step {
    /// The server is idle and may go back to the pool.
    Release,
    /// The client left (Terminate or end of stream).
    ClientGone,
    /// A replica failed before any of its answer reached the client: send
    /// the request elsewhere.
    Reroute(String),
}

impl<S: ClientStream> Session<S> {
    /// Relays between client and server until the server can be released or
    /// the client leaves.
    pub(super) async fn exchange(&mut self, srv: &mut ServerConn) -> Result<Step, ClientError> {
        let transaction_mode = self.mode == PoolMode::Transaction;
        // On a replica, requests that arrive while one is running wait for
        // it to finish and are routed on their own (they may be writes).
        let on_replica = transaction_mode
            && self
                .balancing
                .as_ref()
                .is_some_and(|lb| lb.on_replica.is_some());
        loop {
            // (The rest of an unfinished extended-protocol batch, e.g. the
            // Sync after a Flush, always follows its first part.)
            let may_send =
                !on_replica || srv.outstanding.batch_open() || srv.outstanding.answered();
            if self.conn.scanned > 0 && may_send {
                let probe = transaction_mode && self.prepare_balanced_send(srv, on_replica);
                if let Err(error) = self.send_to_server(srv, probe).await {
                    return self.replica_failed(error);
                }
            }
            if self.conn.terminating {
                return Ok(Step::ClientGone);
            }
            if srv.rbuf.capacity() - srv.rbuf.len() < 4096 {
                srv.rbuf.reserve(16 * 1024);
            }
            tokio::select! {
                biased;
                read = srv.stream.read_buf(&mut srv.rbuf) => {
                    let lost = match read {
                        Ok(0) => Some(BackendError::Closed { addr: srv.target.addr() }),
                        Err(source) => Some(BackendError::Io { addr: srv.target.addr(), source }),
                        Ok(_) => None,
                    };
                    if let Some(error) = lost {
                        return self.replica_failed(ClientError::ServerLost(error));
                    }
                    if let Some(lb) = self.balancing.as_mut().filter(|lb| lb.retry.awaiting_first_answer()) {
                        match first_answer(&srv.rbuf) {
                            FirstAnswer::Incomplete => continue,
                            FirstAnswer::ServerGone(message) => return Ok(Step::Reroute(message)),
                            FirstAnswer::Answer => lb.retry.answered(),
                        }
                    }
                    self.relay(srv).await?;
                    while let Some(pipelined) = self.balancing.as_ref().and_then(|lb| lb.write_to_record()) {
                        Recycled::new(self.record_write(srv)).await?;
                        if !pipelined || srv.rbuf.is_empty() {
                            break;
                        }
                        // More answers followed the gateway's position query.
                        self.relay(srv).await?;
                    }
                    if transaction_mode && srv.clean() && (self.conn.scanned == 0 || on_replica) {
                        return Ok(Step::Release);
                    }
                }
                read = self.conn.read() => {
                    if read? == 0 {
                        return Ok(Step::ClientGone);
                    }
                    self.conn.scan()?;
                }
            }
        }
    }

    /// Load-balancing bookkeeping before pending messages go out: note
    /// whether they may write, keep a copy for a resend (on a replica), and
    /// say whether the position query should ride behind them.
    fn prepare_balanced_send(&mut self, srv: &ServerConn, on_replica: bool) -> bool {
        let Some(lb) = self.balancing.as_deref_mut() else {
            return false;
        };
        let classifier = &self.shared.router.classifier;
        lb.note_writes(classifier, &self.statements, self.conn.pending());
        lb.retry.keep(
            on_replica,
            self.conn.pending(),
            self.conn.request_end,
            self.conn.has_named,
        );
        !self.conn.terminating
            && self.conn.request_complete()
            && lb.probe_fits(classifier, &self.statements, self.conn.pending(), srv)
    }

    /// A lost replica connection becomes a reroute when the request can
    /// still be sent elsewhere; otherwise the error stands.
    fn replica_failed(&self, error: ClientError) -> Result<Step, ClientError> {
        if self
            .balancing
            .as_ref()
            .is_some_and(|lb| lb.retry.awaiting_first_answer())
        {
            Ok(Step::Reroute(error.to_string()))
        } else {
            Err(error)
        }
    }

    /// Sends every complete pending client message to `srv`, renaming
    /// prepared statements when needed, and notes what the server now owes.
    /// With `probe`, the gateway's position query follows in the same write.
    async fn send_to_server(
        &mut self,
        srv: &mut ServerConn,
        probe: bool,
    ) -> Result<(), ClientError> {
        let len = self.conn.scanned;
        self.note_request_sent();
        let stats = &self.pool.stats;
        stats.bytes_received.fetch_add(len as u64, Relaxed);
        let request = &self.conn.buf[..len];
        if self.rename_statements && self.conn.has_named {
            let limit = self.max_prepared;
            let (shared, balanced) = (&self.shared, self.balancing.is_some());
            let sent = self
                .statements
                .rewrite(request, srv, limit, |query, types| {
                    super::new_statement(shared, balanced, query, types)
                })?;
            count_sent(stats, &sent);
            if probe {
                self.append_lsn_probe(srv);
            }
            srv.flush_wbuf().await.map_err(ClientError::ServerLost)?;
        } else {
            let sent = srv.note_sent_request(request, self.rename_statements);
            count_sent(stats, &sent);
            let written = if probe {
                srv.wbuf.extend_from_slice(request);
                self.append_lsn_probe(srv);
                srv.stream.write_all(&srv.wbuf).await
            } else {
                srv.stream.write_all(request).await
            };
            srv.wbuf.clear();
            if let Err(source) = written {
                srv.broken = true;
                return Err(ClientError::ServerLost(BackendError::Io {
                    addr: srv.target.addr(),
                    source,
                }));
            }
        }
        self.consume(len);
        Ok(())
    }

    /// Puts the gateway's position query behind the request in `srv`'s
    /// write buffer; `relay` takes its answer out of the stream.
    fn append_lsn_probe(&mut self, srv: &mut ServerConn) {
        let lb = self.balancing.as_mut().expect("probes only with balancing");
        let batch = srv.outstanding.next_batch();
        protocol::query(&mut srv.wbuf, WAL_POSITION_SQL);
        srv.outstanding.sent(client_tag::QUERY);
        lb.probe_sent(batch);
    }

    /// Forwards every complete (or streamable) server message in `srv.rbuf`
    /// to the client, acting on the few that matter and dropping the ones
    /// that are not the client's (answers to what the gateway injected).
    async fn relay(&mut self, srv: &mut ServerConn) -> Result<(), ClientError> {
        let buf_len = srv.rbuf.len();
        let mut pos = 0;
        let mut kept = Kept::default();
        if srv.streaming > 0 {
            pos = srv.streaming.min(buf_len);
            srv.streaming -= pos;
        }
        // A copy, written back below: `hold_ready` needs the session's
        // balancing state while this is looked at (and never changes a probe).
        let mut probe: Option<LsnProbe> =
            self.balancing.as_mut().and_then(|lb| lb.probe().copied());
        while buf_len - pos >= 5 {
            let header = &srv.rbuf[pos..pos + 5];
            let tag = header[0];
            let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            if len < 4 {
                return Err(server_violation(
                    srv,
                    format!("invalid message length {len}"),
                ));
            }
            let total = len as usize + 1;
            let complete = buf_len - pos >= total;
            if let Some(probe) = probe.as_mut().filter(|p| p.client_status.is_some()) {
                // The answer to the gateway's position query (small, so
                // taken whole): none of it reaches the client, except an
                // asynchronous notification that happens to arrive now.
                if !complete {
                    break;
                }
                take_probe_answer(probe, srv, tag, pos, total);
                if tag != server_tag::NOTIFICATION_RESPONSE {
                    kept.drop_message(&mut self.scratch, &srv.rbuf, pos, total);
                }
                pos += total;
                if probe.answered {
                    // The client's ReadyForQuery goes out before anything
                    // after this, once the position is recorded.
                    break;
                }
                continue;
            }
            if !must_observe(tag) {
                if !complete {
                    // Stream the rest of a large row or copy chunk as it comes.
                    srv.streaming = total - (buf_len - pos);
                    pos = buf_len;
                    break;
                }
                pos += total;
                continue;
            }
            if !complete {
                break;
            }
            if tag == server_tag::READY_FOR_QUERY && total != 6 {
                return Err(server_violation(
                    srv,
                    format!("ReadyForQuery of length {len}"),
                ));
            }
            let not_for_client = match srv.observe(tag, pos + 5..pos + total) {
                Observed::Ready => {
                    self.note_ready(srv.status, srv.outstanding.answered());
                    match probe.as_mut() {
                        // The client's final ReadyForQuery, before the answer
                        // to the gateway's position query.
                        Some(probe) if probe.batch == srv.outstanding.batches_done() => {
                            probe.client_status = Some(srv.status);
                            true
                        }
                        _ => self.hold_ready(srv),
                    }
                }
                Observed::Injected => true,
                Observed::Parameter { name, value } => {
                    if is_client_settable(&name) {
                        set_param(&mut self.params, &name, &value);
                        // Keep the shared Arc so the next checkout of
                        // this server needs no SET.
                        srv.params = self.params.clone();
                    }
                    false
                }
                Observed::Other => false,
            };
            if not_for_client {
                kept.drop_message(&mut self.scratch, &srv.rbuf, pos, total);
            }
            pos += total;
        }
        if let (Some(probe), Some(lb)) = (probe, self.balancing.as_mut()) {
            if let Some(current) = lb.probe() {
                *current = probe;
            }
        }
        let result = if kept.dropped {
            self.scratch.extend_from_slice(&srv.rbuf[kept.start..pos]);
            let written = self.conn.write_all(&self.scratch).await;
            self.scratch.clear();
            written
        } else if pos > 0 {
            self.conn.write_all(&srv.rbuf[..pos]).await
        } else {
            Ok(())
        };
        self.pool.stats.bytes_sent.fetch_add(pos as u64, Relaxed);
        srv.rbuf.advance(pos);
        if srv.rbuf.is_empty() && srv.rbuf.capacity() > 1 << 20 {
            // A huge result passed through: do not keep its buffer.
            srv.rbuf = BytesMut::with_capacity(16 * 1024);
        }
        result.map_err(ClientError::Io)
    }

    /// A request goes to the server now: the clock of its batch (and of
    /// its transaction, if it starts one) starts.
    fn note_request_sent(&mut self) {
        let now = clock::now_us();
        self.client.last_request_us.store(now, Relaxed);
        if self.timing.batch_started_us == 0 {
            self.timing.batch_started_us = now;
        }
        if self.timing.xact_started_us == 0 {
            self.timing.xact_started_us = now;
        }
    }

    /// A ReadyForQuery answered the client's oldest batch (`status`; with
    /// `all_answered` when nothing more is owed): the pool's query and
    /// transaction counters and times.
    fn note_ready(&mut self, status: TxStatus, all_answered: bool) {
        let now = clock::now_us();
        self.client.last_ready_us.store(now, Relaxed);
        self.client
            .set_in_transaction_block(status != TxStatus::Idle);
        let stats = &self.pool.stats;
        let timing = &mut self.timing;
        if timing.batch_started_us != 0 {
            stats
                .query_time_us
                .fetch_add(now.saturating_sub(timing.batch_started_us), Relaxed);
        }
        // A pipelined batch behind it has been running since now.
        timing.batch_started_us = if all_answered { 0 } else { now };
        if status == TxStatus::Idle {
            stats.xact_count.fetch_add(1, Relaxed);
            if timing.xact_started_us != 0 {
                stats
                    .xact_time_us
                    .fetch_add(now.saturating_sub(timing.xact_started_us), Relaxed);
            }
            timing.xact_started_us = if all_answered { 0 } else { now };
        }
    }

    /// At a ReadyForQuery: should the client wait for it until a write's
    /// position is recorded (see `Balancing::hold_ready`)?
    fn hold_ready(&mut self, srv: &ServerConn) -> bool {
        match self.balancing.as_mut() {
            Some(lb) if self.mode == PoolMode::Transaction => lb.hold_ready(srv),
            _ => false,
        }
    }

    /// A transaction that wrote ended on the primary and `relay` held back
    /// its ReadyForQuery: record the primary's WAL insert position for the
    /// sticky key, then let the client go on. The position comes from the
    /// query appended to the request when there was one; otherwise it is
    /// read now, on the same connection. If it cannot be read, record one
    /// no replica reaches, so reads stay on the primary for the TTL rather
    /// than risk a stale read.
    async fn record_write(&mut self, srv: &mut ServerConn) -> Result<(), ClientError> {
        let lb = self.balancing.as_mut().expect("held only with balancing");
        let (status, lsn) = match lb.writes {
            WritePhase::Probing { probe, .. } => (
                probe.client_status.unwrap_or(TxStatus::Idle),
                probe.lsn.unwrap_or(UNKNOWN_POSITION),
            ),
            _ => {
                let lsn = if srv.streaming == 0 && srv.rbuf.is_empty() {
                    lb.db.lsn_reads.separate.fetch_add(1, Relaxed);
                    match srv.query_value(WAL_POSITION_SQL).await {
                        Ok(Some(text)) => text.parse().unwrap_or(UNKNOWN_POSITION),
                        Ok(None) => UNKNOWN_POSITION,
                        Err(error) => {
                            tracing::warn!(%error, "could not read the WAL position after a write");
                            srv.broken = true;
                            UNKNOWN_POSITION
                        }
                    }
                } else {
                    UNKNOWN_POSITION
                };
                (TxStatus::Idle, lsn)
            }
        };
        let lb = self.balancing.as_mut().expect("held only with balancing");
        if let (Some(key), Some(store)) = (lb.finish_write(status, lsn), &self.shared.router.store)
        {
            store.record_write(&key, lsn).await;
        }
        let ready = [server_tag::READY_FOR_QUERY, 0, 0, 0, 5, status.byte()];
        self.conn.write_all(&ready).await?;
        Ok(())
    }
}

/// Adds what a request held to the pool's counters.
fn count_sent(stats: &crate::pool::PoolStats, sent: &Sent) {
    stats.query_count.fetch_add(sent.batches, Relaxed);
    if sent.server_parses | sent.binds != 0 {
        stats
            .client_parse_count
            .fetch_add(sent.client_parses, Relaxed);
        stats
            .server_parse_count
            .fetch_add(sent.server_parses, Relaxed);
        stats.bind_count.fetch_add(sent.binds, Relaxed);
    }
}

/// Reads one message of the position query's answer (`pos..pos + total`
/// of `srv.rbuf`) into `probe`.
fn take_probe_answer(
    probe: &mut LsnProbe,
    srv: &mut ServerConn,
    tag: u8,
    pos: usize,
    total: usize,
) {
    let body = &srv.rbuf[pos + 5..pos + total];
    match tag {
        server_tag::DATA_ROW => {
            probe.lsn = protocol::data_row_first_column(body)
                .and_then(|text| std::str::from_utf8(text).ok())
                .and_then(|text| text.parse().ok());
        }
        server_tag::ERROR_RESPONSE => probe.lsn = None,
        server_tag::READY_FOR_QUERY => {
            let status = TxStatus::from_body(body);
            srv.ready_for_query(status);
            probe.answered = true;
        }
        _ => {}
    }
}

/// The server sent something that is not a message: the connection is unusable.
fn server_violation(srv: &mut ServerConn, message: String) -> ClientError {
    srv.broken = true;
    ClientError::ServerLost(BackendError::Protocol {
        addr: srv.target.addr(),
        message,
    })
}

/// Which relayed bytes reach the client when some messages are dropped:
/// everything before a dropped message is copied to the scratch buffer,
/// and copying resumes after it.
#[derive(Default)]
struct Kept {
    /// The first byte not yet copied to `scratch`.
    start: usize,
    dropped: bool,
}

impl Kept {
    fn drop_message(&mut self, scratch: &mut BytesMut, buf: &[u8], pos: usize, total: usize) {
        scratch.extend_from_slice(&buf[self.start..pos]);
        self.start = pos + total;
        self.dropped = true;
    }
}

/// How a replica's answer to a resendable request begins.
enum FirstAnswer {
    /// Not one whole message yet.
    Incomplete,
    /// The server is shutting down or cannot serve (SQLSTATE class 57P or
    /// 08): nothing ran, so the request may go elsewhere.
    ServerGone(String),
    /// A real answer: relay it.
    Answer,
}

fn first_answer(buf: &[u8]) -> FirstAnswer {
    if buf.len() < 5 {
        return FirstAnswer::Incomplete;
    }
    // (A length below 4 is the relay's to report: read it as an answer.)
    let total = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]).max(4) as usize + 1;
    if buf.len() < total {
        return FirstAnswer::Incomplete;
    }
    if buf[0] == server_tag::ERROR_RESPONSE {
        let fields = protocol::decode_error_fields(&buf[5..total]);
        if sqlstate::means_server_gone(&fields.code) {
            return FirstAnswer::ServerGone(fields.message);
        }
    }
    FirstAnswer::Answer
}
