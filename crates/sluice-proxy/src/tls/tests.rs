use super::*;

#[test]
fn modes_order_as_libpq() {
    assert!(SslMode::Require.requires_tls() && !SslMode::Prefer.requires_tls());
    assert_eq!(SslMode::parse("verify-full"), Some(SslMode::VerifyFull));
    assert_eq!(SslMode::parse("verify_full"), None);
    assert_eq!(SslMode::VerifyCa.to_string(), "verify-ca");
}

#[test]
fn protocols_are_those_rustls_has() {
    let v = protocol_versions("client_tls_protocols", "secure").unwrap();
    assert_eq!(v.len(), 2);
    let v = protocol_versions("client_tls_protocols", "tlsv1.3").unwrap();
    assert_eq!(v, vec![&rustls::version::TLS13]);
    let err = protocol_versions("client_tls_protocols", "tlsv1.1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "client_tls_protocols: rustls speaks TLS 1.2 and 1.3 only, not tlsv1.1"
    );
    assert!(protocol_versions("x", "sslv3").is_err());
}

#[test]
fn ciphers_by_rustls_or_openssl_names() {
    let p = provider("client_tls_ciphers", "default").unwrap();
    assert!(p.cipher_suites.len() > 3);
    let p = provider(
        "client_tls_ciphers",
        "TLS_AES_256_GCM_SHA384:ECDHE-RSA-AES128-GCM-SHA256",
    )
    .unwrap();
    let names: Vec<String> = p
        .cipher_suites
        .iter()
        .map(|s| format!("{:?}", s.suite()))
        .collect();
    assert_eq!(
        names,
        [
            "TLS13_AES_256_GCM_SHA384",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        ]
    );
    let err = provider("client_tls_ciphers", "HIGH:!aNULL").unwrap_err();
    assert!(err.to_string().contains("no cipher suite `HIGH`"), "{err}");
}

#[test]
fn a_missing_file_names_setting_and_path() {
    let settings = TlsSettings {
        side: Side::Client,
        mode: SslMode::Require,
        key_file: Some(PathBuf::from("/nonexistent/server.key")),
        cert_file: Some(PathBuf::from("/nonexistent/server.crt")),
        ca_file: None,
        protocols: "secure",
        ciphers: "default",
    };
    let err = ClientTls::load(&settings).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("client_tls_cert_file `/nonexistent/server.crt`: "),
        "{err}"
    );
    let none = TlsSettings {
        key_file: None,
        ..settings.clone()
    };
    assert!(ClientTls::load(&none)
        .unwrap_err()
        .to_string()
        .contains("needs client_tls_key_file"));
}

#[test]
fn certificates_made_here_load_and_name_their_subject() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alice");
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("c.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("k.pem"), key.serialize_pem()).unwrap();
    let settings = TlsSettings {
        side: Side::Client,
        mode: SslMode::Require,
        key_file: Some(dir.path().join("k.pem")),
        cert_file: Some(dir.path().join("c.pem")),
        ca_file: Some(dir.path().join("c.pem")),
        protocols: "",
        ciphers: "",
    };
    let tls = ClientTls::load(&settings).unwrap().unwrap();
    assert_eq!(&*tls.end_point, &Sha256::digest(cert.der())[..]);
    assert_eq!(common_name(cert.der()).as_deref(), Some("alice"));
    let server = ServerTls::load(&TlsSettings {
        side: Side::Server,
        mode: SslMode::VerifyFull,
        key_file: None,
        cert_file: None,
        ..settings.clone()
    })
    .unwrap();
    assert!(server.config.is_some());
    // A key file that holds no key: the message names the file, not its bytes.
    let err = read_key("client_tls_key_file", &dir.path().join("c.pem")).unwrap_err();
    assert!(err.to_string().contains("no PEM private key"), "{err}");
}
