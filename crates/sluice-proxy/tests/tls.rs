//! TLS against real clients and a real PostgreSQL with `ssl = on`, with
//! certificates made by the test (rcgen; nothing secret is committed):
//! psql with `sslmode=verify-full` and channel binding, tokio-postgres with
//! a rustls connector, psycopg, client certificate logins, plain text
//! refused, server certificates verified, and a certificate swapped by a
//! reload while connections made with the old one go on.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::{run_bounded, TestGateway, USERLIST};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use sluice_cluster::Cluster;

/// A CA and what it signs, written as PEM files into a folder.
struct Pki {
    dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        Pki {
            dir: dir.to_owned(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes `<file>.crt` and `<file>.key` for `names` (DNS names or IPs), CN `cn`.
    fn issue(&self, file: &str, cn: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (crt, pem_key) = (
            self.dir.join(format!("{file}.crt")),
            self.dir.join(format!("{file}.key")),
        );
        std::fs::write(&crt, cert.pem()).unwrap();
        std::fs::write(&pem_key, key.serialize_pem()).unwrap();
        // libpq refuses a client key others can read.
        set_mode(&pem_key, 0o600);
        (crt, pem_key)
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Turns `ssl = on` on the cluster's primary with a certificate for
/// `db.example` only (so `verify-full` to 127.0.0.1 must fail) from `ca`.
fn enable_server_tls(cluster: &Cluster, ca: &Pki) {
    let data = cluster.primary().data_dir();
    let (crt, key) = ca.issue("pg-server", "db.example", &["db.example"]);
    let owner = std::fs::metadata(data).unwrap();
    for (from, to) in [(crt, "server.crt"), (key, "server.key")] {
        let to = data.join(to);
        std::fs::copy(from, &to).unwrap();
        std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).unwrap();
        set_mode(&to, 0o600);
    }
    cluster
        .sql(cluster.primary(), "ALTER SYSTEM SET ssl = on")
        .unwrap();
    cluster
        .sql(cluster.primary(), "SELECT pg_reload_conf()")
        .unwrap();
    // The reload is asynchronous: wait until a new session sees it.
    for _ in 0..100 {
        if cluster.sql(cluster.primary(), "SHOW ssl").unwrap() == "on" {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!("ssl did not turn on");
}

struct Setup {
    cluster: Cluster,
    certs: tempfile::TempDir,
    ca: Pki,
}

impl Setup {
    fn new() -> Setup {
        let cluster = common::private_cluster();
        cluster
            .sql_in(
                cluster.primary(),
                "app",
                "GRANT ALL ON SCHEMA public TO PUBLIC; GRANT CONNECT ON DATABASE app TO PUBLIC",
            )
            .unwrap();
        let certs = tempfile::tempdir().unwrap();
        let ca = Pki::new(certs.path(), "ca");
        enable_server_tls(&cluster, &ca);
        ca.issue("gateway", "localhost", &["localhost", "127.0.0.1"]);
        Setup { cluster, certs, ca }
    }

    fn path(&self, name: &str) -> String {
        self.certs.path().join(name).display().to_string()
    }

    /// `[proxy]` lines for TLS on both sides, plus `more`.
    fn proxy(&self, client_mode: &str, server_mode: &str, more: &str) -> String {
        format!(
            "client_tls_sslmode = \"{client_mode}\"\nclient_tls_key_file = \"{}\"\n\
             client_tls_cert_file = \"{}\"\nclient_tls_ca_file = \"{}\"\n\
             server_tls_sslmode = \"{server_mode}\"\nserver_tls_ca_file = \"{}\"\n{more}",
            self.path("gateway.key"),
            self.path("gateway.crt"),
            self.path("ca.pem"),
            self.path("ca.pem"),
        )
    }

    fn gateway(&self, proxy: &str) -> TestGateway {
        TestGateway::start_with_userlist(&self.cluster, proxy, "", USERLIST)
    }
}

/// psql against the gateway with `options` added to the connection string.
fn psql(gw: &TestGateway, options: &str, sql: &str) -> (bool, String, String) {
    let conninfo = format!(
        "host=localhost port={} user=app password=app dbname=app connect_timeout=10 {options}",
        gw.port
    );
    common::psql_at(&conninfo, sql)
}

#[test]
fn psql_verify_full_with_channel_binding_through_the_gateway_to_a_tls_server() {
    let setup = Setup::new();
    let gw = setup.gateway(&setup.proxy("require", "verify-ca", "pool_mode = \"transaction\""));
    let root = setup.path("ca.pem");
    // The gateway's end towards the server is TLS too: pg_stat_ssl says so.
    let (ok, out, err) = psql(
        &gw,
        &format!("sslmode=verify-full sslrootcert={root} channel_binding=require"),
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert!(ok, "{err}");
    assert_eq!(out, "t");
    // And the client's end, as psql reports it.
    let (ok, out, err) = psql(
        &gw,
        &format!("sslmode=verify-full sslrootcert={root}"),
        "\\conninfo",
    );
    assert!(ok, "{err}");
    assert!(out.contains("SSL connection (protocol: TLSv1.3"), "{out}");
    // Verification by the client is real: another CA's root fails.
    let other = Pki::new(setup.certs.path(), "other-ca");
    drop(other);
    let (ok, _, err) = psql(
        &gw,
        &format!(
            "sslmode=verify-full sslrootcert={}",
            setup.path("other-ca.pem")
        ),
        "SELECT 1",
    );
    assert!(!ok);
    assert!(err.contains("certificate verify failed"), "{err}");
}

#[test]
fn a_plaintext_client_is_refused_where_tls_is_required() {
    let setup = Setup::new();
    let gw = setup.gateway(&setup.proxy("require", "prefer", ""));
    let (ok, _, err) = psql(&gw, "sslmode=disable", "SELECT 1");
    assert!(!ok);
    assert!(err.contains("SSL required"), "{err}");
    // `prefer` on the client side goes TLS and works.
    let (ok, out, err) = psql(&gw, "sslmode=prefer", "SELECT 1");
    assert!(ok && out == "1", "{err}");
}

#[test]
fn client_certificate_login_with_auth_type_cert() {
    let setup = Setup::new();
    let (crt, key) = setup.ca.issue("client-app", "app", &[]);
    let gw = setup.gateway(&setup.proxy("require", "prefer", "auth_type = \"cert\""));
    let with_cert = format!(
        "sslmode=require sslcert={} sslkey={}",
        crt.display(),
        key.display()
    );
    let (ok, out, err) = psql(&gw, &with_cert, "SELECT current_user");
    assert!(ok, "{err}");
    assert_eq!(out, "app");
    // No certificate: refused.
    let (ok, _, err) = psql(
        &gw,
        "sslmode=require sslcert=/nonexistent sslkey=/nonexistent",
        "SELECT 1",
    );
    assert!(!ok);
    assert!(err.contains("certificate authentication failed"), "{err}");
    // A certificate for another user: refused.
    let (crt, key) = setup.ca.issue("client-other", "someone_else", &[]);
    let (ok, _, err) = psql(
        &gw,
        &format!(
            "sslmode=require sslcert={} sslkey={}",
            crt.display(),
            key.display()
        ),
        "SELECT 1",
    );
    assert!(!ok);
    assert!(err.contains("certificate authentication failed"), "{err}");
}

#[test]
fn verify_full_refuses_a_server_whose_certificate_does_not_match() {
    let setup = Setup::new();
    // The server's certificate names db.example; the gateway connects to 127.0.0.1.
    let gw = setup.gateway(&setup.proxy("disable", "verify-full", ""));
    let (ok, _, err) = psql(&gw, "sslmode=disable", "SELECT 1");
    assert!(!ok);
    assert!(err.contains("certificate not valid for name"), "{err}");
    // verify-ca checks the chain only, and passes.
    let gw = setup.gateway(&setup.proxy("disable", "verify-ca", ""));
    let (ok, out, err) = psql(&gw, "sslmode=disable", "SELECT 1");
    assert!(ok && out == "1", "{err}");
    // A server without TLS is refused under `require`.
    let plain = common::cluster();
    let proxy = "server_tls_sslmode = \"require\"";
    let gw = TestGateway::start_with_userlist(&plain, proxy, "", USERLIST);
    let (ok, _, err) = psql(&gw, "sslmode=disable", "SELECT 1");
    assert!(!ok);
    assert!(err.contains("server does not support TLS"), "{err}");
}

/// A tokio-postgres client over rustls trusting `root` only.
async fn rustls_client(port: u16, root: &Path) -> Result<tokio_postgres::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(root).unwrap();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config);
    let conninfo = format!(
        "host=localhost port={port} user=app password=app dbname=app sslmode=require connect_timeout=10"
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, tls)
        .await
        .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))?;
    tokio::spawn(connection);
    Ok(client)
}

#[test]
fn a_certificate_swapped_by_reload_serves_new_connections_while_old_ones_go_on() {
    let setup = Setup::new();
    let gw = setup.gateway(&setup.proxy("require", "prefer", "pool_mode = \"transaction\""));
    let old_root = setup.certs.path().join("ca.pem");
    let old_client = gw
        .runtime
        .block_on(rustls_client(gw.port, &old_root))
        .expect("tokio-postgres over TLS");
    let one: i32 = gw
        .runtime
        .block_on(old_client.query_one("SELECT 1", &[]))
        .unwrap()
        .get(0);
    assert_eq!(one, 1);
    // SHOW CLIENTS' `tls` column reads the session's protocol and suite.
    let clients = gw.gateway.as_ref().unwrap().shared.clients.all();
    assert!(
        clients.iter().any(|c| c.tls.starts_with("TLSv1.3/TLS13_")),
        "{:?}",
        clients.iter().map(|c| c.tls.clone()).collect::<Vec<_>>()
    );

    // A new CA's certificate in place of the old, then RELOAD.
    let new_ca = Pki::new(setup.certs.path(), "new-ca");
    let (crt, key) = new_ca.issue("gateway-new", "localhost", &["localhost", "127.0.0.1"]);
    std::fs::copy(crt, setup.certs.path().join("gateway.crt")).unwrap();
    std::fs::copy(key, setup.certs.path().join("gateway.key")).unwrap();
    gw.gateway
        .as_ref()
        .unwrap()
        .shared
        .reload()
        .expect("reload");

    let new_root = setup.certs.path().join("new-ca.pem");
    let new_client = gw
        .runtime
        .block_on(rustls_client(gw.port, &new_root))
        .expect("the new certificate serves new connections");
    let two: i32 = gw
        .runtime
        .block_on(new_client.query_one("SELECT 2", &[]))
        .unwrap()
        .get(0);
    assert_eq!(two, 2);
    // The old certificate is gone for new connections...
    let refused = gw.runtime.block_on(rustls_client(gw.port, &old_root));
    assert!(refused.is_err());
    // ...and the connection made with it goes on.
    let three: i32 = gw
        .runtime
        .block_on(old_client.query_one("SELECT 3", &[]))
        .unwrap()
        .get(0);
    assert_eq!(three, 3);

    // A reload with a broken key file is refused and the running one keeps serving.
    std::fs::write(setup.certs.path().join("gateway.key"), "not a key").unwrap();
    let error = gw.gateway.as_ref().unwrap().shared.reload().unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("client_tls_key_file") && message.contains("gateway.key"),
        "{message}"
    );
    assert!(!message.contains("not a key"), "{message}");
    assert!(gw
        .runtime
        .block_on(rustls_client(gw.port, &new_root))
        .is_ok());
}

#[test]
fn psycopg_over_tls() {
    let Some(python) = common::python() else {
        panic!("the project's .venv with psycopg is needed (bash scripts/setup.sh)");
    };
    let setup = Setup::new();
    let gw = setup.gateway(&setup.proxy("verify-ca", "prefer", ""));
    let (crt, key) = setup.ca.issue("client-py", "app", &[]);
    let script = format!(
        "import psycopg\n\
         c = psycopg.connect('host=localhost port={} user=app password=app dbname=app \
         sslmode=verify-full sslrootcert={} sslcert={} sslkey={}')\n\
         print(c.pgconn.ssl_in_use, c.execute('SELECT 40 + 2').fetchone()[0])\n",
        gw.port,
        setup.path("ca.pem"),
        crt.display(),
        key.display()
    );
    let out = run_bounded(Command::new(python).arg("-c").arg(script));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "True 42");
    // verify-ca: a client without a certificate is refused in the handshake.
    let (ok, _, _) = psql(
        &gw,
        "sslmode=require sslcert=/nonexistent sslkey=/nonexistent",
        "SELECT 1",
    );
    assert!(!ok);
}
