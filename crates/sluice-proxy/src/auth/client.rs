//! The client side of SCRAM-SHA-256 keyed by ClientKey and ServerKey
//! instead of a password: how the gateway logs in to servers by SCRAM
//! pass-through (see the parent module).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{constant_time_eq, hmac};

/// What the client side of SCRAM needs instead of the password.
#[derive(Clone)]
pub struct ScramKeys {
    pub client_key: [u8; 32],
    pub server_key: [u8; 32],
    /// The salt and iteration count of the secret the keys belong to; the
    /// server must offer exactly these.
    pub salt: Vec<u8>,
    pub iterations: u32,
}

/// Why the gateway's own SCRAM login (with [`ScramKeys`]) failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramClientError {
    #[error("malformed SCRAM message from the server: {0}")]
    Malformed(&'static str),
    /// The server's secret for the role is not the auth_file's.
    #[error(
        "the server's SCRAM secret differs from the auth_file's (salt or iterations: server i={server_iterations}, auth_file i={file_iterations})"
    )]
    SecretMismatch {
        server_iterations: u32,
        file_iterations: u32,
    },
    #[error("the server's SCRAM signature is wrong")]
    ServerSignature,
    #[error("the server refused: {0}")]
    ServerError(String),
}

/// The client side of one SCRAM-SHA-256 exchange, keyed by ClientKey and
/// ServerKey instead of a password (SCRAM pass-through). Used like
/// `postgres_protocol`'s `ScramSha256`: send [`message`](Self::message),
/// feed the server-first to [`update`](Self::update), send the new message,
/// check the server-final with [`finish`](Self::finish).
pub struct ScramClient {
    keys: ScramKeys,
    nonce: String,
    client_first_bare: String,
    message: String,
    server_signature: Option<[u8; 32]>,
}

impl ScramClient {
    pub fn new(keys: ScramKeys) -> ScramClient {
        let mut random = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut random);
        ScramClient::with_nonce(keys, "", &BASE64.encode(random))
    }

    /// `user` is empty towards PostgreSQL (it takes the startup packet's).
    pub(super) fn with_nonce(keys: ScramKeys, user: &str, nonce: &str) -> ScramClient {
        let client_first_bare = format!("n={user},r={nonce}");
        ScramClient {
            keys,
            nonce: nonce.to_string(),
            message: format!("n,,{client_first_bare}"),
            client_first_bare,
            server_signature: None,
        }
    }

    /// The message to send next: client-first, then client-final.
    pub fn message(&self) -> &[u8] {
        self.message.as_bytes()
    }

    /// Reads the server-first message (`r=...,s=...,i=...`) and prepares the
    /// client-final message with the proof.
    pub fn update(&mut self, server_first: &[u8]) -> Result<(), ScramClientError> {
        let text =
            std::str::from_utf8(server_first).map_err(|_| ScramClientError::Malformed("utf-8"))?;
        let attr = |name: &str| {
            text.split(',')
                .find_map(|a| a.strip_prefix(name))
                .ok_or(ScramClientError::Malformed("server-first"))
        };
        let nonce = attr("r=")?;
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(ScramClientError::Malformed("server nonce"));
        }
        let salt = BASE64
            .decode(attr("s=")?)
            .map_err(|_| ScramClientError::Malformed("salt"))?;
        let iterations: u32 = attr("i=")?
            .parse()
            .map_err(|_| ScramClientError::Malformed("iteration count"))?;
        if salt != self.keys.salt || iterations != self.keys.iterations {
            return Err(ScramClientError::SecretMismatch {
                server_iterations: iterations,
                file_iterations: self.keys.iterations,
            });
        }
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let stored_key: [u8; 32] = Sha256::digest(self.keys.client_key).into();
        let client_signature = hmac(&stored_key, &[auth_message.as_bytes()]);
        let mut proof = [0u8; 32];
        for i in 0..32 {
            proof[i] = self.keys.client_key[i] ^ client_signature[i];
        }
        self.server_signature = Some(hmac(&self.keys.server_key, &[auth_message.as_bytes()]));
        self.message = format!("{without_proof},p={}", BASE64.encode(proof));
        Ok(())
    }

    /// Checks the server-final message (`v=<signature>`): the server knows
    /// the secret too.
    pub fn finish(&self, server_final: &[u8]) -> Result<(), ScramClientError> {
        let expected = self.server_signature.ok_or(ScramClientError::Malformed(
            "server-final before server-first",
        ))?;
        let text =
            std::str::from_utf8(server_final).map_err(|_| ScramClientError::Malformed("utf-8"))?;
        if let Some(error) = text.strip_prefix("e=") {
            return Err(ScramClientError::ServerError(error.to_string()));
        }
        let signature = text
            .split(',')
            .find_map(|a| a.strip_prefix("v="))
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or(ScramClientError::Malformed("server-final"))?;
        if !constant_time_eq(&signature, &expected) {
            return Err(ScramClientError::ServerSignature);
        }
        Ok(())
    }
}
