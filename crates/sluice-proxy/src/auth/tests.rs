use super::*;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

fn file(text: &str) -> Result<AuthFile, FileError> {
    AuthFile::parse(Path::new("userlist.txt"), text)
}

#[test]
fn parses_pgbouncer_userlist() {
    let scram = postgres_protocol::password::scram_sha_256(b"s3cret");
    let text = format!(
        "; comment\n\"app\" \"app\"\n\"md5user\" \"md5{}\"\n\"scram\" \"{scram}\"\n\"q\"\"uote\" \"p\"\"w\"\n",
        md5_hex(&[b"md5pass", b"md5user"])
    );
    let auth = file(&text).unwrap();
    assert_eq!(auth.len(), 4);
    assert_eq!(auth.get("app").unwrap().password.as_deref(), Some("app"));
    assert!(auth.get("md5user").unwrap().scram.is_none());
    assert!(auth.get("scram").unwrap().password.is_none());
    assert_eq!(
        auth.get("q\"uote").unwrap().password.as_deref(),
        Some("p\"w")
    );
}

#[test]
fn bad_lines_name_their_line() {
    let err = file("\"a\" \"b\"\nbob secret\n").unwrap_err().to_string();
    assert_eq!(err, "userlist.txt:2: expected \"user\" \"password\"");
    let err = file("\"a\"\n").unwrap_err().to_string();
    assert!(err.starts_with("userlist.txt:1: "), "{err}");
    let err = file("\"a\" \"SCRAM-SHA-256$x\"\n").unwrap_err().to_string();
    assert!(err.contains("malformed SCRAM"), "{err}");
}

/// Runs a full exchange between postgres-protocol's client and our server.
fn exchange(stored: &ScramSecret, password: &str) -> Result<[u8; 32], ScramError> {
    let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
    let (server, server_first) = ScramServer::start(stored, client.message())?;
    client.update(server_first.as_bytes()).unwrap();
    let verified = server.finish(client.message())?;
    client
        .finish(verified.server_final.as_bytes())
        .expect("client accepts our server signature");
    Ok(verified.client_key)
}

/// RFC 5802's Hi() (PBKDF2 with HMAC-SHA-256), to derive keys in tests.
fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut u = hmac(password.as_bytes(), &[salt, &1u32.to_be_bytes()]);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password.as_bytes(), &[&u]);
        for (o, x) in out.iter_mut().zip(u) {
            *o ^= x;
        }
    }
    out
}

fn keys_from_password(password: &str, secret: &ScramSecret) -> ScramKeys {
    let salted = salted_password(password, &secret.salt, secret.iterations);
    ScramKeys {
        client_key: hmac(&salted, &[b"Client Key"]),
        server_key: hmac(&salted, &[b"Server Key"]),
        salt: secret.salt.clone(),
        iterations: secret.iterations,
    }
}

/// Runs our keyed client against our server.
fn keyed_exchange(keys: ScramKeys, stored: &ScramSecret) -> Result<(), String> {
    let mut client = ScramClient::new(keys);
    let (server, server_first) =
        ScramServer::start(stored, client.message()).map_err(|e| e.to_string())?;
    client
        .update(server_first.as_bytes())
        .map_err(|e| e.to_string())?;
    let verified = server.finish(client.message()).map_err(|e| e.to_string())?;
    client
        .finish(verified.server_final.as_bytes())
        .map_err(|e| e.to_string())
}

#[test]
fn keys_derived_here_match_postgres_protocol_secrets() {
    let secret = ScramSecret::from_password("pencil");
    let keys = keys_from_password("pencil", &secret);
    let stored: [u8; 32] = Sha256::digest(keys.client_key).into();
    assert_eq!(stored, secret.stored_key);
    assert_eq!(keys.server_key, secret.server_key);
}

#[test]
fn server_side_reveals_the_client_key() {
    let secret = ScramSecret::from_password("app");
    let client_key = exchange(&secret, "app").unwrap();
    assert_eq!(client_key, keys_from_password("app", &secret).client_key);
}

