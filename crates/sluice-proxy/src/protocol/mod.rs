//! The PostgreSQL wire protocol (v3) as pure functions over byte slices.
//!
//! Nothing here touches a socket (mini-redis's `frame.rs` rule): callers hand
//! in the bytes they have, and "not enough bytes yet" is an ordinary `Ok(None)`,
//! never an error. Errors mean the peer sent something that can never become a
//! valid message (a bad length, a message over the size limit, a missing
//! terminator), and the connection should be closed. This keeps the decoder
//! fuzzable (`fuzz/`) and lets the hot path look only at 5-byte headers: bodies
//! are decoded only for the few message kinds the gateway must understand.
//!
//! # Layout
//! - this file: framing ([`frame_len`], the [`Messages`] walk over whole
//!   messages), message tags ([`client_tag`], [`server_tag`]), the
//!   transaction status of `ReadyForQuery` ([`TxStatus`]), and the small
//!   body readers shared by both directions;
//! - [`decode`]: the startup packet and frontend messages, decoded only as
//!   far as the gateway needs;
//! - [`encode`]: encoders, appending to a `BytesMut` so that a whole
//!   exchange is written with one syscall;
//! - [`sqlstate`]: the SQLSTATE codes the gateway itself answers with.

pub mod decode;
pub mod encode;
pub mod sqlstate;

pub use decode::*;
pub use encode::*;

/// Protocol version 3.0, the only one spoken.
pub const PROTOCOL_VERSION_3: i32 = 196_608;
/// Special "versions" in the startup packet.
pub const SSL_REQUEST_CODE: i32 = 80_877_103;
pub const GSSENC_REQUEST_CODE: i32 = 80_877_104;
pub const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// PostgreSQL's own limit for a startup packet.
pub const MAX_STARTUP_PACKET: usize = 10_000;

/// A message that can never be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid message length {len} for message type {tag:?}")]
    BadLength { tag: char, len: i64 },
    #[error("message type {tag:?} of {len} bytes exceeds max_packet_size ({max} bytes)")]
    TooLarge { tag: char, len: usize, max: usize },
    #[error("malformed {what}")]
    Malformed { what: &'static str },
    #[error("unsupported protocol version {major}.{minor}")]
    UnsupportedVersion { major: u16, minor: u16 },
}

pub(crate) fn malformed(what: &'static str) -> ProtocolError {
    ProtocolError::Malformed { what }
}

/// The length of the whole message (tag included) at the start of `buf`,
/// `Ok(None)` if its header or body is not all there yet.
#[inline]
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, ProtocolError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(ProtocolError::BadLength {
            tag: buf[0] as char,
            len: len as i64,
        });
    }
    let total = len as usize + 1;
    if total > max {
        return Err(ProtocolError::TooLarge {
            tag: buf[0] as char,
            len: total,
            max,
        });
    }
    Ok((buf.len() >= total).then_some(total))
}

/// Frontend (client to server) message tags.
pub mod client_tag {
    pub const QUERY: u8 = b'Q';
    pub const PARSE: u8 = b'P';
    pub const BIND: u8 = b'B';
    pub const DESCRIBE: u8 = b'D';
    pub const CLOSE: u8 = b'C';
    pub const EXECUTE: u8 = b'E';
    pub const SYNC: u8 = b'S';
    pub const FLUSH: u8 = b'H';
    pub const TERMINATE: u8 = b'X';
    pub const FUNCTION_CALL: u8 = b'F';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const COPY_FAIL: u8 = b'f';
    /// PasswordMessage, SASLInitialResponse and SASLResponse.
    pub const PASSWORD: u8 = b'p';
}

/// Backend (server to client) message tags.
pub mod server_tag {
    pub const AUTHENTICATION: u8 = b'R';
    pub const PARAMETER_STATUS: u8 = b'S';
    pub const BACKEND_KEY_DATA: u8 = b'K';
    pub const READY_FOR_QUERY: u8 = b'Z';
    pub const ERROR_RESPONSE: u8 = b'E';
    pub const NOTICE_RESPONSE: u8 = b'N';
    pub const NOTIFICATION_RESPONSE: u8 = b'A';
    pub const PARSE_COMPLETE: u8 = b'1';
    pub const BIND_COMPLETE: u8 = b'2';
    pub const CLOSE_COMPLETE: u8 = b'3';
    pub const ROW_DESCRIPTION: u8 = b'T';
    pub const DATA_ROW: u8 = b'D';
    pub const COMMAND_COMPLETE: u8 = b'C';
    pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
    pub const NO_DATA: u8 = b'n';
    pub const PARAMETER_DESCRIPTION: u8 = b't';
    pub const PORTAL_SUSPENDED: u8 = b's';
    pub const COPY_IN_RESPONSE: u8 = b'G';
    pub const COPY_OUT_RESPONSE: u8 = b'H';
    pub const COPY_BOTH_RESPONSE: u8 = b'W';
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
}

