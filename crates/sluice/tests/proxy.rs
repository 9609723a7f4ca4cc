//! `sluice proxy` with a pgbouncer INI file: `--print-toml` and `--check`
//! over the gateway crate's fixture, and the one-line error for a setting
//! sluice does not have.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_error, ok, run, sluice};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sluice-proxy/tests/fixtures/pgbouncer")
        .join(name)
}

#[test]
fn print_toml_prints_the_toml_equivalent_of_a_pgbouncer_ini() {
    let dir = tempfile::tempdir().unwrap();
    let printed = ok(sluice(dir.path())
        .args(["proxy", "--print-toml"])
        .arg(fixture("pgbouncer.ini")));
    let expected = std::fs::read_to_string(fixture("pgbouncer.toml")).unwrap();
    assert_eq!(printed.stdout, expected);

    let checked = ok(sluice(dir.path())
        .args(["proxy", "--check", "--config"])
        .arg(fixture("pgbouncer.ini")));
    assert!(
        checked
            .stdout
            .contains("[databases.analytics]\nhost = \"10.0.0.20\""),
        "{}",
        checked.stdout
    );
}

#[test]
fn an_unsupported_pgbouncer_setting_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let ini =
        "[pgbouncer]\nauth_type = trust\nso_reuseport = 1\n[databases]\napp = host=127.0.0.1\n";
    std::fs::write(dir.path().join("pgbouncer.ini"), ini).unwrap();
    let message = "pgbouncer.ini:3: unsupported pgbouncer setting \"so_reuseport\": \
                   supported by pgbouncer but not by sluice";
    let printed = run(sluice(dir.path()).args(["proxy", "--print-toml", "pgbouncer.ini"]));
    assert_error(&printed, 2, message);
    let served = run(sluice(dir.path()).args(["proxy", "--config", "pgbouncer.ini"]));
    assert_error(&served, 2, message);
}
