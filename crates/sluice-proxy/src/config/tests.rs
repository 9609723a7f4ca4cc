use super::*;
use crate::balance::config::StickyMode;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("gw.toml"), text)
}

const MINIMAL: &str = "[proxy]\nauth_type = \"trust\"\n[databases.app]\nhost = \"127.0.0.1\"\n";

#[test]
fn minimal_file_gets_pgbouncer_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.proxy.listen_port, 6432);
    assert_eq!(config.proxy.pool_mode, PoolMode::Session);
    let pool = config.pool_settings("app", "anyone").unwrap();
    assert_eq!(pool.dbname, "app");
    assert_eq!(pool.port, 5432);
    assert_eq!(pool.pool_size, 20);
    assert!(config.pool_settings("other", "anyone").is_none());
}

#[test]
fn user_overrides_win_over_database_and_defaults() {
    let text =
        "[proxy]\nauth_type = \"trust\"\npool_mode = \"transaction\"\ndefault_pool_size = 7\n\
                [databases.app]\nhost = \"db\"\nport = 5433\ndbname = \"real\"\npool_size = 9\n\
                [users.background]\npool_size = 150\npool_mode = \"session\"\n";
    let config = parse(text).unwrap();
    let app = config.pool_settings("app", "app").unwrap();
    assert_eq!((app.pool_size, app.pool_mode), (9, PoolMode::Transaction));
    assert_eq!(app.dbname, "real");
    let bg = config.pool_settings("app", "background").unwrap();
    assert_eq!((bg.pool_size, bg.pool_mode), (150, PoolMode::Session));
}

#[test]
fn fractional_and_integer_seconds() {
    let text = MINIMAL.to_string();
    let text = text.replace(
        "[proxy]\n",
        "[proxy]\nreserve_pool_timeout = 0.25\nserver_idle_timeout = 30\n",
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.proxy.reserve_pool_timeout.0,
        Duration::from_millis(250)
    );
    assert_eq!(config.proxy.server_idle_timeout.0, Duration::from_secs(30));
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn unknown_key_names_its_line() {
    let text = MINIMAL.replace("[databases.app]\n", "[databases.app]\nhots = \"x\"\n");
    let message = error(&text);
    assert!(message.starts_with("gw.toml:4: "), "{message}");
    assert!(message.contains("hots"), "{message}");
}

#[test]
fn bad_values_name_their_line() {
    let text = MINIMAL.replace("[proxy]\n", "[proxy]\npool_mode = \"statement\"\n");
    assert!(error(&text).starts_with("gw.toml:2: "), "{}", error(&text));
    let text = MINIMAL.replace("[proxy]\n", "[proxy]\n\ndefault_pool_size = 0\n");
    assert!(error(&text).starts_with("gw.toml:3: default_pool_size must be at least 1"));
    let text = MINIMAL.replace("[proxy]\n", "[proxy]\nquery_wait_timeout = -1\n");
    assert!(error(&text).starts_with("gw.toml:2: "), "{}", error(&text));
    let text = MINIMAL.replace("[proxy]\n", "[proxy]\nlisten_addr = \"nowhere\"\n");
    assert!(error(&text).starts_with("gw.toml:2: listen_addr"));
    let text = MINIMAL.replace("[proxy]\n", "[proxy]\nlisten_port = 70000\n");
    assert!(error(&text).starts_with("gw.toml:2: "), "{}", error(&text));
}

#[test]
fn broken_toml_names_its_line() {
    let message = error("[proxy]\nlisten_port = \n");
    assert!(message.starts_with("gw.toml:2: "), "{message}");
}

#[test]
fn password_auth_needs_an_auth_file() {
    let text = MINIMAL.replace("auth_type = \"trust\"\n", "");
    assert!(error(&text).contains("needs an auth_file"));
}

#[test]
fn missing_auth_file_names_the_setting_line() {
    let text = MINIMAL.replace("auth_type = \"trust\"\n", "auth_file = \"nope.txt\"\n");
    let message = error(&text);
    assert!(message.starts_with("gw.toml:2: auth_file"), "{message}");
}

#[test]
fn no_databases_is_an_error() {
    assert!(error("[proxy]\nauth_type = \"trust\"\n").contains("no [databases.NAME]"));
}

#[test]
fn replicas_and_load_balancing_are_read_and_checked_with_lines() {
    let text = "[proxy]\nauth_type = \"trust\"\n[databases.app]\nhost = \"127.0.0.1\"\n\
                replicas = [\"127.0.0.1:5433\", \"127.0.0.1:5434\"]\n\
                [load_balancing]\nsticky = \"key\"\nprimary_only_users = [\"background\"]\n";
    let config = parse(text).unwrap();
    assert_eq!(config.databases["app"].replicas.len(), 2);
    assert_eq!(config.load_balancing.sticky, StickyMode::Key);
    assert!(config.load_balancing.is_primary_only("background"));
    let shown = config.to_string();
    assert!(
        shown.contains("replicas = [\"127.0.0.1:5433\", \"127.0.0.1:5434\"]"),
        "{shown}"
    );
    assert!(
        shown.contains("[load_balancing]\nenabled = true"),
        "{shown}"
    );

    let message = error(&text.replace("5434", "5432"));
    assert_eq!(
        message,
        "gw.toml:3: databases.app.replicas: 127.0.0.1:5432 is the primary itself"
    );
    let message = error(&text.replace("\"127.0.0.1:5434\"", "\"nohost\""));
    assert!(message.starts_with("gw.toml:5: "), "{message}");
    let message = error(&text.replace("sticky = \"key\"", "sticky = \"always\""));
    assert!(message.starts_with("gw.toml:7: "), "{message}");
    let message = error(&text.replace(
        "sticky = \"key\"",
        "replica_check_interval = 5\nmax_replication_lag_time = 1",
    ));
    assert!(
        message.starts_with("gw.toml:6: load_balancing.max_replication_lag_time"),
        "{message}"
    );
}

#[test]
fn check_output_lists_resolved_pools() {
    let shown = parse(MINIMAL).unwrap().to_string();
    assert!(shown.contains(
        "[databases.app]\nhost = \"127.0.0.1\"\nport = 5432\ndbname = \"app\"\npool_size = 20"
    ));
}

/// A configuration with `proxy` lines in a folder holding `files`.
fn load_in_dir(
    proxy: &str,
    files: &[(&str, &str)],
) -> (tempfile::TempDir, Result<Config, ConfigError>) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("gw.toml");
    std::fs::write(
        &path,
        format!("[proxy]\n{proxy}\n[databases.app]\nhost = \"h\"\n"),
    )
    .unwrap();
    let config = Config::load(&path);
    (dir, config)
}

