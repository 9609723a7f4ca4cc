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
//! Encoders append to a `BytesMut` so a whole exchange is written with one
//! syscall.

use bytes::{BufMut, BytesMut};

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

fn malformed(what: &'static str) -> ProtocolError {
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

/// The first packet a client sends (it has no type byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    SslRequest,
    GssEncRequest,
    Cancel {
        pid: i32,
        secret: i32,
    },
    /// A v3 startup message with its parameters (`user`, `database`, ...).
    Params(Vec<(String, String)>),
}

/// Decodes a startup packet; returns it and the bytes it used.
pub fn decode_startup(buf: &[u8]) -> Result<Option<(Startup, usize)>, ProtocolError> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if !(8..=MAX_STARTUP_PACKET as i32).contains(&len) {
        return Err(ProtocolError::BadLength {
            tag: '\0',
            len: len as i64,
        });
    }
    let len = len as usize;
    if buf.len() < len {
        return Ok(None);
    }
    let code = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let body = &buf[8..len];
    let startup = match code {
        SSL_REQUEST_CODE if len == 8 => Startup::SslRequest,
        GSSENC_REQUEST_CODE if len == 8 => Startup::GssEncRequest,
        CANCEL_REQUEST_CODE if len == 16 => Startup::Cancel {
            pid: i32::from_be_bytes([body[0], body[1], body[2], body[3]]),
            secret: i32::from_be_bytes([body[4], body[5], body[6], body[7]]),
        },
        PROTOCOL_VERSION_3 => {
            let mut params = Vec::new();
            let mut rest = body;
            loop {
                let (name, after) = cstr(rest).ok_or(malformed("startup packet"))?;
                if name.is_empty() {
                    break;
                }
                let (value, after) = cstr(after).ok_or(malformed("startup packet"))?;
                let text = |b: &[u8]| {
                    String::from_utf8(b.to_vec()).map_err(|_| malformed("startup parameter"))
                };
                params.push((text(name)?, text(value)?));
                rest = after;
            }
            Startup::Params(params)
        }
        other => {
            return Err(ProtocolError::UnsupportedVersion {
                major: (other >> 16) as u16,
                minor: other as u16,
            })
        }
    };
    Ok(Some((startup, len)))
}

