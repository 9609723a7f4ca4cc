//! pgbouncer's syntax: `key = value` lines, quoted names, connection
//! strings, and each kind of value as pgbouncer reads it.

use toml::Value;

use super::pgbouncer::Kind;

/// `key = value` as pgbouncer splits it: a bare key of letters, digits and
/// `_.-*`, or a quoted one; the value is the rest of the line.
pub(super) fn split_key_value(line: &str) -> Option<(String, &str)> {
    let (key, rest) = match line.chars().next()? {
        quote @ ('\'' | '"') => unquote(&line[1..], quote)?,
        _ => {
            let end = line
                .find(|c: char| !(c.is_ascii_alphanumeric() || "_.-*".contains(c)))
                .unwrap_or(line.len());
            (line[..end].to_owned(), &line[end..])
        }
    };
    let value = rest.trim_start_matches([' ', '\t']).strip_prefix('=')?;
    (!key.is_empty()).then(|| (key, value.trim()))
}

/// A `[databases]`/`[users]` value's `key=value` pairs, as pgbouncer's
/// `cstr_get_pair` reads them; on a syntax error, the text from there on.
pub(super) fn connection_string(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    // pgbouncer separates pairs with spaces only (`cstr_skip_ws`).
    let mut rest = text.trim_start_matches(' ');
    while !rest.is_empty() {
        let near = || rest.to_owned();
        let end = rest.find(['=', ' ']).unwrap_or(rest.len());
        let key = &rest[..end];
        let after = rest[end..]
            .trim_start_matches(' ')
            .strip_prefix('=')
            .ok_or_else(near)?;
        if key.is_empty() {
            return Err(near());
        }
        let after = after.trim_start_matches(' ');
        let (value, next) = if let Some(quoted) = after.strip_prefix('\'') {
            let (value, next) = unquote(quoted, '\'').ok_or_else(near)?;
            if !(next.is_empty() || next.starts_with(' ')) {
                return Err(near());
            }
            (value, next)
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_owned(), &after[end..])
        };
        if value.is_empty() {
            return Err(near());
        }
        pairs.push((key.to_owned(), value));
        rest = next.trim_start_matches(' ');
    }
    Ok(pairs)
}

/// The rest of a quoted text after its opening `quote`, a doubled quote
/// standing for one (SQL's rule, which pgbouncer's manual gives for names and
/// its connection strings use for values): the text, and what follows it.
fn unquote(text: &str, quote: char) -> Option<(String, &str)> {
    let mut unquoted = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != quote {
            unquoted.push(c);
        } else if text[i + 1..].starts_with(quote) {
            unquoted.push(quote);
            chars.next();
        } else {
            return Some((unquoted, &text[i + 1..]));
        }
    }
    None
}

const UNIX_SOCKET: &str = "a Unix socket is supported by pgbouncer but not by sluice (TCP only)";
const HOST_LIST: &str =
    "a list of hosts is supported by pgbouncer but not by sluice (one host per database)";

/// A pgbouncer value as the TOML value the gateway reads; else what was expected.
pub(super) fn convert(kind: Kind, raw: &str) -> Result<Value, &'static str> {
    Ok(match kind {
        Kind::Integer => Value::Integer(c_integer(raw).ok_or("expected an integer")?),
        Kind::Decimal => Value::Integer(raw.parse().map_err(|_| "expected a whole number")?),
        Kind::Seconds => seconds(raw).ok_or("expected a number of seconds, like 30 or 0.5")?,
        Kind::Text => Value::String(raw.to_owned()),
        Kind::Host if raw.starts_with(['/', '@']) => return Err(UNIX_SOCKET),
        Kind::Host if raw.contains(',') => return Err(HOST_LIST),
        Kind::Host => Value::String(raw.to_owned()),
        Kind::Keyword => Value::String(raw.to_ascii_lowercase()),
        Kind::List => Value::Array(
            raw.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|name| !name.is_empty())
                .map(|name| Value::String(name.to_owned()))
                .collect(),
        ),
        Kind::Flag => Value::Boolean(c_integer(raw).ok_or("expected 0 or 1")? != 0),
    })
}

/// An integer as C's `strtol(text, 0)` reads a whole string: an optional
/// sign, then `0x` hexadecimal, `0` octal, or decimal.
fn c_integer(text: &str) -> Option<i64> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(hex) = digits.strip_prefix("0x").or(digits.strip_prefix("0X"))
    {
        (16, hex)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i64::from_str_radix(digits, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// Seconds as pgbouncer's `parse_time` reads them (`strtod`, not negative):
/// a TOML integer when whole, else a float.
fn seconds(text: &str) -> Option<Value> {
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    Some(if value.fract() == 0.0 && value < 1e15 {
        Value::Integer(value as i64)
    } else {
        Value::Float(value)
    })
}