#[test]
fn auth_type_hba_takes_the_method_from_the_first_matching_line() {
    use crate::auth::hba::Connection;
    use crate::auth::Method;
    let (_dir, config) = load_in_dir(
        "auth_type = \"hba\"\nauth_hba_file = \"hba.conf\"\nauth_file = \"users.txt\"",
        &[
            (
                "hba.conf",
                "host app app all scram-sha-256\nhost app all 10.0.0.0/8 trust\n",
            ),
            ("users.txt", "\"app\" \"app\"\n"),
        ],
    );
    let config = config.unwrap();
    let login = |user| Connection {
        tls: false,
        addr: Some("10.1.1.1".parse().unwrap()),
        database: "app",
        user,
        replication: false,
    };
    let app = config.login_method(&login("app")).unwrap();
    assert_eq!((app.method, app.hba_line), (Method::ScramSha256, Some(1)));
    let other = config.login_method(&login("other")).unwrap();
    assert_eq!((other.method, other.hba_line), (Method::Trust, Some(2)));
    let mut outside = login("other");
    outside.addr = Some("192.0.2.1".parse().unwrap());
    assert_eq!(config.login_method(&outside), None);
    assert!(config
        .to_string()
        .contains("auth_hba_file = \"hba.conf\"  # 2 rules"));

    // Without hba the method is auth_type's, whatever the file says.
    let mut md5 = config.clone();
    md5.proxy.auth_type = AuthType::Md5;
    let decided = md5.login_method(&outside).unwrap();
    assert_eq!((decided.method, decided.hba_line), (Method::Md5, None));
}

