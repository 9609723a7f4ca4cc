//! TLS on both sides of the gateway, with pgbouncer's settings and meanings:
//! `client_tls_*` for what clients see (the gateway as a TLS server),
//! `server_tls_*` for connections to PostgreSQL (the gateway as a TLS
//! client, the health checker included).
//!
//! Both are built once per configuration load from the files the settings
//! name, so a reload (SIGHUP, `RELOAD`) that swaps a certificate serves new
//! connections with it while connections already up keep theirs, and a
//! file that does not load fails the reload with a message naming it.
//!
//! Crates: `rustls` 0.23 with its `ring` provider (a memory-safe TLS stack,
//! no OpenSSL and no cmake/nasm at build time), `tokio-rustls` for the
//! async streams, `rustls-pki-types` for PEM files, `x509-parser` for the
//! client certificate's subject (`auth_type = "cert"`) and the signature
//! algorithm that channel binding hashes with.
//!
//! rustls speaks TLS 1.2 and 1.3 only, and names cipher suites by their
//! IANA names: `client_tls_protocols`/`client_tls_ciphers` take pgbouncer's
//! keywords (`secure`, `default`, `all`, ...) or lists of those names, and
//! anything rustls cannot do is a clear error, not silently ignored.

mod files;
pub mod server;
pub mod verify;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use serde::Deserialize;
use sha2::{Digest, Sha256, Sha384, Sha512};

use files::{read_certs, read_key, read_roots};

/// pgbouncer's (and libpq's) TLS modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    #[default]
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// Whether TLS must be used (plain text is refused).
    pub fn requires_tls(self) -> bool {
        self >= SslMode::Require
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// A TLS setting or file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("{setting} `{}`: {message}", path.display())]
    File {
        setting: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{setting}: {message}")]
    Setting {
        setting: &'static str,
        message: String,
    },
}

impl TlsError {
    /// The setting the error is about.
    pub fn setting(&self) -> &'static str {
        match self {
            TlsError::File { setting, .. } | TlsError::Setting { setting, .. } => setting,
        }
    }
}

/// Both sides' TLS from the `[proxy]` settings, file names relative to `folder`.
pub fn load(
    proxy: &crate::config::ProxySettings,
    folder: &Path,
) -> Result<(Option<ClientTls>, ServerTls), TlsError> {
    let client = ClientTls::load(&TlsSettings::of(Side::Client, proxy, folder))?;
    let server = ServerTls::load(&TlsSettings::of(Side::Server, proxy, folder))?;
    Ok((client, server))
}

fn setting_error(setting: &'static str, message: impl Into<String>) -> TlsError {
    TlsError::Setting {
        setting,
        message: message.into(),
    }
}

/// One side's settings, with file names resolved against the config file's folder.
#[derive(Debug, Clone)]
pub struct TlsSettings<'a> {
    /// `client` or `server`: the prefix of the settings' names, for messages.
    pub side: Side,
    pub mode: SslMode,
    pub key_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub protocols: &'a str,
    pub ciphers: &'a str,
}

impl<'a> TlsSettings<'a> {
    /// `side`'s `*_tls_*` settings of `proxy`.
    pub fn of(side: Side, proxy: &'a crate::config::ProxySettings, folder: &Path) -> Self {
        let written = Written::of(side, proxy);
        let [key_file, cert_file, ca_file] = written
            .files
            .map(|(_, name)| name.as_ref().map(|n| folder.join(n)));
        TlsSettings {
            side,
            mode: written.mode,
            key_file,
            cert_file,
            ca_file,
            protocols: written.protocols,
            ciphers: written.ciphers,
        }
    }
}

/// One side's `*_tls_*` settings as written (file names not resolved).
pub struct Written<'a> {
    pub mode: SslMode,
    /// (`key_file`, ...) and the name set for it, in pgbouncer's order.
    pub files: [(&'static str, &'a Option<String>); 3],
    pub protocols: &'a str,
    pub ciphers: &'a str,
}

