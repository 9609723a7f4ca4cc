use super::pgbouncer::{Kind, Place, Target, SETTINGS};
use super::*;
use crate::config::AuthType;
use std::time::Duration;

const MINIMAL: &str = "[pgbouncer]\nauth_type = trust\n[databases]\napp = host=127.0.0.1\n";

fn convert_text(text: &str) -> Result<PgbouncerIni, ConfigError> {
    PgbouncerIni::parse(Path::new("pgb.ini"), text)
}

fn load(text: &str) -> Result<Config, ConfigError> {
    convert_text(text)?.load()
}

fn toml(text: &str) -> String {
    convert_text(text).unwrap().toml
}

/// MINIMAL with `line` added as line 3, in [pgbouncer].
fn with_line(line: &str) -> String {
    MINIMAL.replace(
        "auth_type = trust\n",
        &format!("auth_type = trust\n{line}\n"),
    )
}

fn error(text: &str) -> String {
    load(text).unwrap_err().to_string()
}

#[test]
fn each_kind_of_value_is_read_as_pgbouncer_reads_it() {
    let ok = |kind, raw| convert(kind, raw).unwrap();
    assert_eq!(ok(Kind::Integer, "20"), Value::Integer(20));
    assert_eq!(ok(Kind::Integer, "0x14"), Value::Integer(20));
    assert_eq!(ok(Kind::Integer, "024"), Value::Integer(20));
    assert_eq!(ok(Kind::Integer, "-1"), Value::Integer(-1));
    assert_eq!(ok(Kind::Integer, "0"), Value::Integer(0));
    assert!(convert(Kind::Integer, "20x").is_err());
    assert!(convert(Kind::Integer, "08").is_err());
    assert!(convert(Kind::Integer, "").is_err());
    assert_eq!(ok(Kind::Decimal, "010"), Value::Integer(10));
    assert!(convert(Kind::Decimal, "0x10").is_err());
    assert_eq!(ok(Kind::Seconds, "30"), Value::Integer(30));
    assert_eq!(ok(Kind::Seconds, "0.5"), Value::Float(0.5));
    assert_eq!(ok(Kind::Seconds, "1e3"), Value::Integer(1000));
    for bad in ["-1", "nan", "inf", "60s", ""] {
        assert!(convert(Kind::Seconds, bad).is_err(), "{bad}");
    }
    assert_eq!(
        ok(Kind::Text, "DISCARD ALL"),
        Value::String("DISCARD ALL".into())
    );
    assert_eq!(
        ok(Kind::Host, "db.example.com"),
        Value::String("db.example.com".into())
    );
    assert!(convert(Kind::Host, "/var/run/postgresql").is_err());
    assert!(convert(Kind::Host, "@abstract").is_err());
    assert!(convert(Kind::Host, "a,b").is_err());
    assert_eq!(
        ok(Kind::Keyword, "Transaction"),
        Value::String("transaction".into())
    );
    let list = ok(Kind::List, "admin, ops ,,monitor");
    assert_eq!(
        list,
        Value::Array(["admin", "ops", "monitor"].map(|s| s.into()).to_vec())
    );
    assert_eq!(ok(Kind::Flag, "0"), Value::Boolean(false));
    assert_eq!(ok(Kind::Flag, "1"), Value::Boolean(true));
    assert!(convert(Kind::Flag, "yes").is_err());
}

