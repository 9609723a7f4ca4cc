//! The console's command language, as pgbouncer's `admin.c` reads it: one
//! command per query, keywords in any case, an optional trailing `;`, at
//! most one argument, words of letters, digits and `_` (or double-quoted),
//! `SET` values such a word or single-quoted; `SELECT` is another spelling
//! of `SHOW`.

use std::fmt;

/// One console command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `SHOW <item>` (the item in lower case).
    Show(String),
    /// `SET key = value`.
    Set {
        key: String,
        value: String,
    },
    Pause(Option<String>),
    Resume(Option<String>),
    Reconnect(Option<String>),
    Disable(String),
    Enable(String),
    Kill(Option<String>),
    KillClient(u64),
    Suspend,
    Reload,
    WaitClose(Option<String>),
    Shutdown(ShutdownMode),
}

/// How `SHUTDOWN` waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownMode {
    /// Close everything at once.
    Immediate,
    /// Wait until every server connection is released (`SIGINT`).
    WaitForServers,
    /// Wait until every client has finished its transaction (`SIGTERM`).
    WaitForClients,
}

/// Why a query is not a console command (pgbouncer's wording).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a command at all.
    Unknown,
    /// A known command with wrong arguments; the text says which.
    Usage(&'static str),
    /// A command word over 15 characters, an argument or key over 63, a
    /// value over 255 (pgbouncer's limits).
    TooLong,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown => f.write_str("unrecognized command"),
            ParseError::Usage(usage) => write!(f, "bad arguments, expected: {usage}"),
            ParseError::TooLong => f.write_str("bad arguments"),
        }
    }
}

impl Command {
    /// Whether a `stats_users` member may run it (only `SHOW`).
    pub fn is_read_only(&self) -> bool {
        matches!(self, Command::Show(_))
    }
}

/// Reads one console command.
pub fn parse(text: &str) -> Result<Command, ParseError> {
    let text = text.trim();
    let text = text.strip_suffix(';').unwrap_or(text).trim();
    let mut words = Words { rest: text };
    let Some(verb) = words.word() else {
        return Err(ParseError::Unknown);
    };
    let verb = verb.to_ascii_lowercase();
    if verb.len() > 15 {
        return Err(ParseError::TooLong);
    }
    let optional_db = |words: &mut Words, usage| -> Result<Option<String>, ParseError> {
        let db = words.identifier()?;
        words.end(usage)?;
        Ok(db)
    };
    let required_db = |words: &mut Words, usage| -> Result<String, ParseError> {
        let db = words.identifier()?.ok_or(ParseError::Usage(usage))?;
        words.end(usage)?;
        Ok(db)
    };
    let command = match verb.as_str() {
        "show" | "select" => {
            let item = words
                .identifier()?
                .ok_or(ParseError::Usage("SHOW <item>"))?
                .to_ascii_lowercase();
            words.end("SHOW <item>")?;
            Command::Show(item)
        }
        "set" => {
            let usage = "SET key = value";
            let key = words
                .word()
                .ok_or(ParseError::Usage(usage))?
                .to_ascii_lowercase();
            if key.len() > 63 {
                return Err(ParseError::TooLong);
            }
            let rest = words.rest.trim_start();
            let rest = rest
                .strip_prefix('=')
                .or_else(|| {
                    rest.get(..2)
                        .filter(|to| to.eq_ignore_ascii_case("to"))
                        .map(|_| &rest[2..])
                })
                .ok_or(ParseError::Usage(usage))?;
            let value = setting_value(rest.trim()).ok_or(ParseError::Usage(usage))?;
            if value.len() > 255 {
                return Err(ParseError::TooLong);
            }
            Command::Set { key, value }
        }
        "pause" => Command::Pause(optional_db(&mut words, "PAUSE [<db>]")?),
        "resume" => Command::Resume(optional_db(&mut words, "RESUME [<db>]")?),
        "reconnect" => Command::Reconnect(optional_db(&mut words, "RECONNECT [<db>]")?),
        "wait_close" => Command::WaitClose(optional_db(&mut words, "WAIT_CLOSE [<db>]")?),
        "disable" => Command::Disable(required_db(&mut words, "DISABLE <db>")?),
        "enable" => Command::Enable(required_db(&mut words, "ENABLE <db>")?),
        "kill" => Command::Kill(optional_db(&mut words, "KILL [<db>]")?),
        "kill_client" => {
            let usage = "KILL_CLIENT <id>";
            let id = words
                .word()
                .and_then(|id| id.parse().ok())
                .ok_or(ParseError::Usage(usage))?;
            words.end(usage)?;
            Command::KillClient(id)
        }
        "suspend" => {
            words.end("SUSPEND")?;
            Command::Suspend
        }
        "reload" => {
            words.end("RELOAD")?;
            Command::Reload
        }
        "shutdown" => {
            let usage = "SHUTDOWN [WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS]";
            let mode = match words.word().map(|w| w.to_ascii_lowercase()) {
                None => ShutdownMode::Immediate,
                Some(w) if w == "wait_for_servers" => ShutdownMode::WaitForServers,
                Some(w) if w == "wait_for_clients" => ShutdownMode::WaitForClients,
                Some(_) => return Err(ParseError::Usage(usage)),
            };
            words.end(usage)?;
            Command::Shutdown(mode)
        }
        _ => return Err(ParseError::Unknown),
    };
    Ok(command)
}

