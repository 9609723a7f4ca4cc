//! A pgbouncer INI file as it is (tests/fixtures/pgbouncer/, with an
//! `%include` and an auth_file): loaded, converted to TOML, and that TOML
//! loaded to the same settings. No server needed.

use std::path::{Path, PathBuf};

use sluice_proxy::config::{ini, Config};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pgbouncer")
        .join(name)
}

/// `sluice proxy --check`'s output without its first line, which names the file.
fn resolved(config: &Config) -> String {
    let shown = config.to_string();
    let (first, rest) = shown.split_once('\n').unwrap();
    assert!(first.starts_with("# resolved from "), "{first}");
    rest.to_owned()
}

#[test]
fn a_pgbouncer_ini_loads_and_its_toml_loads_to_the_same_settings() {
    let from_ini = Config::load(&fixture("pgbouncer.ini")).unwrap();
    let toml = ini::toml_of_file(&fixture("pgbouncer.ini")).unwrap();
    assert_eq!(
        toml,
        std::fs::read_to_string(fixture("pgbouncer.toml")).unwrap()
    );
    let from_toml = Config::load(&fixture("pgbouncer.toml")).unwrap();
    assert_eq!(resolved(&from_ini), resolved(&from_toml));

    // What the file says arrived, the included file's database and the auth_file's users too.
    assert_eq!(from_ini.auth.len(), 2);
    let analytics = from_ini.pool_settings("analytics", "app").unwrap();
    assert_eq!(
        (analytics.dbname.as_str(), analytics.pool_size),
        ("warehouse", 10)
    );
    let legacy = from_ini.pool_settings("legacy-db", "batch").unwrap();
    assert_eq!(
        (legacy.dbname.as_str(), legacy.pool_size),
        ("Legacy App", 50)
    );
    assert_eq!(from_ini.proxy.listen_addr.get_ref(), "*");
}

#[test]
fn an_error_in_the_ini_file_names_its_line_through_both_readers() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pgbouncer.ini", "pgbouncer-databases.ini", "userlist.txt"] {
        std::fs::copy(fixture(name), dir.path().join(name)).unwrap();
    }
    let main = dir.path().join("pgbouncer.ini");
    let text = std::fs::read_to_string(&main).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("min_pool_size"))
        .unwrap()
        + 1;

    std::fs::write(
        &main,
        text.replace("min_pool_size = 2", "min_pool_size = -2"),
    )
    .unwrap();
    let message = Config::load(&main).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}:{line}: ", main.display())),
        "{message}"
    );
    assert_eq!(ini::toml_of_file(&main).unwrap_err().to_string(), message);

    std::fs::write(&main, text.replace("min_pool_size = 2", "so_reuseport = 1")).unwrap();
    assert_eq!(
        Config::load(&main).unwrap_err().to_string(),
        format!(
            "{}:{line}: unsupported pgbouncer setting \"so_reuseport\": supported by pgbouncer \
             but not by sluice",
            main.display()
        )
    );
}