#[test]
fn converts_to_the_gateway_schema_in_the_files_order() {
    let text = "\
;; pgbouncer.ini
[databases]
   # indented comments too
app = host=10.0.0.5 port=5433 dbname=app_prod pool_size=30 pool_mode=Transaction
'my db' = host=db2
reports = host=db3 dbname='monthly reports'

[users]
batch = pool_mode=session pool_size=5

[pgbouncer]
listen_addr = *
listen_port = 6433
auth_type = TRUST
server_reset_query = DISCARD ALL; SELECT 1
reserve_pool_timeout = 2.5
[peers]
";
    assert_eq!(
        toml(text),
        "\
# pgb.ini (pgbouncer's format) as sluice reads it

[proxy]
listen_addr = \"*\"
listen_port = 6433
auth_type = \"trust\"
server_reset_query = \"DISCARD ALL; SELECT 1\"
reserve_pool_timeout = 2.5

[databases.app]
host = \"10.0.0.5\"
port = 5433
dbname = \"app_prod\"
pool_size = 30
pool_mode = \"transaction\"

[databases.\"my db\"]
host = \"db2\"

[databases.reports]
host = \"db3\"
dbname = \"monthly reports\"

[users.batch]
pool_mode = \"session\"
pool_size = 5
"
    );
    let config = load(text).unwrap();
    let app = config.pool_settings("app", "batch").unwrap();
    assert_eq!((app.port, app.pool_size), (5433, 5));
    assert_eq!(config.pool_settings("my db", "x").unwrap().host, "db2");
    assert_eq!(
        config.pool_settings("reports", "x").unwrap().dbname,
        "monthly reports"
    );
    assert_eq!(
        config.proxy.reserve_pool_timeout.0,
        Duration::from_millis(2500)
    );
}

#[test]
fn quoting_as_pgbouncer_does() {
    let text = MINIMAL.to_string() + "\"odd \"\"name\"\"\" = host=h dbname='it''s'\n";
    let config = load(&text).unwrap();
    assert_eq!(
        config.databases["odd \"name\""].dbname.as_deref(),
        Some("it's")
    );
    let open = MINIMAL.to_string() + "x = host=h dbname='open\n";
    assert!(error(&open).starts_with("pgb.ini:5: syntax error in the connection string"));
}

#[test]
fn a_later_line_wins_as_in_pgbouncer() {
    let text = "[pgbouncer]\nauth_type = trust\nlisten_port = 1\nlisten_port = 2\n\
                [databases]\napp = host=first port=1 pool_size=9\napp = host=other\n";
    let config = load(text).unwrap();
    assert_eq!(config.proxy.listen_port, 2);
    // The whole line replaces the earlier one: port and pool_size are back to their defaults.
    let app = config.pool_settings("app", "u").unwrap();
    assert_eq!(
        (app.host.as_str(), app.port, app.pool_size),
        ("other", 5432, 20)
    );
}

#[test]
fn a_comment_after_a_value_is_part_of_the_value_as_in_pgbouncer() {
    assert_eq!(
        error(&with_line("listen_port = 6432 ; the port")),
        "pgb.ini:3: invalid value \"6432 ; the port\" for \"listen_port\": expected an integer \
         (pgbouncer allows comments only on lines of their own)"
    );
}

#[test]
fn unsupported_and_unknown_settings_name_their_line() {
    assert_eq!(
        error(&with_line("so_reuseport = 1")),
        "pgb.ini:3: unsupported pgbouncer setting \"so_reuseport\": supported by pgbouncer but not by sluice"
    );
    assert_eq!(
        error(&with_line("unix_socket_dir = /tmp")),
        "pgb.ini:3: unsupported pgbouncer setting \"unix_socket_dir\": supported by pgbouncer \
         but not by sluice (sluice listens on TCP only)"
    );
    assert_eq!(
        error(&with_line("max_client_con = 10")),
        "pgb.ini:3: unknown pgbouncer setting \"max_client_con\" (did you mean \"max_client_conn\"?)"
    );
    assert_eq!(
        error(&with_line("Listen_Port = 10")),
        "pgb.ini:3: unknown pgbouncer setting \"Listen_Port\" (did you mean \"listen_port\"?)"
    );
    assert_eq!(
        error(&with_line("frobnicate = 1")),
        "pgb.ini:3: unknown pgbouncer setting \"frobnicate\""
    );
    let db = |line: &str| MINIMAL.replace("app = host=127.0.0.1\n", &format!("{line}\n"));
    assert_eq!(
        error(&db("app = host=h user=app password=secret")),
        "pgb.ini:4: unsupported pgbouncer setting \"user\" of database \"app\": supported by \
         pgbouncer but not by sluice (a forced server user: sluice logs in to servers as the \
         client's user)"
    );
    assert_eq!(
        error(&db("app = host=h pool_sise=3")),
        "pgb.ini:4: unknown pgbouncer setting \"pool_sise\" of database \"app\" (did you mean \"pool_size\"?)"
    );
    assert!(error(&db("* = host=h")).starts_with(
        "pgb.ini:4: unsupported pgbouncer setting \"*\" in [databases]: supported by pgbouncer but not by sluice"
    ));
    assert_eq!(
        error(&db("app = host=/var/run/postgresql")),
        "pgb.ini:4: invalid value \"/var/run/postgresql\" for \"host\" of database \"app\": \
         a Unix socket is supported by pgbouncer but not by sluice (TCP only)"
    );
    assert!(error(&db("app = port=5432")).starts_with("pgb.ini:4: database \"app\" has no host="));
    assert!(error(&db("pgbouncer = host=h"))
        .starts_with("pgb.ini:4: database name \"pgbouncer\" is reserved"));
    assert!(
        error(&db("app = host")).starts_with("pgb.ini:4: syntax error in the connection string")
    );
    let user = MINIMAL.to_string() + "[users]\n\nbatch = query_timeout=3\n";
    assert_eq!(
        error(&user),
        "pgb.ini:7: unsupported pgbouncer setting \"query_timeout\" of user \"batch\": \
         supported by pgbouncer but not by sluice"
    );
    let user = MINIMAL.to_string() + "[users]\n\nbatch = max_user_connections=3\n";
    assert_eq!(load(&user).unwrap().max_user_connections("batch"), 3);
    let peers = MINIMAL.to_string() + "[peers]\n1 = host=other\n";
    assert!(error(&peers).starts_with("pgb.ini:6: unsupported pgbouncer setting \"1\" in [peers]"));
}

#[test]
fn values_the_gateway_refuses_name_their_ini_line() {
    assert_eq!(
        error(&with_line("default_pool_size = 0")),
        "pgb.ini:3: default_pool_size must be at least 1"
    );
    assert!(error(&with_line("listen_port = 70000")).starts_with("pgb.ini:3: "));
    assert!(error(&with_line("pool_mode = statement"))
        .starts_with("pgb.ini:3: unknown variant `statement`"));
    assert!(
        error(&with_line("auth_type = plain")).starts_with("pgb.ini:3: unknown variant `plain`")
    );
    assert!(
        error(&with_line("listen_addr = 10.0.0.1,10.0.0.2")).starts_with("pgb.ini:3: listen_addr")
    );
    assert!(error(&with_line("auth_file = missing.txt")).starts_with("pgb.ini:3: auth_file"));
    let db = MINIMAL.replace("host=127.0.0.1", "host=127.0.0.1 pool_size=0");
    assert_eq!(error(&db), "pgb.ini:4: pool_size must be at least 1");
    // No line in particular: the [pgbouncer] header.
    let no_auth = "\n[pgbouncer]\n[databases]\napp = host=h\n";
    assert!(error(no_auth).starts_with("pgb.ini:2: auth_type = \"md5\" needs an auth_file"));
}

#[test]
fn file_structure_errors_name_their_line() {
    assert_eq!(
        error("listen_port = 1\n[pgbouncer]\n"),
        "pgb.ini:1: `listen_port` is set before any [section]"
    );
    assert_eq!(
        error(&(MINIMAL.to_string() + "[pgbouncer]\n")),
        "pgb.ini:5: a second [pgbouncer] section (the first is at pgb.ini:1): merge them into one"
    );
    assert!(error(&(MINIMAL.to_string() + "[proxy]\n"))
        .starts_with("pgb.ini:5: unknown section [proxy]"));
    assert!(error(&(MINIMAL.to_string() + "[users\n")).starts_with("pgb.ini:5: syntax error"));
    assert!(error(&(MINIMAL.to_string() + "just words\n")).starts_with("pgb.ini:5: syntax error"));
    assert_eq!(
        error("[databases]\napp = host=h\n"),
        "pgb.ini:1: no [pgbouncer] section (pgbouncer requires one)"
    );
    assert_eq!(
        error("[pgbouncer]\nauth_type = trust\n\n[databases]\n"),
        "pgb.ini:4: no databases in [databases]: clients would have nowhere to go"
    );
}

#[test]
fn include_reads_another_file_in_place_and_its_errors_name_it() {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join("pgbouncer.ini");
    std::fs::write(
        &main,
        "[pgbouncer]\nauth_type = trust\n%include pools.ini\napp = host=h\n",
    )
    .unwrap();
    // The included file goes on in the includer's section, and back.
    std::fs::write(
        dir.path().join("pools.ini"),
        "default_pool_size = 7\n[databases]\n",
    )
    .unwrap();
    let config = Config::load(&main).unwrap();
    assert_eq!(config.pool_settings("app", "u").unwrap().pool_size, 7);

    std::fs::write(
        dir.path().join("pools.ini"),
        "\ndefault_pool_size = 0\n[databases]\n",
    )
    .unwrap();
    let message = Config::load(&main).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "{}:2: default_pool_size must be at least 1",
            dir.path().join("pools.ini").display()
        )
    );

    std::fs::write(dir.path().join("pools.ini"), "%include pools.ini\n").unwrap();
    let message = Config::load(&main).unwrap_err().to_string();
    assert!(message.contains("nested more than 10 deep"), "{message}");

    std::fs::remove_file(dir.path().join("pools.ini")).unwrap();
    let message = Config::load(&main).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "{}:3: %include pools.ini: cannot read",
            main.display()
        )),
        "{message}"
    );
}