/// One whole message of a buffer walked by [`Messages`]: its tag, header and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawMessage<'a> {
    /// Where it starts in the walked buffer.
    pub offset: usize,
    /// The whole message, tag and length included.
    pub bytes: &'a [u8],
}

impl<'a> RawMessage<'a> {
    #[inline]
    pub fn tag(&self) -> u8 {
        self.bytes[0]
    }

    #[inline]
    pub fn body(&self) -> &'a [u8] {
        &self.bytes[5..]
    }

    /// Where the next message starts in the walked buffer.
    #[inline]
    pub fn end(&self) -> usize {
        self.offset + self.bytes.len()
    }
}

/// The whole messages at the start of a buffer whose framing was checked
/// (the client messages the gateway scanned, or messages it wrote itself);
/// stops at the first message that is not all there.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl<'a> Messages<'a> {
    pub fn new(buf: &'a [u8]) -> Messages<'a> {
        Messages { buf, offset: 0 }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = RawMessage<'a>;

    #[inline]
    fn next(&mut self) -> Option<RawMessage<'a>> {
        let rest = &self.buf[self.offset..];
        let header = rest.get(..5)?;
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        let total = usize::try_from(len).ok()?.checked_add(1)?;
        let bytes = rest.get(..total).filter(|_| total >= 5)?;
        let message = RawMessage {
            offset: self.offset,
            bytes,
        };
        self.offset += total;
        Some(message)
    }
}

/// The transaction status a `ReadyForQuery` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxStatus {
    /// `I`: not in a transaction block.
    #[default]
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block (queries are refused until it ends).
    Failed,
}

impl TxStatus {
    /// Reads a ReadyForQuery's status byte; an unknown byte counts as idle,
    /// as it did before the type existed (servers send only I, T and E).
    #[inline]
    pub fn from_byte(byte: u8) -> TxStatus {
        match byte {
            b'T' => TxStatus::InTransaction,
            b'E' => TxStatus::Failed,
            _ => TxStatus::Idle,
        }
    }

    /// The status from a ReadyForQuery body (empty: idle).
    #[inline]
    pub fn from_body(body: &[u8]) -> TxStatus {
        body.first()
            .map_or(TxStatus::Idle, |&b| TxStatus::from_byte(b))
    }

    #[inline]
    pub fn byte(self) -> u8 {
        match self {
            TxStatus::Idle => b'I',
            TxStatus::InTransaction => b'T',
            TxStatus::Failed => b'E',
        }
    }
}

/// The name and value of a ParameterStatus body (`None` if malformed).
pub fn decode_parameter_status(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (name, rest) = cstr(body)?;
    let (value, _) = cstr(rest)?;
    Some((name, value))
}

/// Splits a NUL-terminated string off the front of `buf`.
#[inline]
pub fn cstr(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    // Most statement and portal names are empty: no search for those.
    if buf.first() == Some(&0) {
        return Some((&[], &buf[1..]));
    }
    // memchr scans a word at a time: every Query and Parse passes here.
    let end = memchr::memchr(0, buf)?;
    Some((&buf[..end], &buf[end + 1..]))
}

/// The first column of a DataRow body (`None` for NULL or a malformed row).
pub fn data_row_first_column(body: &[u8]) -> Option<&[u8]> {
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    body.get(6..6 + usize::try_from(len).ok()?)
}

/// Fields of an ErrorResponse or NoticeResponse body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
}

