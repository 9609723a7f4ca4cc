//! How one client must prove who it is: the [`Method`] the login decided
//! (from `auth_type`, or from the `auth_hba_file` line the client matched),
//! and the check of a cleartext password (`password`) against whatever the
//! auth_file holds for the user.

use std::fmt;

use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

use super::{constant_time_eq, md5_hex, ScramServer, UserSecret};

/// The authentication method of one login, with pgbouncer's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// No password; the user must be in the auth_file, if there is one.
    Trust,
    /// Refused: `FATAL 08P01 login rejected`.
    Reject,
    /// The password in clear text (AuthenticationCleartextPassword),
    /// checked against the auth_file's plain password, SCRAM secret or md5 hash.
    Password,
    /// md5; a user whose auth_file entry is only a SCRAM secret gets SCRAM,
    /// as in pgbouncer.
    Md5,
    ScramSha256,
    /// A TLS client certificate naming the user.
    Cert,
    /// The Unix socket peer's OS user (only `local` HBA lines have it).
    Peer,
}

impl Method {
    /// The method an HBA line names, in pgbouncer's spelling.
    pub fn from_hba_name(name: &str) -> Option<Method> {
        Some(match name {
            "trust" => Method::Trust,
            "reject" => Method::Reject,
            "password" => Method::Password,
            "md5" => Method::Md5,
            "scram-sha-256" => Method::ScramSha256,
            "cert" => Method::Cert,
            "peer" => Method::Peer,
            _ => return None,
        })
    }

    /// Whether the method checks a secret from the auth_file.
    pub fn needs_secret(self) -> bool {
        matches!(self, Method::Password | Method::Md5 | Method::ScramSha256)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Trust => "trust",
            Method::Reject => "reject",
            Method::Password => "password",
            Method::Md5 => "md5",
            Method::ScramSha256 => "scram-sha-256",
            Method::Cert => "cert",
            Method::Peer => "peer",
        })
    }
}

/// Checks a cleartext password (a PasswordMessage's text) against `user`'s
/// auth_file entry: the plain password, else the SCRAM secret, else the md5
/// hash. Empty passwords never pass (as in pgbouncer and PostgreSQL). A
/// password checked against a SCRAM secret reveals its ClientKey, which is
/// learned for SCRAM pass-through as a SCRAM login's proof would be.
pub fn verify_cleartext(secret: &UserSecret, user: &str, password: &[u8]) -> bool {
    if password.is_empty() {
        return false;
    }
    if let Some(plain) = &secret.password {
        return !plain.is_empty() && constant_time_eq(plain.as_bytes(), password);
    }
    if let Some(scram) = &secret.scram {
        // One SCRAM exchange in memory between postgres-protocol's client
        // (which normalises the password with SASLprep, as PostgreSQL does)
        // and the gateway's own server side: no second PBKDF2 to get right.
        let mut client = ScramSha256::new(password, ChannelBinding::unsupported());
        let Ok((server, server_first)) = ScramServer::start(scram, client.message()) else {
            return false;
        };
        if client.update(server_first.as_bytes()).is_err() {
            return false;
        }
        return match server.finish(client.message()) {
            Ok(verified) => {
                secret.client_key.learn(verified.client_key);
                true
            }
            Err(_) => false,
        };
    }
    if let Some(md5) = &secret.md5 {
        let computed = md5_hex(&[password, user.as_bytes()]);
        return constant_time_eq(computed.as_bytes(), md5.as_bytes());
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AuthFile;
    use std::path::Path;

    fn entry(file: &AuthFile, user: &str) -> UserSecret {
        file.get(user).unwrap().clone()
    }

    #[test]
    fn cleartext_against_each_kind_of_secret() {
        let scram = postgres_protocol::password::scram_sha_256(b"scram-pw");
        let text = format!(
            "\"plain\" \"plain-pw\"\n\"hashed\" \"md5{}\"\n\"scram\" \"{scram}\"\n\"empty\" \"\"\n",
            md5_hex(&[b"md5-pw", b"hashed"])
        );
        let file = AuthFile::parse(Path::new("userlist.txt"), &text).unwrap();
        let plain = entry(&file, "plain");
        assert!(verify_cleartext(&plain, "plain", b"plain-pw"));
        assert!(!verify_cleartext(&plain, "plain", b"plain-p"));
        let hashed = entry(&file, "hashed");
        assert!(verify_cleartext(&hashed, "hashed", b"md5-pw"));
        assert!(
            !verify_cleartext(&hashed, "other", b"md5-pw"),
            "md5 salts with the user"
        );
        let scram = entry(&file, "scram");
        assert!(!verify_cleartext(&scram, "scram", b"wrong"));
        assert!(
            scram.client_key.get().is_none(),
            "a wrong password teaches nothing"
        );
        assert!(verify_cleartext(&scram, "scram", b"scram-pw"));
        assert!(scram.client_key.get().is_some(), "the ClientKey is learned");
        let empty = entry(&file, "empty");
        assert!(!verify_cleartext(&empty, "empty", b""));
        assert!(!verify_cleartext(&plain, "plain", b""));
    }

    #[test]
    fn names_read_back() {
        for method in [
            Method::Trust,
            Method::Reject,
            Method::Password,
            Method::Md5,
            Method::ScramSha256,
            Method::Cert,
            Method::Peer,
        ] {
            assert_eq!(Method::from_hba_name(&method.to_string()), Some(method));
        }
        assert_eq!(
            Method::from_hba_name("MD5"),
            None,
            "case matters, as in pgbouncer"
        );
    }
}
