//! Reading an HBA file's lines: pgbouncer's tokenizer (words, `"quoted"`
//! names, commas, `#` comments), then each column in turn, with `@files`
//! read where they are named.

use std::net::IpAddr;
use std::path::Path;

use super::{Address, At, ConnectionType, FileError, Method, Names, Rule};

/// How deep `@file` names files may nest (they may name each other).
const MAX_NAMES_FILE_DEPTH: usize = 10;

/// One token of a line, as pgbouncer's tokenizer makes them.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Token {
    /// A bare word: runs to whitespace, `,`, `#` or `"`.
    Word(String),
    /// `"..."`, with `""` for a quote inside.
    Quoted(String),
    Comma,
}

/// Splits a line into tokens; `#` outside quotes ends it.
pub(super) fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => break,
            ',' => {
                chars.next();
                tokens.push(Token::Comma);
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        None => return Err("a quoted name has no closing `\"`".into()),
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            text.push('"');
                        }
                        Some('"') => break,
                        Some(c) => text.push(c),
                    }
                }
                tokens.push(Token::Quoted(text));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, ',' | '#' | '"') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// A line's tokens, read left to right.
struct Cursor<'t> {
    tokens: &'t [Token],
    pos: usize,
}

impl<'t> Cursor<'t> {
    fn peek(&self) -> Option<&'t Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<&'t Token> {
        let token = self.tokens.get(self.pos);
        self.pos += 1;
        token
    }

    fn word(&mut self) -> Option<&'t str> {
        match self.peek() {
            Some(Token::Word(word)) => {
                self.pos += 1;
                Some(word.as_str())
            }
            _ => None,
        }
    }
}

/// Which column a name list is, for its keywords and messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Column {
    Database,
    User,
}

impl Column {
    fn noun(self) -> &'static str {
        match self {
            Column::Database => "database",
            Column::User => "user",
        }
    }
}

pub(super) fn parse_rule(at: &At, tokens: &[Token]) -> Result<Option<Rule>, FileError> {
    let mut cursor = Cursor { tokens, pos: 0 };
    let kind = match cursor.next() {
        None => return Ok(None),
        Some(Token::Word(word)) => match word.as_str() {
            "local" => ConnectionType::Local,
            "host" => ConnectionType::Host,
            "hostssl" => ConnectionType::HostSsl,
            "hostnossl" => ConnectionType::HostNoSsl,
            other => {
                return Err(at.invalid(format!(
                "unknown connection type \"{other}\" (expected local, host, hostssl or hostnossl)"
            )))
            }
        },
        Some(_) => {
            return Err(at.invalid("expected a connection type (local, host, hostssl or hostnossl)"))
        }
    };
    let mut databases = Names::default();
    name_list(at, &mut cursor, Column::Database, &mut databases, 0)?;
    let mut users = Names::default();
    name_list(at, &mut cursor, Column::User, &mut users, 0)?;
    let address = if kind == ConnectionType::Local {
        Address::Unix
    } else {
        address(at, &mut cursor)?
    };
    let method = method(at, &mut cursor)?;
    if method == Method::Peer && kind != ConnectionType::Local {
        return Err(at.invalid(
            "peer authentication needs a Unix socket: use it on local lines (sluice listens on TCP only)",
        ));
    }
    match cursor.next() {
        None => {}
        Some(Token::Word(word)) if word.starts_with("map=") => {
            return Err(at.invalid(format!(
                "{word}: user name maps (pgbouncer's auth_ident_file) are not supported by sluice"
            )))
        }
        Some(token) => {
            return Err(at.invalid(format!(
                "unsupported parameters after the method: {}",
                describe(token)
            )))
        }
    }
    Ok(Some(Rule {
        line: at.line,
        kind,
        databases,
        users,
        address,
        method,
    }))
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(word) => format!("`{word}`"),
        Token::Quoted(text) => format!("`\"{text}\"`"),
        Token::Comma => "`,`".into(),
    }
}

/// A comma list of names into `names`; `depth` counts the `@files` read to get here.
fn name_list(
    at: &At,
    cursor: &mut Cursor,
    column: Column,
    names: &mut Names,
    depth: usize,
) -> Result<(), FileError> {
    loop {
        match cursor.next() {
            Some(Token::Quoted(name)) => {
                names.names.insert(name.clone());
            }
            Some(Token::Word(word)) => name_word(at, word, column, names, depth)?,
            _ => return Err(at.invalid(format!("expected a {} name", column.noun()))),
        }
        if cursor.peek() != Some(&Token::Comma) {
            return Ok(());
        }
        cursor.next();
    }
}

/// One unquoted name: a keyword, `@file`, or a plain name.
fn name_word(
    at: &At,
    word: &str,
    column: Column,
    names: &mut Names,
    depth: usize,
) -> Result<(), FileError> {
    match word {
        "all" => names.all = true,
        "sameuser" => names.sameuser = true,
        "samerole" | "samegroup" => {
            return Err(at.invalid(format!(
                "{word} is not supported (as in pgbouncer): list the users"
            )))
        }
        "replication" if column == Column::Database => names.replication = true,
        "replication" => {
            // pgbouncer takes it as its keyword here too, which then
            // matches no user: say so rather than keep a dead line.
            return Err(at.invalid(
                "replication in the user column matches no user (pgbouncer reads it as the \
                 keyword): write \"replication\" in quotes for a user of that name",
            ));
        }
        _ if word.starts_with('+') => {
            return Err(at.invalid(format!(
            "{word}: group membership (+role) is not supported (as in pgbouncer): list the users"
        )))
        }
        _ if word.starts_with('@') => names_file(at, &word[1..], column, names, depth + 1)?,
        _ => {
            names.names.insert(word.to_string());
        }
    }
    Ok(())
}

