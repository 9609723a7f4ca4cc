//! `auth_type = "hba"` against a real PostgreSQL: the fixture HBA file
//! (`tests/fixtures/hba/hba.conf`) decides each login's method, which real
//! clients (psql, tokio-postgres) go through; the authentication request the
//! gateway sends first is read off the wire to see which method it chose.
//! A broken file is refused at start and on reload, where the old rules keep
//! serving.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::{cluster, create_role, role_with_secret, TestGateway, USERLIST};
use sluice_cluster::Cluster;
use sluice_proxy::auth::md5_hex;
use sluice_proxy::Config;

/// Users with a server role whose password is their name.
const ROLES: &[&str] = &[
    "h_trust",
    "h_reject",
    "h_md5",
    "h_scram",
    "h_password",
    "h_listed",
    "h_first",
    "h_nomatch",
    "h_cert",
];

/// What the gateway answers first to a startup packet.
#[derive(Debug, PartialEq)]
enum Answer {
    /// An Authentication message: 0 ok, 3 cleartext password, 5 md5, 10 SASL.
    Auth(i32),
    /// An ErrorResponse: its SQLSTATE and message.
    Error(String, String),
}

/// Sends a startup packet for `user` and `database` and reads the first answer.
fn first_answer(port: u16, user: &str, database: &str) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    // Only a guard against a hang, never a measured time.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut body = 196608i32.to_be_bytes().to_vec();
    for (key, value) in [("user", user), ("database", database)] {
        body.extend(key.as_bytes());
        body.push(0);
        body.extend(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    packet.extend(body);
    stream.write_all(&packet).unwrap();
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).expect("an answer");
    let len = i32::from_be_bytes(header[1..5].try_into().unwrap()) as usize - 4;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).unwrap();
    match header[0] {
        b'R' => Answer::Auth(i32::from_be_bytes(payload[..4].try_into().unwrap())),
        b'E' => {
            let (mut code, mut message) = (String::new(), String::new());
            for field in payload.split(|&b| b == 0).filter(|f| !f.is_empty()) {
                let text = String::from_utf8_lossy(&field[1..]).into_owned();
                match field[0] {
                    b'C' => code = text,
                    b'M' => message = text,
                    _ => {}
                }
            }
            Answer::Error(code, message)
        }
        other => panic!("unexpected message {:?}", other as char),
    }
}

fn refused(code: &str, message: &str) -> Answer {
    Answer::Error(code.into(), message.into())
}