/// A `SET` value: `'quoted'` (with `''` for a quote), `"quoted"`, or a
/// bare word.
fn setting_value(text: &str) -> Option<String> {
    if text.starts_with('"') {
        let mut words = Words { rest: text };
        let value = words.identifier().ok()??;
        return words.rest.trim().is_empty().then_some(value);
    }
    if let Some(inner) = text.strip_prefix('\'') {
        let mut value = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    value.push('\'');
                    continue;
                }
                return chars.all(char::is_whitespace).then_some(value);
            }
            value.push(c);
        }
        return None; // unterminated
    }
    let is_word = !text.is_empty() && text.chars().all(is_word_char);
    is_word.then(|| text.to_string())
}

/// The characters of a bare word (pgbouncer's `[0-9a-z_]`, any case).
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whitespace-separated words of a command.
struct Words<'a> {
    rest: &'a str,
}

impl<'a> Words<'a> {
    /// The next bare word (letters, digits and `_`).
    fn word(&mut self) -> Option<&'a str> {
        let rest = self.rest.trim_start();
        let end = rest.find(|c: char| !is_word_char(c)).unwrap_or(rest.len());
        if end == 0 {
            self.rest = rest;
            return None;
        }
        self.rest = &rest[end..];
        Some(&rest[..end])
    }

    /// An argument: a bare word, or `"double quoted"` (`""` for a quote);
    /// at most 63 characters.
    fn identifier(&mut self) -> Result<Option<String>, ParseError> {
        let rest = self.rest.trim_start();
        let name = if let Some(inner) = rest.strip_prefix('"') {
            let mut name = String::new();
            let mut chars = inner.char_indices().peekable();
            loop {
                match chars.next() {
                    Some((_, '"')) if chars.peek().map(|(_, c)| *c) == Some('"') => {
                        chars.next();
                        name.push('"');
                    }
                    Some((at, '"')) => {
                        self.rest = &inner[at + 1..];
                        break name;
                    }
                    Some((_, c)) => name.push(c),
                    None => return Err(ParseError::Usage("a closing \"")),
                }
            }
        } else {
            match self.word() {
                Some(word) => word.to_string(),
                None => return Ok(None),
            }
        };
        if name.len() > 63 {
            return Err(ParseError::TooLong);
        }
        Ok(Some(name))
    }

    /// Nothing may follow.
    fn end(&mut self, usage: &'static str) -> Result<(), ParseError> {
        if self.rest.trim().is_empty() {
            Ok(())
        } else {
            Err(ParseError::Usage(usage))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_in_any_case_with_optional_semicolons() {
        assert_eq!(parse("show pools;"), Ok(Command::Show("pools".into())));
        assert_eq!(
            parse("  SHOW  STATS_TOTALS "),
            Ok(Command::Show("stats_totals".into()))
        );
        assert_eq!(parse("PAUSE"), Ok(Command::Pause(None)));
        assert_eq!(parse("pause app"), Ok(Command::Pause(Some("app".into()))));
        assert_eq!(
            parse("RESUME \"My Db\""),
            Ok(Command::Resume(Some("My Db".into())))
        );
        assert_eq!(parse("kill_client 42"), Ok(Command::KillClient(42)));
        assert_eq!(parse("DISABLE app"), Ok(Command::Disable("app".into())));
        assert_eq!(
            parse("shutdown wait_for_clients"),
            Ok(Command::Shutdown(ShutdownMode::WaitForClients))
        );
        assert_eq!(
            parse("SHUTDOWN"),
            Ok(Command::Shutdown(ShutdownMode::Immediate))
        );
        assert_eq!(parse("reload;"), Ok(Command::Reload));
        assert_eq!(parse("WAIT_CLOSE"), Ok(Command::WaitClose(None)));
    }

    #[test]
    fn set_takes_bare_or_quoted_values() {
        let set = |key: &str, value: &str| {
            Ok(Command::Set {
                key: key.into(),
                value: value.into(),
            })
        };
        assert_eq!(
            parse("SET default_pool_size = 30"),
            set("default_pool_size", "30")
        );
        assert_eq!(
            parse("set query_timeout to '2.5'"),
            set("query_timeout", "2.5")
        );
        assert!(
            parse("SET query_timeout = 1.5").is_err(),
            "a bare value is a word"
        );
        assert_eq!(parse("SELECT version"), Ok(Command::Show("version".into())));
        assert_eq!(parse("SHOW \"pools\""), Ok(Command::Show("pools".into())));
        assert_eq!(
            parse(&format!("PAUSE {}", "d".repeat(64))),
            Err(ParseError::TooLong)
        );
        assert_eq!(
            parse("SET server_reset_query = 'DISCARD ''ALL'''"),
            set("server_reset_query", "DISCARD 'ALL'")
        );
        assert!(parse("SET x =").is_err());
        assert!(parse("SET x = 'open").is_err());
    }

    #[test]
    fn mistakes_say_what_was_expected() {
        assert_eq!(parse("FOO"), Err(ParseError::Unknown));
        assert_eq!(parse(""), Err(ParseError::Unknown));
        assert_eq!(parse("DISABLE"), Err(ParseError::Usage("DISABLE <db>")));
        assert_eq!(
            parse("KILL_CLIENT x"),
            Err(ParseError::Usage("KILL_CLIENT <id>"))
        );
        assert_eq!(parse("PAUSE a b"), Err(ParseError::Usage("PAUSE [<db>]")));
        assert_eq!(parse("SHOW"), Err(ParseError::Usage("SHOW <item>")));
        assert!(Command::Show("pools".into()).is_read_only());
        assert!(!Command::Pause(None).is_read_only());
    }
}