/// `@file`: names from `file` (relative to the file naming it), each line
/// a list of names separated by commas or spaces; blank lines and `#`
/// comments are skipped.
fn names_file(
    at: &At,
    name: &str,
    column: Column,
    names: &mut Names,
    depth: usize,
) -> Result<(), FileError> {
    if name.is_empty() {
        return Err(at.invalid("@ without a file name"));
    }
    if depth > MAX_NAMES_FILE_DEPTH {
        return Err(at.invalid(format!(
            "@{name}: @files nested more than {MAX_NAMES_FILE_DEPTH} deep (do they name each other?)"
        )));
    }
    let path = at.path.parent().unwrap_or(Path::new(".")).join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|error| at.invalid(format!("@{name}: cannot read {}: {error}", path.display())))?;
    for (index, line) in text.lines().enumerate() {
        let here = At {
            path: &path,
            line: index + 1,
        };
        let tokens = tokenize(line).map_err(|message| here.invalid(message))?;
        for token in &tokens {
            match token {
                Token::Comma => {}
                Token::Quoted(quoted) => {
                    names.names.insert(quoted.clone());
                }
                Token::Word(word) => name_word(&here, word, column, names, depth)?,
            }
        }
    }
    Ok(())
}

fn address(at: &At, cursor: &mut Cursor) -> Result<Address, FileError> {
    let expected = "expected an address: all, a CIDR such as 10.0.0.0/8 or ::1/128, or an \
                    address and a mask";
    let Some(word) = cursor.word() else {
        return Err(at.invalid(expected));
    };
    if word == "all" {
        return Ok(Address::All);
    }
    if word == "samehost" || word == "samenet" {
        return Err(at.invalid(format!(
            "{word} is not supported (pgbouncer has no {word} either): write the addresses"
        )));
    }
    let (addr_text, bits) = match word.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits)),
        None => (word, None),
    };
    let addr: IpAddr = addr_text.parse().map_err(|_| {
        at.invalid(format!(
            "invalid address \"{addr_text}\": an IPv4 or IPv6 address (host names are not \
             supported, as in pgbouncer)"
        ))
    })?;
    let width = if addr.is_ipv4() { 32 } else { 128 };
    let mask: u128 = match bits {
        Some(bits) => {
            let bits: u32 = bits.parse().ok().filter(|&b| b <= width).ok_or_else(|| {
                at.invalid(format!(
                    "invalid mask \"/{bits}\": 0 to {width} bits for {addr_text}"
                ))
            })?;
            prefix_mask(bits, width)
        }
        None => {
            let Some(mask_text) = cursor.word() else {
                return Err(at.invalid(format!(
                    "no mask after address {addr_text}: write {addr_text}/BITS, or a mask column"
                )));
            };
            match (addr, mask_text.parse::<IpAddr>()) {
                (IpAddr::V4(_), Ok(IpAddr::V4(mask))) => u128::from(u32::from(mask)),
                (IpAddr::V6(_), Ok(IpAddr::V6(mask))) => u128::from(mask),
                _ => {
                    return Err(at.invalid(format!(
                        "invalid mask \"{mask_text}\" for address {addr_text}: an {} mask",
                        if addr.is_ipv4() { "IPv4" } else { "IPv6" }
                    )))
                }
            }
        }
    };
    let value = match addr {
        IpAddr::V4(ip) => u128::from(u32::from(ip)),
        IpAddr::V6(ip) => u128::from(ip),
    };
    if value & !mask != 0 {
        // pgbouncer warns and keeps a line that can never match.
        return Err(at.invalid(format!(
            "address does not match mask: {addr_text} has bits outside the mask (a line that \
             could never match)"
        )));
    }
    Ok(match addr {
        IpAddr::V4(_) => Address::V4 {
            addr: value as u32,
            mask: mask as u32,
        },
        IpAddr::V6(_) => Address::V6 { addr: value, mask },
    })
}

/// The mask of a `/bits` prefix in an address `width` bits wide.
fn prefix_mask(bits: u32, width: u32) -> u128 {
    let all = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    all & !all.checked_shr(bits).unwrap_or(0)
}

fn method(at: &At, cursor: &mut Cursor) -> Result<Method, FileError> {
    let word = match cursor.next() {
        Some(Token::Word(word)) => word,
        Some(token) => {
            return Err(at.invalid(format!(
                "expected an authentication method, got {}",
                describe(token)
            )))
        }
        None => return Err(at.invalid("expected an authentication method after the address")),
    };
    if let Some(method) = Method::from_hba_name(word) {
        return Ok(method);
    }
    let message = if word == "ldap" {
        "ldap is not supported by sluice".to_string()
    } else {
        format!(
            "unsupported method \"{word}\" (pgbouncer's are trust, reject, md5, scram-sha-256, \
             password, cert, peer, ldap)"
        )
    };
    Err(at.invalid(message))
}
