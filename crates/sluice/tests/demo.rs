//! `sluice demo`, the README's main job, run end to end through the built binary: a workspace
//! checked and tested, a real primary with two standbys, the gateway as a child process, and
//! the workload whose printed claims are checked here.

mod common;

use common::sluice;

/// The number after `prefix` on the line that contains it.
fn number_after(text: &str, prefix: &str) -> u64 {
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no `{prefix}` in:\n{text}"))
        + prefix.len();
    text[start..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn the_demo_runs_end_to_end_and_shows_what_it_claims() {
    let dir = tempfile::tempdir().unwrap();
    let output = sluice(dir.path())
        .arg("demo")
        .output()
        .expect("sluice runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );

    for step in [
        "[1/7]", "[2/7]", "[3/7]", "[4/7]", "[5/7]", "[6/7]", "[7/7]",
    ] {
        assert!(stdout.contains(step), "{step} missing:\n{stdout}");
    }
    assert!(stdout.contains("4 pages: 4 passed, 0 failed"), "{stdout}");
    // The deployment plan for both apps, run by nobody.
    for app in ["MAIN_APP", "SALES_DASHBOARD"] {
        assert!(
            stdout.contains(&format!(
                "snow streamlit share DEMO_TEST.APPS.{app} DATA_ANALYST"
            )),
            "{stdout}"
        );
    }
    assert!(!dir.path().join("demo/.sluice/audit.jsonl").exists());
    // The example app read its data through the gateway (`--require-data`).
    assert!(stdout.contains("2 pages: 2 passed, 0 failed"), "{stdout}");
    // Pooling: 1,000 transactions from 40 clients, never more than 4 server connections.
    assert!(
        stdout.contains("-> 1000 transactions from 40 client connections"),
        "{stdout}"
    );
    assert!(stdout.contains("0 clients failed"), "{stdout}");
    let busiest = number_after(&stdout, "the primary saw at most ");
    assert!(
        (1..=4).contains(&busiest),
        "pool of 4, saw {busiest}:\n{stdout}"
    );
    // Sticky read-your-writes with replay paused on both standbys.
    assert!(
        stdout.contains("the same client read it back: visible"),
        "{stdout}"
    );
    assert!(stdout.contains("still lacks it"), "{stdout}");
    // Reads outside transactions went to both standbys; the write to the primary; and once
    // replay caught up, the sticky client's reads went back to a standby.
    assert!(
        stdout.contains("-> reads served by replica1: ") && stdout.contains(", replica2: "),
        "{stdout}"
    );
    assert!(
        stdout.contains("-> the write was served by primary"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the read is visible and served by replica"),
        "{stdout}"
    );

    // The gateway's config stays for the user; a second run replaces the demo it made.
    assert!(dir.path().join("demo/gateway/sluice-proxy.toml").is_file());
}

#[test]
fn the_demo_never_replaces_a_folder_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/notes.txt"), "keep me").unwrap();
    let output = sluice(dir.path())
        .args(["demo", "--dir", "mine"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("sluice: ")
            && stderr.contains("mine exists and was not made by `sluice demo`"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("mine/notes.txt")).unwrap(),
        "keep me"
    );
}
