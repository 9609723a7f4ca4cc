use super::*;

fn parse(text: &str) -> Result<Hba, FileError> {
    Hba::parse(Path::new("hba.conf"), text)
}

fn error(text: &str) -> String {
    parse(text).expect_err("should be refused").to_string()
}

fn tcp<'a>(addr: &str, database: &'a str, user: &'a str) -> Connection<'a> {
    Connection {
        tls: false,
        addr: Some(addr.parse().unwrap()),
        database,
        user,
        replication: false,
    }
}

/// The method of the first matching line, and that line.
fn decide(hba: &Hba, connection: Connection) -> Option<(Method, usize)> {
    hba.find(&connection).map(|rule| (rule.method, rule.line))
}

fn fixture() -> Hba {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hba/hba.conf");
    Hba::load(&path).unwrap()
}

#[test]
fn the_fixture_file_decides_per_user_database_and_address() {
    let hba = fixture();
    let local = "127.0.0.1";
    let method = |database, user| decide(&hba, tcp(local, database, user)).map(|d| d.0);
    assert_eq!(method("app", "h_trust"), Some(Method::Trust));
    assert_eq!(method("app", "h_reject"), Some(Method::Reject));
    assert_eq!(method("app", "h_md5"), Some(Method::Md5));
    assert_eq!(method("app", "h_scram"), Some(Method::ScramSha256));
    assert_eq!(method("app", "h_password"), Some(Method::Password));
    assert_eq!(method("app", "h_secret"), Some(Method::Password));
    // From the @file, relative to the HBA file.
    assert_eq!(method("app", "h_listed"), Some(Method::Md5));
    assert_eq!(method("app", "h_listed2"), Some(Method::Md5));
    assert_eq!(method("app", "h listed 3"), Some(Method::Md5));
    assert_eq!(method("app", "h_cert"), Some(Method::Cert));
    assert_eq!(method("pgbouncer", "h_admin"), Some(Method::Password));
    // Lines for another database, user or address do not match.
    assert_eq!(method("other", "h_trust"), None);
    assert_eq!(method("app", "nobody"), None);
    assert_eq!(method("app", "h_v6"), None);
    assert_eq!(
        decide(&hba, tcp("::1", "app", "h_v6")),
        Some((Method::Trust, 27))
    );
    // 127.0.0.0 255.0.0.0 covers all of 127/8; 127.0.0.1/32 only itself.
    assert_eq!(
        decide(&hba, tcp("127.9.9.9", "app", "h_reject")).map(|d| d.0),
        Some(Method::Reject)
    );
    assert_eq!(decide(&hba, tcp("127.9.9.9", "app", "h_trust")), None);
    // sameuser: the database is named like the user.
    assert_eq!(
        decide(&hba, tcp("10.1.2.3", "bob", "bob")).map(|d| d.0),
        Some(Method::Md5)
    );
    assert_eq!(decide(&hba, tcp("10.1.2.3", "app", "bob")), None);
}

#[test]
fn first_match_wins() {
    let hba = fixture();
    assert_eq!(
        decide(&hba, tcp("127.0.0.1", "app", "h_first")),
        Some((Method::Reject, 20))
    );
}

#[test]
fn connection_types_and_tls() {
    let hba = fixture();
    // hostssl (line 8) matches only TLS connections, then for everyone.
    let mut tls = tcp("127.0.0.1", "app", "h_reject");
    tls.tls = true;
    assert_eq!(decide(&hba, tls), Some((Method::Trust, 8)));
    // hostnossl does not match TLS.
    let mut admin = tcp("127.0.0.1", "pgbouncer", "h_admin");
    assert_eq!(decide(&hba, admin).map(|d| d.1), Some(24));
    admin.tls = true;
    assert_eq!(decide(&hba, admin).map(|d| d.1), Some(8));
    // A connection without an IP address matches local lines only.
    let mut unix = tcp("127.0.0.1", "app", "h_trust");
    unix.addr = None;
    assert_eq!(decide(&hba, unix), Some((Method::Peer, 10)));
    // An IPv4 client on an IPv6 socket is matched as IPv4.
    assert_eq!(
        decide(&hba, tcp("::ffff:127.0.0.1", "app", "h_md5")).map(|d| d.0),
        Some(Method::Md5)
    );
}

#[test]
fn names_quotes_keywords_and_lists() {
    let hba = parse(
        "host \"all\" \"a,b\" all trust\n\
         host db1 , db2 u1,\"U 2\" all md5\n\
         host replication all all reject\n\
         host all sameuser all password\n",
    )
    .unwrap();
    // A quoted "all" is a database named all; "a,b" one user name.
    assert_eq!(
        decide(&hba, tcp("1.2.3.4", "all", "a,b")).map(|d| d.1),
        Some(1)
    );
    assert_eq!(decide(&hba, tcp("1.2.3.4", "x", "a,b")).map(|d| d.1), None);
    // Spaces around commas, as pgbouncer's tokenizer reads them.
    assert_eq!(
        decide(&hba, tcp("1.2.3.4", "db2", "U 2")).map(|d| d.1),
        Some(2)
    );
    assert_eq!(
        decide(&hba, tcp("1.2.3.4", "db2", "u 2")).map(|d| d.1),
        None
    );
    // replication matches replication connections only, not a database of that name.
    assert_eq!(decide(&hba, tcp("1.2.3.4", "replication", "u1")), None);
    let mut replication = tcp("1.2.3.4", "app", "u1");
    replication.replication = true;
    assert_eq!(decide(&hba, replication).map(|d| d.1), Some(3));
    // sameuser in the user column: the user is named like the database (pgbouncer's reading).
    assert_eq!(
        decide(&hba, tcp("1.2.3.4", "ann", "ann")).map(|d| d.1),
        Some(4)
    );
    // Case matters.
    assert!(error("HOST all all all trust\n").contains("unknown connection type \"HOST\""));
    assert!(error("host all all all Trust\n").contains("unsupported method \"Trust\""));
}

