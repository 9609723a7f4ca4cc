//! A query of the gateway's own with one parameter, over the extended
//! protocol (Parse, Bind, Describe, Execute, Sync), so the value is bound as
//! `$1` and never pasted into the SQL text: `auth_query` with the user name.

use super::{params, BackendError, ServerConn};
use crate::protocol::{self, client_tag, server_tag, TxStatus};

/// What a lookup query answered.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LookupRows {
    /// Columns in the result (`RowDescription`), 0 for a statement without rows.
    pub columns: usize,
    /// The first row's values as text (`None` for NULL), if there was a row.
    pub first_row: Option<Vec<Option<String>>>,
}

impl ServerConn {
    /// Runs `sql` with `$1` bound to `param` (text, its type left to the
    /// server) and returns the first row; fails on the first
    /// ErrorResponse. The connection must be idle; nothing reaches a client.
    pub async fn query_with_param(
        &mut self,
        sql: &str,
        param: &str,
    ) -> Result<LookupRows, BackendError> {
        protocol::parse(&mut self.wbuf, b"", sql.as_bytes(), &0i16.to_be_bytes());
        let mut bind = Vec::with_capacity(12 + param.len());
        bind.extend_from_slice(&0i16.to_be_bytes()); // parameters in text format
        bind.extend_from_slice(&1i16.to_be_bytes());
        bind.extend_from_slice(&(param.len() as i32).to_be_bytes());
        bind.extend_from_slice(param.as_bytes());
        bind.extend_from_slice(&0i16.to_be_bytes()); // results in text format
        protocol::bind(&mut self.wbuf, b"", b"", &bind);
        protocol::describe_or_close(&mut self.wbuf, client_tag::DESCRIBE, b'P', b"");
        protocol::execute(&mut self.wbuf, b"", 0);
        protocol::sync(&mut self.wbuf);
        self.flush_wbuf().await?;
        let mut rows = LookupRows::default();
        let mut error = None;
        loop {
            let (tag, body) = self.read_message().await?;
            match tag {
                server_tag::ERROR_RESPONSE => {
                    error.get_or_insert(protocol::decode_error_fields(&body));
                }
                server_tag::PARAMETER_STATUS => {
                    params::apply_parameter_status(&mut self.params, &body);
                }
                server_tag::ROW_DESCRIPTION => {
                    rows.columns = body
                        .get(..2)
                        .map_or(0, |n| u16::from_be_bytes([n[0], n[1]]).into());
                }
                server_tag::DATA_ROW if rows.first_row.is_none() => {
                    let row =
                        data_row(&body).ok_or_else(|| self.protocol_error("malformed DataRow"))?;
                    rows.first_row = Some(row);
                }
                server_tag::READY_FOR_QUERY => {
                    self.status = TxStatus::from_body(&body);
                    return match error {
                        None => Ok(rows),
                        Some(fields) => Err(BackendError::Server {
                            addr: self.target.addr(),
                            fields,
                        }),
                    };
                }
                server_tag::COPY_IN_RESPONSE
                | server_tag::COPY_OUT_RESPONSE
                | server_tag::COPY_BOTH_RESPONSE => {
                    self.broken = true;
                    return Err(self.protocol_error("unexpected COPY in a gateway query"));
                }
                _ => {} // ParseComplete, BindComplete, CommandComplete, notices
            }
        }
    }
}

/// Every value of a DataRow body, as text (`None` for NULL).
fn data_row(body: &[u8]) -> Option<Vec<Option<String>>> {
    let count = u16::from_be_bytes(body.get(..2)?.try_into().ok()?);
    let mut rest = &body[2..];
    let mut values = Vec::with_capacity(count.into());
    for _ in 0..count {
        let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
        rest = &rest[4..];
        if len < 0 {
            values.push(None);
            continue;
        }
        let value = rest.get(..len as usize)?;
        values.push(Some(String::from_utf8_lossy(value).into_owned()));
        rest = &rest[len as usize..];
    }
    Some(values)
}

#[cfg(test)]
mod tests {
    use super::data_row;

    #[test]
    fn data_rows_with_nulls() {
        let mut body = vec![0, 3];
        body.extend_from_slice(&2i32.to_be_bytes());
        body.extend_from_slice(b"ab");
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(
            data_row(&body),
            Some(vec![Some("ab".into()), None, Some(String::new())])
        );
        assert_eq!(data_row(&body[..7]), None, "a value cut short");
        assert_eq!(data_row(&[0]), None);
    }
}
