//! Authentication: who may log in to the gateway, and how the gateway proves
//! itself to servers.
//!
//! Towards clients the gateway is the SCRAM-SHA-256 / md5 *server*, checking
//! against pgbouncer's `auth_file` (`"user" "secret"` lines, where the secret
//! is a plain password, `md5<hex>` or a `SCRAM-SHA-256$...` secret). The
//! server side of SCRAM is small enough to write here with `hmac`/`sha2`
//! (RFC 5802 / RFC 7677); `postgres-protocol` supplies the password-based
//! *client* side that the gateway uses to log in to PostgreSQL (see
//! `backend`), plus `scram_sha_256` to turn a plain password into a secret
//! once at load time.
//!
//! SCRAM pass-through (as in pgbouncer): a user whose auth_file entry is only
//! a SCRAM secret has no password to log in to servers with. But a client's
//! successful proof reveals the secret's ClientKey, and ClientKey plus the
//! secret's ServerKey are all the client side of SCRAM needs, as long as the
//! server stores the same secret (same salt and iteration count: the secret
//! was copied from its `pg_authid`). [`ScramServer::finish`] returns the
//! ClientKey, [`LearnedClientKey`] keeps it with the user's entry, and
//! [`ScramClient`] logs in with it.
//!
//! Which method a client must use is a [`Method`] ([`method`]), decided per
//! login from `auth_type` or from the `auth_hba_file` line the client
//! matches ([`hba`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use rand::RngCore;
use sha2::Sha256;

pub mod hba;
mod method;
pub mod query;

pub use method::{verify_cleartext, Method};

/// An `auth_file` or `auth_hba_file` (or a names file it reads) that
/// cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// A parsed `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for ScramSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScramSecret(..)")
    }
}

impl ScramSecret {
    /// Parses PostgreSQL's stored form; `None` if it is not one.
    pub fn parse(text: &str) -> Option<ScramSecret> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (params, keys) = rest.split_once('$')?;
        let (iterations, salt) = params.split_once(':')?;
        let (stored, server) = keys.split_once(':')?;
        Some(ScramSecret {
            iterations: iterations.parse().ok().filter(|&i| i > 0)?,
            salt: BASE64.decode(salt).ok()?,
            stored_key: BASE64.decode(stored).ok()?.try_into().ok()?,
            server_key: BASE64.decode(server).ok()?.try_into().ok()?,
        })
    }

    /// Derives a secret from a plain password (4096 iterations, random salt).
    pub fn from_password(password: &str) -> ScramSecret {
        let text = postgres_protocol::password::scram_sha_256(password.as_bytes());
        ScramSecret::parse(&text).expect("postgres-protocol produces valid secrets")
    }
}

/// A SCRAM secret's ClientKey once a client has revealed it by logging in.
///
/// The ClientKey is fixed by the secret (its SHA-256 is the StoredKey), so it
/// is learned at most once and shared by every clone: all pools of the user
/// (primary, replicas, min_pool_size) see it as soon as one client logged in.
/// Kept in memory only, like pgbouncer.
#[derive(Clone, Default)]
pub struct LearnedClientKey(Arc<OnceLock<[u8; 32]>>);

impl LearnedClientKey {
    pub fn get(&self) -> Option<[u8; 32]> {
        self.0.get().copied()
    }

    /// Records a ClientKey that a client's proof has just verified.
    pub fn learn(&self, client_key: [u8; 32]) {
        let _ = self.0.set(client_key);
    }
}

impl std::fmt::Debug for LearnedClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.0.get().is_some() {
            "known"
        } else {
            "unknown"
        };
        write!(f, "LearnedClientKey({state})")
    }
}

/// What the gateway needs to log in to servers with SCRAM for a user whose
/// auth_file entry is only a SCRAM secret.
#[derive(Debug, Clone)]
pub struct ScramPassThrough {
    pub secret: ScramSecret,
    pub client_key: LearnedClientKey,
}

impl ScramPassThrough {
    /// The keys for [`ScramClient`], once a client of the user has logged in.
    pub fn keys(&self) -> Option<ScramKeys> {
        Some(ScramKeys {
            client_key: self.client_key.get()?,
            server_key: self.secret.server_key,
            salt: self.secret.salt.clone(),
            iterations: self.secret.iterations,
        })
    }
}

/// What the `auth_file` (or `auth_query`) holds for one user.
#[derive(Clone)]
pub struct UserSecret {
    /// The plain password, when the file has it (needed to log in to md5/SCRAM servers).
    pub password: Option<String>,
    /// `md5(password || user)` as hex, when known (from `md5...` or the password).
    pub md5: Option<String>,
    /// The SCRAM secret, when known (given, or derived from the password).
    pub scram: Option<ScramSecret>,
    /// The SCRAM secret's ClientKey, once a client has logged in with SCRAM.
    pub client_key: LearnedClientKey,
}

impl std::fmt::Debug for UserSecret {
    /// Says which kinds of secret are known, never the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSecret")
            .field("password", &self.password.is_some())
            .field("md5", &self.md5.is_some())
            .field("scram", &self.scram.is_some())
            .field("client_key", &self.client_key)
            .finish()
    }
}

