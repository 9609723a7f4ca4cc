//! Pages that use Snowpark, run locally: `sluice test` (Streamlit's real
//! `AppTest`) and `sluice run` give an app with `tests/data/*.csv` a session
//! in Snowpark's local testing mode holding those tables
//! (`tests/fixtures/snowpark_orders`: a page using `self.session.table`,
//! `self.session.sql` and `self.query`, and its `ORDERS.csv`).

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;

mod common;

use common::{free_port, ok, run, sluice};

const ORDERS_APP: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/snowpark_orders"
);

/// A workspace (whose `local` environment has a PostgreSQL URL) with the app
/// `orders`: the template's dashboard plus the fixture's page and CSV.
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let (dir, root) = common::init_workspace();
    ok(sluice(&root).args(["new-app", "orders"]));
    let app = root.join("applications/orders");
    for file in ["pages/orders.py", "tests/data/ORDERS.csv"] {
        fs::create_dir_all(app.join(file).parent().unwrap()).unwrap();
        fs::copy(Path::new(ORDERS_APP).join(file), app.join(file)).unwrap();
    }
    (dir, root)
}

#[test]
fn a_page_reading_snowpark_tables_passes_against_its_csv_fixture() {
    let (_dir, root) = workspace();
    let result = run(sluice(&root).args(["test"]));
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    let lines: Vec<&str> = result.stdout.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "orders: Snowpark local testing, tables from applications/orders/tests/data/",
            "PASS main_app/dashboard.py",
            "PASS main_app/pages/overview.py",
            "PASS orders/dashboard.py",
            "PASS orders/pages/orders.py",
            "4 pages: 4 passed, 0 failed",
        ],
        "{}",
        result.stdout
    );
    // The compliance rules accept the page as it is.
    ok(sluice(&root).args(["check", "--app", "orders"]));
}

#[test]
fn without_the_fixture_the_page_fails_naming_the_file_to_add() {
    let (_dir, root) = workspace();
    fs::remove_file(root.join("applications/orders/tests/data/ORDERS.csv")).unwrap();
    let result = run(sluice(&root).args(["test", "orders"]));
    assert_eq!(result.code, 1, "{}", result.stdout);
    let failure: Vec<&str> = result
        .stdout
        .lines()
        .skip_while(|l| *l != "FAIL orders/pages/orders.py")
        .take(2)
        .collect();
    assert_eq!(
        failure,
        [
            "FAIL orders/pages/orders.py",
            "     LookupError: table ORDERS is not in the local Snowpark session: add its rows as tests/data/ORDERS.csv (fixture tables: none, tests/data has no .csv files)",
        ],
        "{}",
        result.stdout
    );
    assert!(result.stdout.contains("PASS orders/dashboard.py"));
    assert!(result.stdout.ends_with("2 pages: 1 passed, 1 failed\n"));
}

#[test]
fn an_app_without_fixtures_keeps_reading_postgres() {
    let (_dir, root) = workspace();
    fs::remove_dir_all(root.join("applications/orders/tests")).unwrap();
    let result = run(sluice(&root).args(["test", "orders"]));
    assert_eq!(result.code, 1, "{}", result.stdout);
    assert!(
        !result.stdout.contains("Snowpark local testing"),
        "{}",
        result.stdout
    );
    assert!(
        result.stdout.contains(
            "     components.base_page.DataSourceUnavailable: no active Snowpark session: locally an app gets one when it has fixture tables in tests/data/*.csv\n"
        ),
        "{}",
        result.stdout
    );
}

#[test]
fn sluice_run_starts_streamlit_with_the_session_made() {
    let (_dir, root) = workspace();
    let port = free_port().to_string();
    let mut child = sluice(&root)
        .args([
            "run",
            "orders",
            "--",
            "--server.headless",
            "true",
            "--server.port",
        ])
        .arg(&port)
        // Streamlit's own lines would wait in a pipe's buffer otherwise.
        .env("PYTHONUNBUFFERED", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Read until Streamlit says it serves; the session line comes before it.
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let serving = line.contains(&format!(":{port}"));
        seen.push(line);
        if serving {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l
            == "sluice: pages get a local Snowpark session (local testing) with the fixture tables of tests/data/: ORDERS"),
        "{seen:#?}"
    );
}
