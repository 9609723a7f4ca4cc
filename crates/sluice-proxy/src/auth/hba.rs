//! pgbouncer's `auth_hba_file` (used with `auth_type = hba`): the subset of
//! PostgreSQL's `pg_hba.conf` that pgbouncer 1.25 reads (`src/hba.c`), and
//! the first line a connection matches.
//!
//! A line is `TYPE DATABASE USER [ADDRESS [MASK]] METHOD`:
//! - TYPE: `local`, `host`, `hostssl` (TLS connections only), `hostnossl`;
//! - DATABASE and USER: comma lists (spaces around the commas allowed, as
//!   pgbouncer's tokenizer skips them) of names, `"quoted names"` (a quoted
//!   `"all"` is a name), `all`, `@file` (names read from a file relative to
//!   the file naming it, one list per line), `sameuser` (the database is
//!   named like the user; in the user column, as pgbouncer reads it, the
//!   user is named like the database), and in the database column
//!   `replication`, which matches physical replication connections only;
//!   `+group`, `samerole` and `samegroup` are refused as in pgbouncer;
//! - ADDRESS (not on `local` lines): `all`, a CIDR (`10.0.0.0/8`,
//!   `::1/128`) or an address followed by a mask column (`10.0.0.0
//!   255.0.0.0`); no host names, `samehost` or `samenet` (pgbouncer has none);
//! - METHOD: `trust`, `reject`, `md5`, `scram-sha-256`, `password`, `cert`,
//!   and `peer` on `local` lines. pgbouncer's `ldap` and `map=` (its
//!   `auth_ident_file`) are refused.
//!
//! `#` starts a comment anywhere outside quotes. Where pgbouncer logs a bad
//! line and skips it, the gateway refuses the file with `file:line: message`,
//! so that no rule is silently lost (at start, or on reload, which then keeps
//! the running rules).

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::{read_file, FileError, Method};
use parse::{parse_rule, tokenize};

mod parse;

/// The rules of one HBA file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Hba {
    path: PathBuf,
    rules: Vec<Rule>,
}

/// One line of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its line in the HBA file (for logs).
    pub line: usize,
    pub kind: ConnectionType,
    databases: Names,
    users: Names,
    address: Address,
    pub method: Method,
}

/// A line's first column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionType {
    /// Unix-socket connections (the gateway listens on TCP only, so these
    /// lines match only its in-memory test streams).
    Local,
    Host,
    HostSsl,
    HostNoSsl,
}

/// A database or user column.
#[derive(Debug, Clone, Default, PartialEq)]
struct Names {
    all: bool,
    sameuser: bool,
    replication: bool,
    names: HashSet<String>,
}

/// A line's address column(s).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Address {
    /// `local` lines have none.
    Unix,
    All,
    V4 {
        addr: u32,
        mask: u32,
    },
    V6 {
        addr: u128,
        mask: u128,
    },
}

/// What a line is matched against: one client's login.
#[derive(Debug, Clone, Copy)]
pub struct Connection<'a> {
    /// Whether the client talks TLS.
    pub tls: bool,
    /// The client's IP address; `None` for a connection without one (a
    /// Unix socket, or the in-memory streams of tests), which only `local`
    /// lines match, as in pgbouncer.
    pub addr: Option<IpAddr>,
    pub database: &'a str,
    pub user: &'a str,
    /// A physical replication connection (`replication=true`).
    pub replication: bool,
}

impl Hba {
    /// Reads the HBA file at `path`, and the `@files` it names.
    pub fn load(path: &Path) -> Result<Hba, FileError> {
        let text = read_file(path)?;
        Hba::parse(path, &text)
    }

    /// Parses `text` as the HBA file at `path` (`@files` are read from its folder).
    pub fn parse(path: &Path, text: &str) -> Result<Hba, FileError> {
        let mut rules = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let at = At {
                path,
                line: index + 1,
            };
            let tokens = tokenize(line).map_err(|message| at.invalid(message))?;
            if let Some(rule) = parse_rule(&at, &tokens)? {
                rules.push(rule);
            }
        }
        Ok(Hba {
            path: path.to_owned(),
            rules,
        })
    }

    /// The file the rules came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The first rule `connection` matches (pgbouncer's `hba_eval`);
    /// `None`: the login is refused ("no authentication method is found").
    pub fn find(&self, connection: &Connection) -> Option<&Rule> {
        self.rules.iter().find(|rule| rule.matches(connection))
    }
}

impl Rule {
    fn matches(&self, c: &Connection) -> bool {
        let kind_matches = match (c.addr, self.kind) {
            (None, kind) => kind == ConnectionType::Local,
            (Some(_), ConnectionType::Local) => false,
            (Some(_), ConnectionType::HostSsl) if !c.tls => false,
            (Some(_), ConnectionType::HostNoSsl) if c.tls => false,
            (Some(addr), _) => self.address.matches(addr),
        };
        if !kind_matches {
            return false;
        }
        let database_matches = if c.replication {
            self.databases.replication
        } else {
            self.databases.matches(c.database, c.user)
        };
        database_matches && self.users.matches(c.user, c.database)
    }
}

impl Names {
    /// `name` is in the column; `other` is the other column's name, for `sameuser`.
    fn matches(&self, name: &str, other: &str) -> bool {
        self.all || (self.sameuser && name == other) || self.names.contains(name)
    }
}

impl Address {
    fn matches(self, addr: IpAddr) -> bool {
        // A client reaching an IPv6 socket over IPv4 is matched as IPv4.
        match (self, addr.to_canonical()) {
            (Address::All, _) => true,
            (Address::V4 { addr: base, mask }, IpAddr::V4(ip)) => u32::from(ip) & mask == base,
            (Address::V6 { addr: base, mask }, IpAddr::V6(ip)) => u128::from(ip) & mask == base,
            _ => false,
        }
    }
}

/// A file and line, for errors.
struct At<'a> {
    path: &'a Path,
    line: usize,
}

impl At<'_> {
    fn invalid(&self, message: impl Into<String>) -> FileError {
        FileError::Invalid {
            path: self.path.to_owned(),
            line: self.line,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests;