#[test]
fn the_reader_is_chosen_by_name_or_by_a_pgbouncer_section() {
    assert!(is_pgbouncer_ini(
        Path::new("/etc/pgbouncer/pgbouncer.INI"),
        ""
    ));
    assert!(is_pgbouncer_ini(
        Path::new("gw.conf"),
        ";; x\n [pgbouncer] \n"
    ));
    assert!(!is_pgbouncer_ini(
        Path::new("gw.toml"),
        "[proxy]\n[databases.app]\nhost = \"h\"\n"
    ));
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("gw.conf");
    std::fs::write(&conf, MINIMAL).unwrap();
    assert_eq!(
        Config::load(&conf).unwrap().databases["app"].host,
        "127.0.0.1"
    );
}

/// Every `to(...)` line of the table names a key the TOML configuration has.
#[test]
fn every_supported_setting_is_a_key_of_the_toml_configuration() {
    for setting in SETTINGS {
        let Target::Toml(key, kind) = setting.target else {
            continue;
        };
        let sample = match kind {
            Kind::Integer | Kind::Decimal | Kind::Seconds => "2048",
            Kind::Flag => "1",
            Kind::Keyword => "session",
            Kind::Text | Kind::Host | Kind::List => "127.0.0.1",
        };
        let text = match setting.place {
            Place::Pgbouncer => with_line(&format!("{}={sample}", setting.name)),
            Place::Database => MINIMAL.replace(
                "host=127.0.0.1",
                &format!("host=127.0.0.1 {}={sample}", setting.name),
            ),
            Place::User => {
                MINIMAL.to_string() + &format!("[users]\nu = {}={sample}\n", setting.name)
            }
        };
        let ini = convert_text(&text).unwrap();
        assert!(
            ini.toml
                .contains(&format!("{} = ", key.rsplit('.').next().unwrap())),
            "{key}: {}",
            ini.toml
        );
        if let Err(error) = ini.load() {
            assert!(
                !error.to_string().contains("unknown field"),
                "{}: {error}",
                setting.name
            );
        }
    }
}