#[test]
fn auth_type_hba_needs_its_files() {
    let (_dir, config) = load_in_dir("auth_type = \"hba\"", &[]);
    let message = config.unwrap_err().to_string();
    assert!(
        message.ends_with("gw.toml:1: auth_type = \"hba\" needs an auth_hba_file with the rules"),
        "{message}"
    );

    let (dir, config) = load_in_dir("auth_type = \"hba\"\nauth_hba_file = \"nope.conf\"", &[]);
    let message = config.unwrap_err().to_string();
    let expected = format!(
        "gw.toml:3: auth_hba_file `{}` does not exist",
        dir.path().join("nope.conf").display()
    );
    assert!(message.ends_with(&expected), "{message}");

    // trust and reject lines need no passwords; an md5 line does.
    let (_dir, config) = load_in_dir(
        "auth_type = \"hba\"\nauth_hba_file = \"hba.conf\"",
        &[(
            "hba.conf",
            "host all all all trust\nhost all all all reject\n",
        )],
    );
    assert!(config.unwrap().auth.is_empty());
    let (dir, config) = load_in_dir(
        "auth_type = \"hba\"\nauth_hba_file = \"hba.conf\"",
        &[("hba.conf", "host all all all trust\nhost all all all md5\n")],
    );
    let message = config.unwrap_err().to_string();
    let expected = format!(
        "{}:2 uses md5, which needs an auth_file",
        dir.path().join("hba.conf").display()
    );
    assert!(message.contains(&expected), "{message}");

    // A broken file is refused even before auth_type = "hba" uses it.
    let (dir, config) = load_in_dir(
        "auth_type = \"trust\"\nauth_hba_file = \"hba.conf\"",
        &[(
            "hba.conf",
            "host all all all trust\nhost all all all kerberos\n",
        )],
    );
    let message = config.unwrap_err().to_string();
    let expected = format!(
        "{}:2: unsupported method \"kerberos\"",
        dir.path().join("hba.conf").display()
    );
    assert!(message.starts_with(&expected), "{message}");
}

#[test]
fn set_auth_type_hba_needs_a_loaded_hba_file() {
    let mut config = parse(MINIMAL).unwrap();
    config.proxy.auth_type = AuthType::Hba;
    assert!(config.check_runtime_settings().is_err());
}

#[test]
fn auth_query_settings_resolve_per_database() {
    let text = "[proxy]\nauth_type = \"scram-sha-256\"\nauth_user = \"pgbouncer\"\n\
                [databases.app]\nhost = \"db\"\n\
                [databases.auth]\nhost = \"authdb\"\ndbname = \"postgres\"\n\
                [databases.shop]\nhost = \"db\"\nauth_user = \"shop_auth\"\nauth_dbname = \"auth\"\n\
                auth_query = \"SELECT * FROM lookup($1)\"\n";
    // No auth_file is needed: auth_query users have none, and the
    // auth_user may need no password.
    let config = parse(text).unwrap();
    assert_eq!(
        config.auth_lookup("app"),
        Some(AuthLookup {
            auth_user: "pgbouncer".into(),
            query: DEFAULT_AUTH_QUERY.into(),
            database: "app".into(),
        })
    );
    assert_eq!(
        config.auth_lookup("shop"),
        Some(AuthLookup {
            auth_user: "shop_auth".into(),
            query: "SELECT * FROM lookup($1)".into(),
            database: "auth".into(),
        })
    );
    assert_eq!(config.auth_lookup("nope"), None);
    // Without any auth_user, no lookup.
    assert_eq!(parse(MINIMAL).unwrap().auth_lookup("app"), None);
    let resolved = config.to_string();
    assert!(
        resolved.contains("auth_user = \"pgbouncer\"\n"),
        "{resolved}"
    );
    assert!(
        resolved.contains(
            "auth_user = \"shop_auth\"\nauth_query = \"SELECT * FROM lookup($1)\"\nauth_dbname = \"auth\"\n"
        ),
        "{resolved}"
    );
}

#[test]
fn auth_dbname_must_name_a_configured_database() {
    let text = "[proxy]\nauth_type = \"md5\"\nauth_user = \"a\"\nauth_dbname = \"nowhere\"\n\
                [databases.app]\nhost = \"db\"\n";
    assert_eq!(
        error(text),
        "gw.toml:4: authentication database \"nowhere\" is not configured (auth_dbname names a [databases] entry)"
    );
    let text = "[proxy]\nauth_type = \"trust\"\n[databases.app]\nhost = \"db\"\n\
                auth_user = \"a\"\nauth_dbname = \"gone\"\n";
    assert!(error(text).starts_with("gw.toml:6: authentication database \"gone\""));
    // auth_type md5 with neither an auth_file nor an auth_user: nobody could log in.
    let text = "[proxy]\nauth_type = \"md5\"\n[databases.app]\nhost = \"db\"\n";
    assert!(error(text).contains("needs an auth_file"));
}