impl<'a> Written<'a> {
    pub fn of(side: Side, p: &'a crate::config::ProxySettings) -> Written<'a> {
        match side {
            Side::Client => Written {
                mode: p.client_tls_sslmode,
                files: [
                    ("key_file", &p.client_tls_key_file),
                    ("cert_file", &p.client_tls_cert_file),
                    ("ca_file", &p.client_tls_ca_file),
                ],
                protocols: &p.client_tls_protocols,
                ciphers: &p.client_tls_ciphers,
            },
            Side::Server => Written {
                mode: p.server_tls_sslmode,
                files: [
                    ("key_file", &p.server_tls_key_file),
                    ("cert_file", &p.server_tls_cert_file),
                    ("ca_file", &p.server_tls_ca_file),
                ],
                protocols: &p.server_tls_protocols,
                ciphers: &p.server_tls_ciphers,
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    /// `client` or `server`, as the settings' names begin.
    pub fn prefix(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }

    fn name(self, what: &str) -> &'static str {
        // The settings' names, as `&'static str` for the errors.
        match (self, what) {
            (Side::Client, "key") => "client_tls_key_file",
            (Side::Client, "cert") => "client_tls_cert_file",
            (Side::Client, "ca") => "client_tls_ca_file",
            (Side::Client, "protocols") => "client_tls_protocols",
            (Side::Client, "ciphers") => "client_tls_ciphers",
            (Side::Client, _) => "client_tls_sslmode",
            (Side::Server, "key") => "server_tls_key_file",
            (Side::Server, "cert") => "server_tls_cert_file",
            (Side::Server, "ca") => "server_tls_ca_file",
            (Side::Server, "protocols") => "server_tls_protocols",
            (Side::Server, "ciphers") => "server_tls_ciphers",
            (Side::Server, _) => "server_tls_sslmode",
        }
    }
}

/// What the gateway presents to clients that ask for TLS.
#[derive(Clone)]
pub struct ClientTls {
    pub mode: SslMode,
    pub config: Arc<ServerConfig>,
    /// `tls-server-end-point` channel binding data: the hash of the
    /// gateway's certificate (RFC 5929), for SCRAM-SHA-256-PLUS.
    pub end_point: Arc<[u8]>,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("mode", &self.mode)
            .finish()
    }
}

impl ClientTls {
    /// The acceptor for `client_tls_*`; `None` when `client_tls_sslmode = disable`.
    pub fn load(settings: &TlsSettings<'_>) -> Result<Option<ClientTls>, TlsError> {
        let side = settings.side;
        if settings.mode == SslMode::Disable {
            return Ok(None);
        }
        let (Some(key_file), Some(cert_file)) = (&settings.key_file, &settings.cert_file) else {
            return Err(setting_error(
                side.name("mode"),
                format!(
                    "`{}` needs client_tls_key_file and client_tls_cert_file",
                    settings.mode
                ),
            ));
        };
        let provider = provider(side.name("ciphers"), settings.ciphers)?;
        let versions = protocol_versions(side.name("protocols"), settings.protocols)?;
        let chain = read_certs(side.name("cert"), cert_file)?;
        let key = read_key(side.name("key"), key_file)?;
        let verifier = match &settings.ca_file {
            Some(ca_file) => {
                let roots = read_roots(side.name("ca"), ca_file)?;
                let builder =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                // verify-ca/verify-full demand a client certificate; below
                // that, one is checked when offered (for auth_type = cert).
                let builder = if settings.mode >= SslMode::VerifyCa {
                    builder
                } else {
                    builder.allow_unauthenticated()
                };
                builder
                    .build()
                    .map_err(|e| file_error(side.name("ca"), ca_file, e))?
            }
            None if settings.mode >= SslMode::VerifyCa => {
                return Err(setting_error(
                    side.name("mode"),
                    format!("`{}` needs client_tls_ca_file", settings.mode),
                ))
            }
            None => WebPkiClientVerifier::no_client_auth(),
        };
        let end_point = end_point_hash(chain[0].as_ref());
        let config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| setting_error(side.name("protocols"), e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| file_error(side.name("key"), key_file, e))?;
        Ok(Some(ClientTls {
            mode: settings.mode,
            config: Arc::new(config),
            end_point: end_point.into(),
        }))
    }
}

/// How the gateway connects to servers.
#[derive(Clone)]
pub struct ServerTls {
    pub mode: SslMode,
    /// `None` for `disable`.
    pub config: Option<Arc<ClientConfig>>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("mode", &self.mode)
            .finish()
    }
}

impl Default for ServerTls {
    fn default() -> Self {
        ServerTls {
            mode: SslMode::Disable,
            config: None,
        }
    }
}

impl ServerTls {
    pub fn load(settings: &TlsSettings<'_>) -> Result<ServerTls, TlsError> {
        let side = settings.side;
        if settings.mode == SslMode::Disable {
            return Ok(ServerTls::default());
        }
        let provider = provider(side.name("ciphers"), settings.ciphers)?;
        let versions = protocol_versions(side.name("protocols"), settings.protocols)?;
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| setting_error(side.name("protocols"), e.to_string()))?;
        let builder = match (settings.mode, &settings.ca_file) {
            (SslMode::VerifyCa | SslMode::VerifyFull, None) => {
                return Err(setting_error(
                    side.name("mode"),
                    format!("`{}` needs server_tls_ca_file", settings.mode),
                ))
            }
            (mode @ (SslMode::VerifyCa | SslMode::VerifyFull), Some(ca_file)) => {
                let roots = Arc::new(read_roots(side.name("ca"), ca_file)?);
                let verifier =
                    verify::ServerVerifier::new(roots, provider, mode == SslMode::VerifyFull)
                        .map_err(|e| file_error(side.name("ca"), ca_file, e))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(verifier))
            }
            // allow, prefer, require: encrypted, not authenticated (libpq's meaning).
            _ => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verify::ServerVerifier::unchecked(
                    &provider,
                ))),
        };
        let config = match (&settings.key_file, &settings.cert_file) {
            (Some(key_file), Some(cert_file)) => {
                let chain = read_certs(side.name("cert"), cert_file)?;
                let key = read_key(side.name("key"), key_file)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| file_error(side.name("key"), key_file, e))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => {
                return Err(setting_error(
                    side.name("cert"),
                    "server_tls_key_file and server_tls_cert_file go together",
                ))
            }
        };
        Ok(ServerTls {
            mode: settings.mode,
            config: Some(Arc::new(config)),
        })
    }
}