#[test]
fn suggestions_stay_among_the_settings_of_their_place() {
    assert_eq!(
        pgbouncer::nearest(Place::Pgbouncer, "listen_adress"),
        Some("listen_addr")
    );
    assert_eq!(pgbouncer::nearest(Place::Database, "hots"), Some("host"));
    assert_eq!(
        pgbouncer::nearest(Place::User, "pool_sizes"),
        Some("pool_size")
    );
    assert_eq!(pgbouncer::nearest(Place::User, "host"), None);
}

#[test]
fn auth_type_hba_reads_the_auth_hba_file_next_to_the_ini_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("userlist.txt"), "\"app\" \"app\"\n").unwrap();
    std::fs::write(
        dir.path().join("hba.conf"),
        "host app app 127.0.0.1/32 md5\nhost all all all reject\n",
    )
    .unwrap();
    let ini = dir.path().join("pgbouncer.ini");
    let text = "[pgbouncer]\nauth_type = HBA\nauth_hba_file = hba.conf\nauth_file = userlist.txt\n\
                [databases]\napp = host=127.0.0.1\n";
    std::fs::write(&ini, text).unwrap();
    let config = Config::load(&ini).unwrap();
    assert_eq!(config.proxy.auth_type, AuthType::Hba);
    assert_eq!(config.hba.as_ref().unwrap().rules().len(), 2);
    let toml = toml_of_file(&ini).unwrap();
    assert!(
        toml.contains("auth_type = \"hba\"\nauth_hba_file = \"hba.conf\""),
        "{toml}"
    );

    // A missing file names the INI line; a bad rule names the HBA file's.
    std::fs::write(&ini, text.replace("hba.conf", "nope.conf")).unwrap();
    let message = Config::load(&ini).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("{}:3: auth_hba_file", ini.display())),
        "{message}"
    );
    std::fs::write(
        dir.path().join("hba.conf"),
        "host app app 127.0.0.1/32 md5\nhost all\n",
    )
    .unwrap();
    std::fs::write(&ini, text).unwrap();
    let message = Config::load(&ini).unwrap_err().to_string();
    let hba = dir.path().join("hba.conf");
    assert_eq!(
        message,
        format!("{}:2: expected a user name", hba.display())
    );
}

