//! Encoders: each appends one message to a `BytesMut`, so that a whole
//! exchange goes out with one write.

use bytes::{BufMut, BytesMut};

use super::{server_tag, TxStatus, CANCEL_REQUEST_CODE, PROTOCOL_VERSION_3};

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

pub fn ready_for_query(buf: &mut BytesMut, status: TxStatus) {
    let at = begin(buf, server_tag::READY_FOR_QUERY);
    buf.put_u8(status.byte());
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

/// Execute of `portal`, all rows (`max_rows` 0) or at most `max_rows`.
pub fn execute(buf: &mut BytesMut, portal: &[u8], max_rows: i32) {
    let at = begin(buf, b'E');
    put_cstr(buf, portal);
    buf.put_i32(max_rows);
    finish(buf, at);
}

pub fn sync(buf: &mut BytesMut) {
    buf.put_slice(&[b'S', 0, 0, 0, 4]);
}

/// A result set of text columns (RowDescription, DataRows, CommandComplete
/// with `tag`), as the gateway answers a `SHOW` itself.
pub fn text_result(buf: &mut BytesMut, columns: &[&str], rows: &[Vec<Option<String>>], tag: &str) {
    row_description(buf, columns.iter().map(|name| (*name, ColumnType::Text)));
    for row in rows {
        data_row(
            buf,
            row.iter().map(|value| value.as_deref().map(str::as_bytes)),
        );
    }
    command_complete(buf, tag);
}

/// The types the gateway's own result columns have (pgbouncer's console
/// uses exactly these), all sent in text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int4,
    Int8,
    Numeric,
    Bytea,
}

impl ColumnType {
    /// The type's OID.
    pub fn oid(self) -> i32 {
        match self {
            ColumnType::Text => 25,
            ColumnType::Int4 => 23,
            ColumnType::Int8 => 20,
            ColumnType::Numeric => 1700,
            ColumnType::Bytea => 17,
        }
    }

    /// The type's length (-1: variable).
    pub fn size(self) -> i16 {
        match self {
            ColumnType::Int4 => 4,
            ColumnType::Int8 => 8,
            ColumnType::Text | ColumnType::Numeric | ColumnType::Bytea => -1,
        }
    }
}

/// A RowDescription of columns in text format.
pub fn row_description<'a>(
    buf: &mut BytesMut,
    columns: impl ExactSizeIterator<Item = (&'a str, ColumnType)>,
) {
    let at = begin(buf, server_tag::ROW_DESCRIPTION);
    buf.put_i16(columns.len() as i16);
    for (name, kind) in columns {
        put_cstr(buf, name.as_bytes());
        buf.put_i32(0); // table oid
        buf.put_i16(0); // column number
        buf.put_i32(kind.oid());
        buf.put_i16(kind.size());
        buf.put_i32(-1); // no type modifier
        buf.put_i16(0); // text format
    }
    finish(buf, at);
}

/// A NoticeResponse (severity NOTICE, SQLSTATE 00000), with a detail if given.
pub fn notice(buf: &mut BytesMut, message: &str, detail: Option<&str>) {
    let at = begin(buf, server_tag::NOTICE_RESPONSE);
    for (kind, value) in [(b'S', "NOTICE"), (b'C', "00000"), (b'M', message)] {
        buf.put_u8(kind);
        put_cstr(buf, value.as_bytes());
    }
    if let Some(detail) = detail {
        buf.put_u8(b'D');
        put_cstr(buf, detail.as_bytes());
    }
    buf.put_u8(0);
    finish(buf, at);
}

/// An ErrorResponse with only severity, SQLSTATE and message, as
/// pgbouncer's console and its limits send them.
pub fn short_error(buf: &mut BytesMut, severity: &str, code: &str, message: &str) {
    let at = begin(buf, server_tag::ERROR_RESPONSE);
    for (kind, value) in [(b'S', severity), (b'C', code), (b'M', message)] {
        buf.put_u8(kind);
        put_cstr(buf, value.as_bytes());
    }
    buf.put_u8(0);
    finish(buf, at);
}

/// A DataRow of text values (`None` is NULL).
pub fn data_row<'a>(buf: &mut BytesMut, values: impl ExactSizeIterator<Item = Option<&'a [u8]>>) {
    let at = begin(buf, server_tag::DATA_ROW);
    buf.put_i16(values.len() as i16);
    for value in values {
        match value {
            Some(text) => {
                buf.put_i32(text.len() as i32);
                buf.put_slice(text);
            }
            None => buf.put_i32(-1),
        }
    }
    finish(buf, at);
}

/// `CommandComplete` with `tag` (e.g. `SET`, `SELECT 1`).
pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    let at = begin(buf, server_tag::COMMAND_COMPLETE);
    put_cstr(buf, tag.as_bytes());
    finish(buf, at);
}

/// A message with no body (ParseComplete, BindComplete, CloseComplete, Sync, ...).
pub fn empty_message(buf: &mut BytesMut, tag: u8) {
    buf.put_slice(&[tag, 0, 0, 0, 4]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Messages;

    #[test]
    fn text_result_is_well_framed() {
        let mut out = BytesMut::new();
        text_result(
            &mut out,
            &["a", "b"],
            &[vec![Some("x".into()), None]],
            "SHOW",
        );
        let tags: Vec<u8> = Messages::new(&out).map(|m| m.tag()).collect();
        assert_eq!(tags, b"TDC");
        assert_eq!(
            Messages::new(&out).map(|m| m.bytes.len()).sum::<usize>(),
            out.len()
        );
        // The DataRow: 2 columns, "x" then NULL.
        let data_row = Messages::new(&out).nth(1).unwrap().body();
        assert_eq!(&data_row[..2], &2i16.to_be_bytes());
        assert_eq!(&data_row[2..6], &1i32.to_be_bytes());
        assert_eq!(data_row[6], b'x');
        assert_eq!(&data_row[7..11], &(-1i32).to_be_bytes());
    }
}