/// RFC 7677's SCRAM-SHA-256 example, replayed by the keyed client.
#[test]
fn keyed_client_reproduces_rfc_7677() {
    let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let salted = salted_password("pencil", &salt, 4096);
    let keys = ScramKeys {
        client_key: hmac(&salted, &[b"Client Key"]),
        server_key: hmac(&salted, &[b"Server Key"]),
        salt,
        iterations: 4096,
    };
    let mut client = ScramClient::with_nonce(keys, "user", "rOprNGfwEbeRWgbNEkqO");
    assert_eq!(client.message(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
    client
        .update(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
        .unwrap();
    assert_eq!(
        std::str::from_utf8(client.message()).unwrap(),
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
         p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    );
    assert_eq!(
        client.finish(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
        Ok(())
    );
    assert_eq!(
        client.finish(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        Err(ScramClientError::ServerSignature)
    );
    assert_eq!(
        client.finish(b"e=invalid-proof"),
        Err(ScramClientError::ServerError("invalid-proof".into()))
    );
}

#[test]
fn keyed_client_logs_in_with_a_learned_client_key() {
    let secret = ScramSecret::from_password("app");
    let learned = exchange(&secret, "app").unwrap();
    let entry = UserSecret {
        password: None,
        md5: None,
        scram: Some(secret.clone()),
        client_key: LearnedClientKey::default(),
    };
    let pass_through = entry.pass_through().expect("secret-only entry");
    assert!(pass_through.keys().is_none(), "no client has logged in yet");
    entry.client_key.learn(learned);
    let keys = pass_through.keys().expect("shared with the entry");
    assert_eq!(keyed_exchange(keys, &secret), Ok(()));
}

#[test]
fn keyed_client_with_a_wrong_client_key_is_refused() {
    let secret = ScramSecret::from_password("app");
    let mut keys = keys_from_password("app", &secret);
    keys.client_key[0] ^= 1;
    assert_eq!(keyed_exchange(keys, &secret), Err("wrong password".into()));
    let wrong = keys_from_password("nope", &secret);
    assert_eq!(keyed_exchange(wrong, &secret), Err("wrong password".into()));
}

#[test]
fn keyed_client_refuses_a_server_with_another_salt() {
    let ours = ScramSecret::from_password("app");
    let servers = ScramSecret::from_password("app"); // same password, new salt
    assert_ne!(ours.salt, servers.salt);
    let mut client = ScramClient::new(keys_from_password("app", &ours));
    let (_, server_first) = ScramServer::start(&servers, client.message()).unwrap();
    assert_eq!(
        client.update(server_first.as_bytes()),
        Err(ScramClientError::SecretMismatch {
            server_iterations: 4096,
            file_iterations: 4096
        })
    );
}

#[test]
fn keyed_client_rejects_a_foreign_nonce() {
    let secret = ScramSecret::from_password("app");
    let mut client = ScramClient::new(keys_from_password("app", &secret));
    let err = client.update(b"r=someoneelse,s=AAAA,i=4096").unwrap_err();
    assert_eq!(err, ScramClientError::Malformed("server nonce"));
}

#[test]
fn password_entries_need_no_pass_through() {
    let auth = file("\"app\" \"app\"\n").unwrap();
    assert!(auth.get("app").unwrap().pass_through().is_none());
}

#[test]
fn scram_accepts_the_right_password_only() {
    let secret = ScramSecret::from_password("app");
    assert!(exchange(&secret, "app").is_ok());
    assert_eq!(exchange(&secret, "nope"), Err(ScramError::WrongProof));
}

#[test]
fn scram_rejects_garbage() {
    let secret = ScramSecret::from_password("app");
    assert!(ScramServer::start(&secret, b"garbage").is_err());
    assert!(ScramServer::start(&secret, b"p=tls-server-end-point,,n=,r=x").is_err());
    let (server, _) = ScramServer::start(&secret, b"n,,n=,r=abc").unwrap();
    assert!(server.finish(b"c=biws,r=wrong,p=AAAA").is_err());
}

#[test]
fn md5_challenge() {
    let stored = md5_hex(&[b"md5pass", b"md5user"]);
    let salt = [1, 2, 3, 4];
    let response = postgres_protocol::authentication::md5_hash(b"md5user", b"md5pass", salt);
    assert!(md5_verify(
        &stored,
        salt,
        format!("{response}\0").as_bytes()
    ));
    assert!(!md5_verify(&stored, [4, 3, 2, 1], response.as_bytes()));
}