/// Reads severity, SQLSTATE and message from an ErrorResponse body.
pub fn decode_error_fields(body: &[u8]) -> ErrorFields {
    let mut fields = ErrorFields::default();
    let mut rest = body;
    while let Some((&kind, after)) = rest.split_first() {
        if kind == 0 {
            break;
        }
        let Some((value, after)) = cstr(after) else {
            break;
        };
        let value = String::from_utf8_lossy(value).into_owned();
        match kind {
            b'S' => fields.severity = value,
            b'C' => fields.code = value,
            b'M' => fields.message = value,
            _ => {}
        }
        rest = after;
    }
    fields
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    #[test]
    fn nul_terminated_strings() {
        assert_eq!(cstr(b"\0rest"), Some((&b""[..], &b"rest"[..])));
        assert_eq!(cstr(b"ab\0c\0"), Some((&b"ab"[..], &b"c\0"[..])));
        assert_eq!(cstr(b"\0"), Some((&b""[..], &b""[..])));
        assert_eq!(cstr(b"ab"), None);
        assert_eq!(cstr(b""), None);
    }

    #[test]
    fn data_row_first_column_reads_text_not_null_or_truncated() {
        // Two columns: "0/16B3748" and NULL.
        let mut body = vec![0, 2, 0, 0, 0, 9];
        body.extend_from_slice(b"0/16B3748");
        body.extend_from_slice(&(-1i32).to_be_bytes());
        assert_eq!(data_row_first_column(&body), Some(&b"0/16B3748"[..]));
        assert_eq!(data_row_first_column(&[0, 1, 255, 255, 255, 255]), None);
        assert_eq!(data_row_first_column(&[0, 1, 0, 0, 0, 9, b'0']), None);
        assert_eq!(data_row_first_column(&[0, 1]), None);
    }

    #[test]
    fn oversized_and_negative_lengths_are_errors() {
        let mut m = BytesMut::new();
        query(&mut m, &"x".repeat(2000));
        assert!(matches!(
            frame_len(&m, 1024),
            Err(ProtocolError::TooLarge { tag: 'Q', .. })
        ));
        assert!(matches!(
            frame_len(&[b'Q', 0xff, 0xff, 0xff, 0xff], 1024),
            Err(ProtocolError::BadLength { .. })
        ));
        assert!(matches!(
            frame_len(&[b'Q', 0, 0, 0, 3], 1024),
            Err(ProtocolError::BadLength { .. })
        ));
    }

    #[test]
    fn messages_walks_whole_messages_and_stops_at_a_partial_one() {
        let mut buf = BytesMut::new();
        query(&mut buf, "SELECT 1");
        sync(&mut buf);
        let whole = buf.len();
        parse(&mut buf, b"s", b"SELECT 2", &[0, 0]);
        let walked: Vec<(u8, usize, usize)> = Messages::new(&buf[..buf.len() - 1])
            .map(|m| (m.tag(), m.offset, m.end()))
            .collect();
        assert_eq!(walked, vec![(b'Q', 0, 14), (b'S', 14, whole)]);
        let all: Vec<u8> = Messages::new(&buf).map(|m| m.tag()).collect();
        assert_eq!(all, b"QSP");
        assert_eq!(Messages::new(&buf).nth(2).unwrap().body()[0], b's');
        // A length below the header's own size is never walked past.
        assert_eq!(Messages::new(&[b'Q', 0, 0, 0, 3, 0]).count(), 0);
        assert_eq!(Messages::new(&[]).count(), 0);
    }

    #[test]
    fn transaction_status_round_trips() {
        for status in [TxStatus::Idle, TxStatus::InTransaction, TxStatus::Failed] {
            assert_eq!(TxStatus::from_byte(status.byte()), status);
        }
        assert_eq!(TxStatus::from_body(&[]), TxStatus::Idle);
        assert_eq!(TxStatus::from_body(b"T"), TxStatus::InTransaction);
    }

    #[test]
    fn parameter_status_bodies() {
        let mut buf = BytesMut::new();
        parameter_status(&mut buf, "TimeZone", "UTC");
        assert_eq!(
            decode_parameter_status(&buf[5..]),
            Some((&b"TimeZone"[..], &b"UTC"[..]))
        );
        assert_eq!(decode_parameter_status(b"TimeZone\0UTC"), None);
    }

    #[test]
    fn error_response_round_trips() {
        let mut buf = BytesMut::new();
        error_response(&mut buf, "FATAL", "53300", "too many");
        let fields = decode_error_fields(&buf[5..]);
        assert_eq!(fields.severity, "FATAL");
        assert_eq!(fields.code, "53300");
        assert_eq!(fields.message, "too many");
        assert_eq!(frame_len(&buf, 1 << 20), Ok(Some(buf.len())));
    }
}