/// The fixture HBA file and its names file, copied to a folder of their own
/// (so a test may rewrite them).
fn fixture_copy() -> tempfile::TempDir {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hba");
    let dir = tempfile::tempdir().unwrap();
    for name in ["hba.conf", "hba-users.txt"] {
        std::fs::copy(fixtures.join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// A gateway with `auth_type = "hba"` and the HBA file at `hba`. Its
/// auth_file: every role of [`ROLES`] with its name as password; `h_secret`
/// with only the server's SCRAM secret (password `secret-pw`); the console
/// user `h_admin` with only an md5 hash (password `admin-pw`).
fn gateway(cluster: &Cluster, hba: &Path) -> TestGateway {
    // The tests of this binary share the cluster: its roles are made once.
    static SECRET: OnceLock<String> = OnceLock::new();
    let secret = SECRET.get_or_init(|| {
        for role in ROLES {
            create_role(cluster, role);
        }
        role_with_secret(cluster, "h_secret", "secret-pw")
    });
    let mut userlist = USERLIST.to_string();
    for role in ROLES {
        userlist.push_str(&format!("\"{role}\" \"{role}\"\n"));
    }
    userlist.push_str(&format!("\"h_secret\" \"{secret}\"\n"));
    userlist.push_str(&format!(
        "\"h_admin\" \"md5{}\"\n",
        md5_hex(&[b"admin-pw", b"h_admin"])
    ));
    let proxy = format!(
        "auth_type = \"hba\"\nauth_hba_file = \"{}\"\nadmin_users = [\"h_admin\"]",
        hba.display()
    );
    TestGateway::start_with_userlist(cluster, &proxy, "", &userlist)
}

/// psql as `user` on `database`: (success, stdout, stderr).
fn psql(
    gw: &TestGateway,
    database: &str,
    user: &str,
    password: &str,
    sql: &str,
) -> (bool, String, String) {
    let conninfo = gw
        .conninfo(user, password)
        .replace("dbname=app", &format!("dbname={database}"));
    common::psql_at(&conninfo, sql)
}

fn logs_in(gw: &TestGateway, user: &str, password: &str) {
    let (ok, out, stderr) = psql(gw, "app", user, password, "SELECT current_user");
    assert!(ok, "{user}: {stderr}");
    assert_eq!(out, user);
}

fn is_refused(gw: &TestGateway, user: &str, password: &str, expected: &str) {
    let (ok, _, stderr) = psql(gw, "app", user, password, "SELECT 1");
    assert!(!ok, "{user} logged in");
    assert!(stderr.contains(expected), "{user}: {stderr}");
}

#[test]
fn each_line_decides_the_authentication_the_gateway_asks_for() {
    let cluster = cluster();
    let rules = fixture_copy();
    let gw = gateway(&cluster, &rules.path().join("hba.conf"));
    let ask = |user: &str| first_answer(gw.port, user, "app");
    // hostssl (line 8, trust for all) does not match these plaintext logins.
    assert_eq!(ask("h_trust"), Answer::Auth(0));
    assert_eq!(ask("h_md5"), Answer::Auth(5));
    assert_eq!(ask("h_scram"), Answer::Auth(10));
    assert_eq!(ask("h_password"), Answer::Auth(3));
    assert_eq!(ask("h_secret"), Answer::Auth(3));
    assert_eq!(ask("h_listed"), Answer::Auth(5));
    assert_eq!(ask("h_reject"), refused("08P01", "login rejected"));
    // First match wins: h_first's reject line comes before its trust line.
    assert_eq!(ask("h_first"), refused("08P01", "login rejected"));
    let no_line = refused("08P01", "no authentication method is found");
    assert_eq!(ask("h_nomatch"), no_line);
    // h_v6's line is for ::1 only; the tests connect from 127.0.0.1.
    assert_eq!(ask("h_v6"), no_line);
    assert_eq!(first_answer(gw.port, "h_trust", "other"), no_line);
    assert_eq!(
        ask("h_cert"),
        refused("08P01", "certificate authentication failed")
    );
    // The console is matched by its database name like any other.
    assert_eq!(
        first_answer(gw.port, "h_admin", "pgbouncer"),
        Answer::Auth(3)
    );
    assert_eq!(first_answer(gw.port, "h_admin", "app"), no_line);
}

#[test]
fn real_clients_log_in_by_each_method_or_hear_why_not() {
    let cluster = cluster();
    let rules = fixture_copy();
    let gw = gateway(&cluster, &rules.path().join("hba.conf"));
    let failed = |user: &str| format!("password authentication failed for user \"{user}\"");

    // trust: no password asked, so a wrong one does not matter.
    logs_in(&gw, "h_trust", "not-its-password");
    for user in ["h_md5", "h_scram", "h_password", "h_listed"] {
        logs_in(&gw, user, user);
        is_refused(&gw, user, "wrong", &failed(user));
    }
    // password against an entry that is only the server's SCRAM secret: the
    // cleartext password checks out against it, and teaches the gateway the
    // ClientKey to log in to the server with.
    is_refused(&gw, "h_secret", "wrong", &failed("h_secret"));
    logs_in(&gw, "h_secret", "secret-pw");
    is_refused(&gw, "h_reject", "h_reject", "login rejected");
    is_refused(&gw, "h_first", "h_first", "login rejected");
    is_refused(
        &gw,
        "h_nomatch",
        "h_nomatch",
        "no authentication method is found",
    );

    // The console: password against an md5-only entry.
    let (ok, out, stderr) = psql(&gw, "pgbouncer", "h_admin", "admin-pw", "SHOW VERSION");
    assert!(ok, "{stderr}");
    assert!(out.contains("PgBouncer"), "{out}");
    let (ok, _, stderr) = psql(&gw, "pgbouncer", "h_admin", "wrong", "SHOW VERSION");
    assert!(!ok && stderr.contains(&failed("h_admin")), "{stderr}");

    // tokio-postgres: the same methods, and the SQLSTATEs of the refusals.
    gw.runtime.block_on(async {
        for user in ["h_md5", "h_scram", "h_password"] {
            let (client, connection) =
                tokio_postgres::connect(&gw.conninfo(user, user), tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| panic!("{user}: {e}"));
            tokio::spawn(connection);
            let row = client
                .query_one("SELECT current_user::text", &[])
                .await
                .unwrap();
            assert_eq!(row.get::<_, String>(0), user);
        }
        let code = |user: &'static str, password: &'static str| {
            let conninfo = gw.conninfo(user, password);
            async move {
                let error = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
                    .await
                    .map(|_| ())
                    .expect_err("refused");
                let db = error.as_db_error().expect("a server error").clone();
                (db.code().code().to_string(), db.message().to_string())
            }
        };
        assert_eq!(
            code("h_password", "wrong").await,
            ("28P01".into(), failed("h_password"))
        );
        assert_eq!(
            code("h_reject", "h_reject").await,
            ("08P01".into(), "login rejected".into())
        );
        assert_eq!(
            code("h_nomatch", "h_nomatch").await,
            ("08P01".into(), "no authentication method is found".into())
        );
    });
}

/// A configuration for `auth_type = "hba"` with the HBA file `hba_text`, in `dir`.
fn config_with_hba(dir: &Path, hba_text: &str) -> PathBuf {
    std::fs::write(dir.join("hba.conf"), hba_text).unwrap();
    std::fs::write(dir.join("userlist.txt"), "\"app\" \"app\"\n").unwrap();
    let path = dir.join("gw.toml");
    std::fs::write(
        &path,
        "[proxy]\nauth_type = \"hba\"\nauth_hba_file = \"hba.conf\"\nauth_file = \"userlist.txt\"\n\
         [databases.app]\nhost = \"127.0.0.1\"\n",
    )
    .unwrap();
    path
}

#[test]
fn a_broken_hba_file_at_start_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let hba = dir.path().join("hba.conf");
    // Config::load is what `sluice proxy` runs at start (and exits 2 on).
    let cases = [
        ("host all all 10.0.0.0/33 md5", "invalid mask \"/33\""),
        (
            "host all all all ldap ldapserver=x",
            "ldap is not supported by sluice",
        ),
        (
            "hostgssenc all all all md5",
            "unknown connection type \"hostgssenc\"",
        ),
    ];
    for (line, message) in cases {
        let config = config_with_hba(
            dir.path(),
            &format!("# rules\nhost app app all md5\n{line}\n"),
        );
        let error = Config::load(&config).expect_err(line).to_string();
        assert!(
            error.starts_with(&format!("{}:3: {message}", hba.display())),
            "{line}: {error}"
        );
    }
}

#[test]
fn a_reload_that_breaks_the_hba_file_keeps_the_old_rules_serving() {
    let cluster = cluster();
    let rules = fixture_copy();
    let hba = rules.path().join("hba.conf");
    let gw = gateway(&cluster, &hba);
    let shared = gw.gateway.as_ref().unwrap().shared.clone();
    let original = std::fs::read_to_string(&hba).unwrap();
    is_refused(&gw, "h_reject", "h_reject", "login rejected");

    // A broken line: the reload is refused, naming the file and line.
    let broken = original.replace(
        "host       app        h_md5                 127.0.0.1/32           md5",
        "host       app        h_md5                 127.0.0.1/32           md6",
    );
    assert_ne!(broken, original);
    std::fs::write(&hba, &broken).unwrap();
    let error = shared.reload().expect_err("broken HBA file").to_string();
    assert!(
        error.starts_with(&format!("{}:14: unsupported method \"md6\"", hba.display())),
        "{error}"
    );
    // The console's RELOAD says so as pgbouncer does.
    let (ok, _, stderr) = psql(&gw, "pgbouncer", "h_admin", "admin-pw", "RELOAD");
    assert!(
        !ok && stderr.contains("RELOAD failed, see logs"),
        "{stderr}"
    );
    // The old rules still serve.
    logs_in(&gw, "h_md5", "h_md5");
    logs_in(&gw, "h_trust", "anything");
    is_refused(&gw, "h_reject", "h_reject", "login rejected");

    // A good file is read at the next reload: h_reject is trusted now.
    let trusting = original.replace(
        "h_reject              127.0.0.0  255.0.0.0   reject",
        "h_reject              127.0.0.0  255.0.0.0   trust",
    );
    assert_ne!(trusting, original);
    std::fs::write(&hba, trusting).unwrap();
    shared.reload().expect("reload");
    logs_in(&gw, "h_reject", "anything");
}