/// The first column of a DataRow body (`None` for NULL or a malformed row).
pub fn data_row_first_column(body: &[u8]) -> Option<&[u8]> {
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    body.get(6..6 + usize::try_from(len).ok()?)
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

/// A frontend message, decoded only as far as the gateway needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frontend<'a> {
    /// Simple query: the SQL text.
    Query(&'a [u8]),
    /// Extended protocol: prepare `query` as statement `name` ("" = unnamed).
    Parse {
        name: &'a [u8],
        query: &'a [u8],
        /// Everything after the query: parameter type count and OIDs.
        param_types: &'a [u8],
    },
    Bind {
        portal: &'a [u8],
        statement: &'a [u8],
        /// Formats, values and result formats, passed through untouched.
        rest: &'a [u8],
    },
    /// `kind` is `b'S'` (statement) or `b'P'` (portal).
    Describe {
        kind: u8,
        name: &'a [u8],
    },
    Close {
        kind: u8,
        name: &'a [u8],
    },
    Execute {
        portal: &'a [u8],
        max_rows: i32,
    },
    Sync,
    Flush,
    Terminate,
    CopyData(&'a [u8]),
    CopyDone,
    CopyFail(&'a [u8]),
    /// Password, SASL initial response or SASL response (context decides).
    Password(&'a [u8]),
    FunctionCall(&'a [u8]),
}

/// Decodes one complete frontend message (tag, length and body).
pub fn decode_frontend(msg: &[u8]) -> Result<Frontend<'_>, ProtocolError> {
    if msg.len() < 5 {
        return Err(malformed("message header"));
    }
    let body = &msg[5..];
    let tag = msg[0];
    let one_name =
        |what| -> Result<(&[u8], &[u8]), ProtocolError> { cstr(body).ok_or(malformed(what)) };
    Ok(match tag {
        b'Q' => {
            let (sql, rest) = one_name("Query")?;
            if !rest.is_empty() {
                return Err(malformed("Query"));
            }
            Frontend::Query(sql)
        }
        b'P' => {
            let (name, rest) = one_name("Parse")?;
            let (query, param_types) = cstr(rest).ok_or(malformed("Parse"))?;
            if param_types.len() < 2 {
                return Err(malformed("Parse"));
            }
            let count = i16::from_be_bytes([param_types[0], param_types[1]]);
            if count < 0 || param_types.len() != 2 + 4 * count as usize {
                return Err(malformed("Parse"));
            }
            Frontend::Parse {
                name,
                query,
                param_types,
            }
        }
        b'B' => {
            let (portal, rest) = one_name("Bind")?;
            let (statement, rest) = cstr(rest).ok_or(malformed("Bind"))?;
            Frontend::Bind {
                portal,
                statement,
                rest,
            }
        }
        b'D' | b'C' => {
            let what = if tag == b'D' { "Describe" } else { "Close" };
            let (&kind, rest) = body.split_first().ok_or(malformed(what))?;
            if kind != b'S' && kind != b'P' {
                return Err(malformed(what));
            }
            let (name, rest) = cstr(rest).ok_or(malformed(what))?;
            if !rest.is_empty() {
                return Err(malformed(what));
            }
            if tag == b'D' {
                Frontend::Describe { kind, name }
            } else {
                Frontend::Close { kind, name }
            }
        }
        b'E' => {
            let (portal, rest) = one_name("Execute")?;
            let max_rows: [u8; 4] = rest.try_into().map_err(|_| malformed("Execute"))?;
            Frontend::Execute {
                portal,
                max_rows: i32::from_be_bytes(max_rows),
            }
        }
        b'S' | b'H' | b'X' | b'c' if !body.is_empty() => {
            return Err(malformed("message with unexpected body"))
        }
        b'S' => Frontend::Sync,
        b'H' => Frontend::Flush,
        b'X' => Frontend::Terminate,
        b'c' => Frontend::CopyDone,
        b'd' => Frontend::CopyData(body),
        b'f' => Frontend::CopyFail(body),
        b'p' => Frontend::Password(body),
        b'F' => Frontend::FunctionCall(body),
        _ => return Err(malformed("message type")),
    })
}

/// Decodes the first frontend message of `buf`: the fuzz target's entry point.
pub fn decode_frontend_message(
    buf: &[u8],
    max: usize,
) -> Result<Option<(Frontend<'_>, usize)>, ProtocolError> {
    match frame_len(buf, max)? {
        None => Ok(None),
        Some(len) => Ok(Some((decode_frontend(&buf[..len])?, len))),
    }
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

// ---- encoders -------------------------------------------------------------

/// Starts a message of type `tag`; returns the position of its length field.
#[inline]
fn begin(buf: &mut BytesMut, tag: u8) -> usize {
    buf.put_u8(tag);
    let at = buf.len();
    buf.put_i32(0);
    at
}

/// Fills in the length of the message begun at `at`.
#[inline]
fn finish(buf: &mut BytesMut, at: usize) {
    let len = (buf.len() - at) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_cstr(buf: &mut BytesMut, s: &[u8]) {
    buf.put_slice(s);
    buf.put_u8(0);
}

/// `Authentication*` with its subtype code and payload.
pub fn authentication(buf: &mut BytesMut, code: i32, payload: &[u8]) {
    let at = begin(buf, b'R');
    buf.put_i32(code);
    buf.put_slice(payload);
    finish(buf, at);
}

pub const AUTH_OK: i32 = 0;
pub const AUTH_CLEARTEXT: i32 = 3;
pub const AUTH_MD5: i32 = 5;
pub const AUTH_SASL: i32 = 10;
pub const AUTH_SASL_CONTINUE: i32 = 11;
pub const AUTH_SASL_FINAL: i32 = 12;

pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    let at = begin(buf, b'S');
    put_cstr(buf, name.as_bytes());
    put_cstr(buf, value.as_bytes());
    finish(buf, at);
}

pub fn backend_key_data(buf: &mut BytesMut, pid: i32, secret: i32) {
    let at = begin(buf, b'K');
    buf.put_i32(pid);
    buf.put_i32(secret);
    finish(buf, at);
}

pub fn ready_for_query(buf: &mut BytesMut, status: u8) {
    let at = begin(buf, b'Z');
    buf.put_u8(status);
    finish(buf, at);
}

/// An ErrorResponse (`severity` ERROR or FATAL) with SQLSTATE `code`.
pub fn error_response(buf: &mut BytesMut, severity: &str, code: &str, message: &str) {
    let at = begin(buf, b'E');
    for (kind, value) in [
        (b'S', severity),
        (b'V', severity),
        (b'C', code),
        (b'M', message),
    ] {
        buf.put_u8(kind);
        put_cstr(buf, value.as_bytes());
    }
    buf.put_u8(0);
    finish(buf, at);
}

/// A v3 startup message to a server.
pub fn startup_message(buf: &mut BytesMut, params: &[(&str, &str)]) {
    let at = buf.len();
    buf.put_i32(0);
    buf.put_i32(PROTOCOL_VERSION_3);
    for (name, value) in params {
        put_cstr(buf, name.as_bytes());
        put_cstr(buf, value.as_bytes());
    }
    buf.put_u8(0);
    finish(buf, at);
}

pub fn cancel_request(buf: &mut BytesMut, pid: i32, secret: i32) {
    buf.put_i32(16);
    buf.put_i32(CANCEL_REQUEST_CODE);
    buf.put_i32(pid);
    buf.put_i32(secret);
}

/// A PasswordMessage / SASLResponse: `p` with a raw payload.
pub fn password_message(buf: &mut BytesMut, payload: &[u8]) {
    let at = begin(buf, b'p');
    buf.put_slice(payload);
    finish(buf, at);
}

pub fn sasl_initial_response(buf: &mut BytesMut, mechanism: &str, data: &[u8]) {
    let at = begin(buf, b'p');
    put_cstr(buf, mechanism.as_bytes());
    buf.put_i32(data.len() as i32);
    buf.put_slice(data);
    finish(buf, at);
}

pub fn query(buf: &mut BytesMut, sql: &str) {
    let at = begin(buf, b'Q');
    put_cstr(buf, sql.as_bytes());
    finish(buf, at);
}

pub fn parse(buf: &mut BytesMut, name: &[u8], query: &[u8], param_types: &[u8]) {
    let at = begin(buf, b'P');
    put_cstr(buf, name);
    put_cstr(buf, query);
    buf.put_slice(param_types);
    finish(buf, at);
}

pub fn bind(buf: &mut BytesMut, portal: &[u8], statement: &[u8], rest: &[u8]) {
    let at = begin(buf, b'B');
    put_cstr(buf, portal);
    put_cstr(buf, statement);
    buf.put_slice(rest);
    finish(buf, at);
}

/// Describe (`tag` b'D') or Close (`tag` b'C') of a statement or portal.
pub fn describe_or_close(buf: &mut BytesMut, tag: u8, kind: u8, name: &[u8]) {
    let at = begin(buf, tag);
    buf.put_u8(kind);
    put_cstr(buf, name);
    finish(buf, at);
}

pub fn sync(buf: &mut BytesMut) {
    buf.put_slice(&[b'S', 0, 0, 0, 4]);
}

pub fn terminate(buf: &mut BytesMut) {
    buf.put_slice(&[b'X', 0, 0, 0, 4]);
}

#[cfg(test)]
mod tests {
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

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn incomplete_is_a_value_not_an_error() {
        let m = msg(b'Q', b"select 1\0");
        for cut in 0..m.len() {
            assert_eq!(decode_frontend_message(&m[..cut], 1 << 20), Ok(None));
        }
        let (decoded, used) = decode_frontend_message(&m, 1 << 20).unwrap().unwrap();
        assert_eq!(decoded, Frontend::Query(b"select 1"));
        assert_eq!(used, m.len());
    }

    #[test]
    fn oversized_and_negative_lengths_are_errors() {
        let m = msg(b'Q', &[b'x'; 2000]);
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
    fn extended_messages_decode_their_names() {
        let parse_body = b"s1\0select $1\0\0\x01\0\0\0\x17";
        assert_eq!(
            decode_frontend(&msg(b'P', parse_body)).unwrap(),
            Frontend::Parse {
                name: b"s1",
                query: b"select $1",
                param_types: b"\0\x01\0\0\0\x17"
            }
        );
        assert!(decode_frontend(&msg(b'P', b"s1\0select $1\0\0\x02\0\0\0\x17")).is_err());
        assert_eq!(
            decode_frontend(&msg(b'B', b"\0s1\0\0\0")).unwrap(),
            Frontend::Bind {
                portal: b"",
                statement: b"s1",
                rest: b"\0\0"
            }
        );
        assert_eq!(
            decode_frontend(&msg(b'D', b"Ss1\0")).unwrap(),
            Frontend::Describe {
                kind: b'S',
                name: b"s1"
            }
        );
        assert!(decode_frontend(&msg(b'C', b"Xs1\0")).is_err());
        assert_eq!(
            decode_frontend(&msg(b'E', b"\0\0\0\0\x05")).unwrap(),
            Frontend::Execute {
                portal: b"",
                max_rows: 5
            }
        );
        assert!(decode_frontend(&msg(b'E', b"\0\0\0")).is_err());
        assert_eq!(decode_frontend(&msg(b'S', b"")).unwrap(), Frontend::Sync);
        assert!(decode_frontend(&msg(b'S', b"x")).is_err());
        assert!(decode_frontend(&msg(b'?', b"")).is_err());
    }

    #[test]
    fn startup_packets() {
        let mut buf = BytesMut::new();
        startup_message(&mut buf, &[("user", "app"), ("database", "db")]);
        let (startup, used) = decode_startup(&buf).unwrap().unwrap();
        assert_eq!(used, buf.len());
        assert_eq!(
            startup,
            Startup::Params(vec![
                ("user".into(), "app".into()),
                ("database".into(), "db".into())
            ])
        );
        assert_eq!(decode_startup(&buf[..buf.len() - 1]), Ok(None));

        let mut cancel = BytesMut::new();
        cancel_request(&mut cancel, 7, -9);
        assert_eq!(
            decode_startup(&cancel).unwrap().unwrap().0,
            Startup::Cancel { pid: 7, secret: -9 }
        );
        let ssl = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        assert_eq!(
            decode_startup(&ssl).unwrap().unwrap().0,
            Startup::SslRequest
        );
        assert!(decode_startup(&[0, 0, 0, 8, 0, 2, 0, 0]).is_err());
        assert!(decode_startup(&[0x7f, 0, 0, 0, 0, 3, 0, 0]).is_err());
        // a parameter without its terminator
        assert!(decode_startup(&[0, 0, 0, 11, 0, 3, 0, 0, b'u', b's', b'e']).is_err());
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

    #[test]
    fn encoders_produce_decodable_messages() {
        let mut buf = BytesMut::new();
        parse(&mut buf, b"x", b"select 1", &[0, 0]);
        bind(&mut buf, b"", b"x", &[0, 0, 0, 0, 0, 0]);
        describe_or_close(&mut buf, b'C', b'S', b"x");
        sync(&mut buf);
        let mut rest = &buf[..];
        let mut kinds = Vec::new();
        while let Some((m, used)) = decode_frontend_message(rest, 1 << 20).unwrap() {
            kinds.push(std::mem::discriminant(&m));
            rest = &rest[used..];
        }
        assert_eq!(kinds.len(), 4);
        assert!(rest.is_empty());
    }

    /// A cheap, deterministic stand-in for the cargo-fuzz target (which needs
    /// nightly): random and mutated-valid inputs must never panic.
    #[test]
    fn decoders_never_panic_on_random_input() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut valid = BytesMut::new();
        startup_message(&mut valid, &[("user", "u"), ("database", "d")]);
        parse(&mut valid, b"s", b"select $1", &[0, 1, 0, 0, 0, 23]);
        bind(&mut valid, b"", b"s", &[0, 0, 0, 1, 0, 0, 0, 1, b'7', 0, 0]);
        describe_or_close(&mut valid, b'D', b'P', b"");
        sync(&mut valid);
        for round in 0..20_000 {
            let mut input: Vec<u8> = if round % 2 == 0 {
                let mut v = valid.to_vec();
                for _ in 0..(next() % 4 + 1) {
                    let at = (next() as usize) % v.len();
                    v[at] = next() as u8;
                }
                v.truncate((next() as usize) % (v.len() + 1));
                v
            } else {
                (0..next() % 64).map(|_| next() as u8).collect()
            };
            let _ = decode_startup(&input);
            let mut rest = &input[..];
            while let Ok(Some((_, used))) = decode_frontend_message(rest, 1 << 16) {
                rest = &rest[used..];
            }
            let _ = decode_error_fields(&input);
            input.clear();
        }
    }
}