fn file_error(setting: &'static str, path: &Path, error: impl fmt::Display) -> TlsError {
    TlsError::File {
        setting,
        path: path.to_owned(),
        message: error.to_string(),
    }
}

/// What a client's TLS session established, for authentication and `SHOW CLIENTS`.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// `TLSv1.3/TLS13_AES_256_GCM_SHA384`, as `SHOW CLIENTS`' `tls` column shows it.
    pub description: String,
    /// The verified client certificate's subject CN (`auth_type = "cert"`).
    pub peer_common_name: Option<String>,
    /// The gateway's certificate hash, for SCRAM-SHA-256-PLUS.
    pub end_point: Arc<[u8]>,
}

impl TlsInfo {
    pub fn of(connection: &rustls::ServerConnection, tls: &ClientTls) -> TlsInfo {
        let version = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "TLS",
        };
        let suite = connection
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let peer_common_name = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| common_name(cert.as_ref()));
        TlsInfo {
            description: format!("{version}/{suite}"),
            peer_common_name,
            end_point: tls.end_point.clone(),
        }
    }
}

/// The subject CN of a DER certificate.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// RFC 5929's `tls-server-end-point`: the certificate hashed with its
/// signature's hash, SHA-256 for MD5 and SHA-1 (and anything else).
pub fn end_point_hash(der: &[u8]) -> Vec<u8> {
    use x509_parser::oid_registry as oids;
    let algorithm = x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, cert)| cert.signature_algorithm.algorithm.clone());
    match algorithm {
        Some(a) if a == oids::OID_PKCS1_SHA384WITHRSA || a == oids::OID_SIG_ECDSA_WITH_SHA384 => {
            Sha384::digest(der).to_vec()
        }
        Some(a) if a == oids::OID_PKCS1_SHA512WITHRSA || a == oids::OID_SIG_ECDSA_WITH_SHA512 => {
            Sha512::digest(der).to_vec()
        }
        _ => Sha256::digest(der).to_vec(),
    }
}