impl UserSecret {
    /// Reads a stored secret as pgbouncer does: a `SCRAM-SHA-256$...`
    /// secret, `md5<32 hex digits>`, or else a plain password.
    pub fn parse(user: &str, secret: String) -> Result<UserSecret, &'static str> {
        let client_key = LearnedClientKey::default();
        if secret.starts_with("SCRAM-SHA-256$") {
            let scram = ScramSecret::parse(&secret).ok_or("malformed SCRAM-SHA-256 secret")?;
            return Ok(UserSecret {
                password: None,
                md5: None,
                scram: Some(scram),
                client_key,
            });
        }
        if secret.len() == 35
            && secret.starts_with("md5")
            && secret[3..].bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Ok(UserSecret {
                password: None,
                md5: Some(secret[3..].to_ascii_lowercase()),
                scram: None,
                client_key,
            });
        }
        Ok(UserSecret {
            md5: Some(md5_hex(&[secret.as_bytes(), user.as_bytes()])),
            scram: Some(ScramSecret::from_password(&secret)),
            password: Some(secret),
            client_key,
        })
    }

    /// Whether `other` is the same secret (a plain password's derived
    /// SCRAM secret has a random salt, so passwords compare as text).
    pub fn same_as(&self, other: &UserSecret) -> bool {
        match (&self.password, &other.password) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.md5 == other.md5 && self.scram == other.scram,
            _ => false,
        }
    }

    /// For a secret-only entry: how to log in to servers without the password.
    pub fn pass_through(&self) -> Option<ScramPassThrough> {
        if self.password.is_some() {
            return None;
        }
        Some(ScramPassThrough {
            secret: self.scram.clone()?,
            client_key: self.client_key.clone(),
        })
    }
}

/// The users of pgbouncer's `auth_file`.
#[derive(Debug, Clone, Default)]
pub struct AuthFile {
    users: HashMap<String, UserSecret>,
}

/// The text of one of the auth files.
pub(crate) fn read_file(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|error| FileError::Read {
        path: path.to_owned(),
        error,
    })
}

impl AuthFile {
    pub fn load(path: &Path) -> Result<AuthFile, FileError> {
        AuthFile::parse(path, &read_file(path)?)
    }

    /// Parses pgbouncer's format: `"user" "secret"` per line, `""` escapes a
    /// quote, lines starting with `;` or `#` and blank lines are ignored.
    pub fn parse(path: &Path, text: &str) -> Result<AuthFile, FileError> {
        let mut users = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let invalid = |message: &str| FileError::Invalid {
                path: path.to_owned(),
                line: index + 1,
                message: message.to_string(),
            };
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
                continue;
            }
            let (user, rest) =
                quoted(trimmed).ok_or_else(|| invalid("expected \"user\" \"password\""))?;
            let (secret, rest) = quoted(rest.trim_start())
                .ok_or_else(|| invalid("expected \"user\" \"password\" (password missing)"))?;
            if !rest.trim().is_empty() && !rest.trim().starts_with('"') {
                return Err(invalid("unexpected text after \"user\" \"password\""));
            }
            if user.is_empty() {
                return Err(invalid("empty user name"));
            }
            let entry = UserSecret::parse(&user, secret).map_err(invalid)?;
            users.insert(user, entry);
        }
        Ok(AuthFile { users })
    }

    pub fn get(&self, user: &str) -> Option<&UserSecret> {
        self.users.get(user)
    }

    /// Every user in the file.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// After a reload: a user whose SCRAM secret did not change keeps the
    /// ClientKey its clients already revealed (SCRAM pass-through goes on
    /// working without a new client login).
    pub fn keep_learned_keys(&mut self, previous: &AuthFile) {
        for (user, secret) in &mut self.users {
            let Some(old) = previous.users.get(user) else {
                continue;
            };
            if secret.scram.is_some() && secret.scram == old.scram {
                secret.client_key = old.client_key.clone();
            }
        }
    }

    /// The alphabetically first user whose plain password is known (the
    /// gateway can log in to servers as that user on its own).
    pub fn first_user_with_password(&self) -> Option<&str> {
        self.users
            .iter()
            .filter(|(_, secret)| secret.password.is_some())
            .map(|(user, _)| user.as_str())
            .min()
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Reads one `"..."` field (with `""` as an escaped quote) off the front of `s`.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut chars = s.strip_prefix('"')?.char_indices().peekable();
    let mut out = String::new();
    let body = &s[1..];
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if let Some((_, '"')) = chars.peek() {
                chars.next();
                out.push('"');
                continue;
            }
            return Some((out, &body[i + 1..]));
        }
        out.push(c);
    }
    None
}

pub fn md5_hex(parts: &[&[u8]]) -> String {
    let mut hasher = Md5::new();
    for part in parts {
        hasher.update(part);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks an md5 PasswordMessage payload (`md5<hex>\0`) against the user's md5 hash.
pub fn md5_verify(stored_md5_hex: &str, salt: [u8; 4], response: &[u8]) -> bool {
    let expected = format!("md5{}", md5_hex(&[stored_md5_hex.as_bytes(), &salt]));
    let response = response.strip_suffix(&[0]).unwrap_or(response);
    constant_time_eq(expected.as_bytes(), response)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hmac(key: &[u8], data: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in data {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

mod scram;

pub use scram::{
    decode_sasl_initial, ScramClient, ScramClientError, ScramError, ScramKeys, ScramServer,
    ScramVerified,
};

#[cfg(test)]
mod tests;
