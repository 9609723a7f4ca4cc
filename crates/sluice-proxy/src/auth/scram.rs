//! Both sides of SCRAM-SHA-256: the server side a client logs in to (with
//! SCRAM-SHA-256-PLUS channel binding over TLS), and the client side the
//! gateway logs in to servers with by pass-through (ClientKey and
//! ServerKey instead of a password).

use super::*;

/// Why a SCRAM exchange failed (the client only hears "password authentication failed").
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("wrong password")]
    WrongProof,
}

/// A client's proof checked out.
#[derive(Debug)]
pub struct ScramVerified {
    /// The server-final message (`v=<signature>`) for `AuthenticationSASLFinal`.
    pub server_final: String,
    /// The ClientKey the proof revealed (for SCRAM pass-through).
    pub client_key: [u8; 32],
}

/// The server side of one SCRAM-SHA-256 exchange.
pub struct ScramServer<'a> {
    secret: &'a ScramSecret,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    /// The `c=` attribute the client-final message must carry.
    channel: String,
}

impl<'a> ScramServer<'a> {
    /// Reads the client-first message (`n,,n=...,r=<nonce>`) of a client
    /// without TLS, and returns the server-first message to send in
    /// `AuthenticationSASLContinue`.
    pub fn start(
        secret: &'a ScramSecret,
        client_first: &[u8],
    ) -> Result<(Self, String), ScramError> {
        Self::start_bound(secret, client_first, None, false)
    }

    /// As [`ScramServer::start`], over TLS: `binding` is the
    /// `tls-server-end-point` data when the gateway offered
    /// SCRAM-SHA-256-PLUS, and `plus` whether the client chose it.
    pub fn start_bound(
        secret: &'a ScramSecret,
        client_first: &[u8],
        binding: Option<&[u8]>,
        plus: bool,
    ) -> Result<(Self, String), ScramError> {
        let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed("utf-8"))?;
        // gs2 header: cbind flag, authzid, then the bare message
        let mut parts = text.splitn(3, ',');
        let (flag, _authzid) = (parts.next().unwrap_or(""), parts.next());
        let bare = parts.next().ok_or(ScramError::Malformed("client-first"))?;
        let gs2_header = &text[..text.len() - bare.len()];
        let channel = match (flag, binding) {
            // `y`: the client could bind but thinks the server cannot; when
            // the server offered PLUS that is a downgrade (RFC 5802 6).
            ("n", _) if !plus => BASE64.encode(gs2_header),
            ("y", None) if !plus => BASE64.encode(gs2_header),
            ("p=tls-server-end-point", Some(data)) if plus => {
                BASE64.encode([gs2_header.as_bytes(), data].concat())
            }
            ("n" | "y", _) | ("p=tls-server-end-point", _) => {
                return Err(ScramError::ChannelBinding)
            }
            (f, _) if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed("gs2 header")),
        };
        let client_nonce = bare
            .split(',')
            .find_map(|attr| attr.strip_prefix("r="))
            .filter(|n| !n.is_empty())
            .ok_or(ScramError::Malformed("client nonce"))?;
        let mut random = [0u8; 18];
        rand::thread_rng().fill_bytes(&mut random);
        let nonce = format!("{client_nonce}{}", BASE64.encode(random));
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&secret.salt),
            secret.iterations
        );
        Ok((
            ScramServer {
                secret,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
                channel,
            },
            server_first,
        ))
    }

    /// Checks the client-final message (`c=...,r=...,p=<proof>`) and returns
    /// the server-final message and the ClientKey the proof revealed.
    pub fn finish(self, client_final: &[u8]) -> Result<ScramVerified, ScramError> {
        let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed("utf-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("client proof"))?;
        let nonce = without_proof
            .split(',')
            .find_map(|attr| attr.strip_prefix("r="))
            .ok_or(ScramError::Malformed("client-final nonce"))?;
        if nonce != self.nonce {
            return Err(ScramError::Malformed("nonce mismatch"));
        }
        let channel = without_proof
            .split(',')
            .find_map(|attr| attr.strip_prefix("c="))
            .ok_or(ScramError::Malformed("channel binding attribute"))?;
        if channel != self.channel {
            return Err(ScramError::ChannelBinding);
        }
        let proof: [u8; 32] = BASE64
            .decode(proof)
            .ok()
            .and_then(|p| p.try_into().ok())
            .ok_or(ScramError::Malformed("proof encoding"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac(&self.secret.stored_key, &[auth_message.as_bytes()]);
        let mut client_key = [0u8; 32];
        for i in 0..32 {
            client_key[i] = proof[i] ^ client_signature[i];
        }
        let stored: [u8; 32] = Sha256::digest(client_key).into();
        if !constant_time_eq(&stored, &self.secret.stored_key) {
            return Err(ScramError::WrongProof);
        }
        let server_signature = hmac(&self.secret.server_key, &[auth_message.as_bytes()]);
        Ok(ScramVerified {
            server_final: format!("v={}", BASE64.encode(server_signature)),
            client_key,
        })
    }
}

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

/// Splits a SASLInitialResponse body into mechanism and client-first data.
pub fn decode_sasl_initial(body: &[u8]) -> Option<(&[u8], &[u8])> {
    let (mechanism, rest) = crate::protocol::cstr(body)?;
    let len = i32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    let data = &rest[4..];
    if len < 0 || len as usize != data.len() {
        return None;
    }
    Some((mechanism, data))
}