/// The ring provider, with the cipher suites `ciphers` names.
fn provider(setting: &'static str, ciphers: &str) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    let keyword = ciphers.trim().to_ascii_lowercase();
    if matches!(
        keyword.as_str(),
        "" | "default" | "secure" | "fast" | "normal" | "all" | "compat" | "legacy"
    ) {
        return Ok(Arc::new(provider));
    }
    let known = provider.cipher_suites.clone();
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    for name in ciphers.split([':', ',', ' ']).filter(|n| !n.is_empty()) {
        let suite = known
            .iter()
            .find(|s| suite_names(s).iter().any(|n| n.eq_ignore_ascii_case(name)))
            .ok_or_else(|| {
                let names: Vec<String> = known.iter().map(|s| format!("{:?}", s.suite())).collect();
                setting_error(
                    setting,
                    format!(
                        "rustls has no cipher suite `{name}` (OpenSSL cipher expressions are not \
                         supported); name suites from: {}, or use `default`",
                        names.join(", ")
                    ),
                )
            })?;
        chosen.push(*suite);
    }
    provider.cipher_suites = chosen;
    Ok(Arc::new(provider))
}

/// rustls' name of a suite and its OpenSSL spelling
/// (`TLS13_AES_128_GCM_SHA256` / `TLS_AES_128_GCM_SHA256`,
/// `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256` / `ECDHE-RSA-AES128-GCM-SHA256`).
fn suite_names(suite: &SupportedCipherSuite) -> Vec<String> {
    let rustls_name = format!("{:?}", suite.suite());
    let mut names = vec![rustls_name.clone()];
    if let Some(rest) = rustls_name.strip_prefix("TLS13_") {
        names.push(format!("TLS_{rest}"));
    } else if let Some(rest) = rustls_name.strip_prefix("TLS_") {
        let openssl = rest
            .replace("_WITH_", "_")
            .replace("AES_128", "AES128")
            .replace("AES_256", "AES256")
            .replace("CHACHA20_POLY1305_SHA256", "CHACHA20_POLY1305")
            .replace('_', "-");
        names.push(openssl);
    }
    names
}

/// The protocol versions `protocols` names, of those rustls has.
fn protocol_versions(
    setting: &'static str,
    protocols: &str,
) -> Result<Vec<&'static SupportedProtocolVersion>, TlsError> {
    let (mut tls12, mut tls13, mut named) = (false, false, Vec::new());
    for word in protocols
        .split([',', ':', ' '])
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
    {
        match word.as_str() {
            "secure" | "default" | "all" | "legacy" => (tls12, tls13) = (true, true),
            "tlsv1.2" => tls12 = true,
            "tlsv1.3" => tls13 = true,
            "tlsv1.0" | "tlsv1.1" => named.push(word.clone()),
            other => {
                return Err(setting_error(
                    setting,
                    format!("unknown protocol `{other}` (tlsv1.2, tlsv1.3, secure, all)"),
                ))
            }
        }
    }
    if protocols.trim().is_empty() {
        (tls12, tls13) = (true, true);
    }
    let mut versions = Vec::new();
    if tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err(setting_error(
            setting,
            format!(
                "rustls speaks TLS 1.2 and 1.3 only, not {}",
                named.join(", ")
            ),
        ));
    }
    Ok(versions)
}

#[cfg(test)]
mod tests;