#[test]
fn auth_query_settings_are_read_globally_and_per_database() {
    let text = "\
[pgbouncer]
auth_type = scram-sha-256
auth_user = pgbouncer
auth_dbname = auth
auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename=$1
[databases]
app = host=127.0.0.1
auth = host=127.0.0.1 dbname=postgres
shop = host=127.0.0.1 auth_user=shop_auth auth_dbname=app auth_query='SELECT u, p FROM lookup($1) WHERE u <> ''x'''
";
    let config = load(text).unwrap();
    let app = config.auth_lookup("app").unwrap();
    assert_eq!(
        (app.auth_user.as_str(), app.database.as_str()),
        ("pgbouncer", "auth")
    );
    assert_eq!(
        app.query,
        "SELECT usename, passwd FROM pg_shadow WHERE usename=$1"
    );
    let shop = config.auth_lookup("shop").unwrap();
    assert_eq!(
        (shop.auth_user.as_str(), shop.database.as_str()),
        ("shop_auth", "app")
    );
    assert_eq!(shop.query, "SELECT u, p FROM lookup($1) WHERE u <> 'x'");
    let bad = text.replace("auth_dbname = auth", "auth_dbname = missing");
    assert!(
        error(&bad).starts_with("pgb.ini:4: authentication database \"missing\" is not configured"),
        "{}",
        error(&bad)
    );
}
