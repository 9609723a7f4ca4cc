//! Decoding what clients send: the startup packet (it has no tag) and
//! frontend messages, each only as far as the gateway needs.

use super::{cstr, frame_len, malformed, ProtocolError};
use super::{CANCEL_REQUEST_CODE, GSSENC_REQUEST_CODE, MAX_STARTUP_PACKET};
use super::{PROTOCOL_VERSION_3, SSL_REQUEST_CODE};

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

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;
    use crate::protocol::decode_error_fields;
    use crate::protocol::encode::*;

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
