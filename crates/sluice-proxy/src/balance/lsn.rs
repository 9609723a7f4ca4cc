//! WAL positions (`pg_lsn`): a 64-bit byte offset into the write-ahead log.
//!
//! PostgreSQL prints an LSN as two hexadecimal halves, `X/Y`, where `X` is the
//! high 32 bits and `Y` the low 32 bits (`0/16B3748`). Sluice compares them to
//! decide whether a replica has replayed a client's last write, and subtracts
//! them to measure replication lag in bytes, exactly like `pg_wal_lsn_diff`.

use std::fmt;
use std::str::FromStr;

/// A position in the write-ahead log. Ordered like the log itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// `0/0`: PostgreSQL's invalid LSN, before any WAL.
    pub const ZERO: Lsn = Lsn(0);

    /// Bytes of WAL from `earlier` to `self`; 0 when `self` is not after
    /// `earlier` (a replica cannot be "ahead" in any useful sense).
    pub fn bytes_after(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Text that is not an LSN in `X/Y` form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid WAL position {0:?}: expected two hexadecimal numbers of up to 8 digits, like '0/16B3748'")]
pub struct LsnParseError(pub String);

impl FromStr for Lsn {
    type Err = LsnParseError;

    /// Accepts what `pg_lsn`'s input function accepts: `X/Y`, each half 1 to
    /// 8 hex digits, either case, surrounding whitespace ignored.
    fn from_str(text: &str) -> Result<Lsn, LsnParseError> {
        let error = || LsnParseError(text.to_owned());
        let (high, low) = text.trim().split_once('/').ok_or_else(error)?;
        let half = |part: &str| -> Result<u64, LsnParseError> {
            let hex_digits = !part.is_empty() && part.len() <= 8;
            if !hex_digits || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(error());
            }
            u64::from_str_radix(part, 16).map_err(|_| error())
        };
        Ok(Lsn((half(high)? << 32) | half(low)?))
    }
}

impl fmt::Display for Lsn {
    /// PostgreSQL's output form: upper-case hex halves without padding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl From<u64> for Lsn {
    fn from(value: u64) -> Lsn {
        Lsn(value)
    }
}

impl From<Lsn> for u64 {
    fn from(lsn: Lsn) -> u64 {
        lsn.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_postgres_text_form() {
        assert_eq!("0/16B3748".parse::<Lsn>().unwrap(), Lsn(0x16B3748));
        assert_eq!("1/0".parse::<Lsn>().unwrap(), Lsn(1 << 32));
        assert_eq!("FFFFFFFF/FFFFFFFF".parse::<Lsn>().unwrap(), Lsn(u64::MAX));
        assert_eq!(" 0/16b3748 ".parse::<Lsn>().unwrap(), Lsn(0x16B3748));
        // PostgreSQL 18 pads the low half to eight digits.
        assert_eq!("0/016B3748".parse::<Lsn>().unwrap(), Lsn(0x16B3748));
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "16B3748",
            "0/1/2",
            "G/0",
            "0/-1",
            "+1/0",
            "123456789/0",
            "0/123456789",
            "0 /1",
        ] {
            let error = bad.parse::<Lsn>().unwrap_err();
            assert_eq!(error, LsnParseError(bad.to_owned()), "{bad:?}");
        }
        let message = "x".parse::<Lsn>().unwrap_err().to_string();
        assert!(message.contains("'0/16B3748'"), "{message}");
    }

    #[test]
    fn formats_like_postgres_and_round_trips() {
        assert_eq!(Lsn(0x16B3748).to_string(), "0/16B3748");
        assert_eq!(Lsn(0x1_0000_00AB).to_string(), "1/AB");
        assert_eq!(Lsn::ZERO.to_string(), "0/0");
        for value in [0, 1, 0xFFFF_FFFF, 1 << 32, 0x3_0000_0001, u64::MAX] {
            let lsn = Lsn(value);
            assert_eq!(lsn.to_string().parse::<Lsn>().unwrap(), lsn);
        }
    }

    #[test]
    fn orders_and_measures_distance() {
        let a: Lsn = "0/FFFFFFFF".parse().unwrap();
        let b: Lsn = "1/0".parse().unwrap();
        assert!(a < b);
        assert_eq!(b.bytes_after(a), 1);
        assert_eq!(a.bytes_after(b), 0);
        assert_eq!(a.bytes_after(a), 0);
        assert_eq!(Lsn(5).max(Lsn(3)), Lsn(5));
    }
}