#[test]
fn comments_and_blank_lines() {
    let hba = parse("# a comment\n\n   \nhost all all all trust # why\n#host all all all reject\n")
        .unwrap();
    assert_eq!(hba.rules().len(), 1);
    assert_eq!(hba.rules()[0].line, 4);
}

#[test]
fn addresses_and_masks() {
    let hba = parse(
        "host all a 10.0.0.0/8 trust\n\
         host all b 192.168.1.0 255.255.255.0 trust\n\
         host all c fd00::/8 trust\n\
         host all d 0.0.0.0/0 trust\n\
         host all e ::/0 trust\n",
    )
    .unwrap();
    let line = |addr, user| decide(&hba, tcp(addr, "db", user)).map(|d| d.1);
    assert_eq!(line("10.255.0.1", "a"), Some(1));
    assert_eq!(line("11.0.0.1", "a"), None);
    assert_eq!(line("192.168.1.77", "b"), Some(2));
    assert_eq!(line("192.168.2.77", "b"), None);
    assert_eq!(line("fd12::1", "c"), Some(3));
    assert_eq!(line("fe80::1", "c"), None);
    assert_eq!(line("10.0.0.1", "c"), None, "families do not mix");
    assert_eq!(line("203.0.113.9", "d"), Some(4));
    assert_eq!(line("2001:db8::1", "d"), None);
    assert_eq!(line("2001:db8::1", "e"), Some(5));
}

#[test]
fn bad_lines_are_file_line_errors() {
    let cases = [
        (
            "hostgssenc all all all trust",
            "unknown connection type \"hostgssenc\"",
        ),
        ("host", "expected a database name"),
        ("host all", "expected a user name"),
        ("host all all", "expected an address"),
        (
            "host all all 10.0.0.0/8",
            "expected an authentication method",
        ),
        (
            "host all all db.example.com md5",
            "invalid address \"db.example.com\"",
        ),
        ("host all all samehost md5", "samehost is not supported"),
        ("host all all samenet md5", "samenet is not supported"),
        ("host all all 10.0.0.0/33 md5", "invalid mask \"/33\""),
        ("host all all ::1/129 md5", "invalid mask \"/129\""),
        ("host all all 10.0.0.0/x md5", "invalid mask \"/x\""),
        ("host all all 10.0.0.0 md5", "invalid mask \"md5\""),
        (
            "host all all 10.0.0.0 255.0.0.0",
            "expected an authentication method",
        ),
        ("host all all 10.0.0.0", "no mask after address 10.0.0.0"),
        (
            "host all all ::1 255.0.0.0 md5",
            "invalid mask \"255.0.0.0\" for address ::1",
        ),
        ("host all all 10.0.0.1/8 md5", "address does not match mask"),
        ("host all all all gss", "unsupported method \"gss\""),
        (
            "host all all all ldap ldapserver=x",
            "ldap is not supported by sluice",
        ),
        ("host all all all cert map=corp", "map=corp: user name maps"),
        (
            "host all all all md5 extra",
            "unsupported parameters after the method: `extra`",
        ),
        (
            "host all all all peer",
            "peer authentication needs a Unix socket",
        ),
        ("host all +admins all md5", "+admins: group membership"),
        ("host samerole all all md5", "samerole is not supported"),
        (
            "host all replication all md5",
            "replication in the user column",
        ),
        ("host all \"unterminated all md5", "no closing"),
        ("host all @ all md5", "@ without a file name"),
        (
            "host all @missing.txt all md5",
            "@missing.txt: cannot read missing.txt",
        ),
    ];
    for (line, expected) in cases {
        let message = error(&format!("# first\n{line}\n"));
        assert!(
            message.starts_with("hba.conf:2: ") && message.contains(expected),
            "{line:?}: {message}"
        );
    }
}

#[test]
fn names_files_nest_and_report_their_own_lines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(
        dir.path().join("lists/admins.txt"),
        "# admins\nann bob\n@more.txt\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("lists/more.txt"), "carl,\"d d\"\n").unwrap();
    let hba_path = dir.path().join("hba.conf");
    std::fs::write(&hba_path, "host all @lists/admins.txt all md5\n").unwrap();
    let hba = Hba::load(&hba_path).unwrap();
    for user in ["ann", "bob", "carl", "d d"] {
        assert!(hba.find(&tcp("1.2.3.4", "db", user)).is_some(), "{user}");
    }
    assert!(hba.find(&tcp("1.2.3.4", "db", "eve")).is_none());

    // A bad name inside a names file names that file and line.
    std::fs::write(dir.path().join("lists/more.txt"), "carl\n+group\n").unwrap();
    let message = Hba::load(&hba_path).unwrap_err().to_string();
    let more = dir.path().join("lists/more.txt");
    assert!(
        message.starts_with(&format!("{}:2: +group", more.display())),
        "{message}"
    );

    // Files naming each other stop at a depth.
    std::fs::write(dir.path().join("lists/more.txt"), "@admins.txt\n").unwrap();
    let message = Hba::load(&hba_path).unwrap_err().to_string();
    assert!(message.contains("nested more than 10 deep"), "{message}");
}

#[test]
fn a_missing_file_is_a_read_error_naming_it() {
    let message = Hba::load(Path::new("/nonexistent/hba.conf"))
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("/nonexistent/hba.conf: "), "{message}");
}
