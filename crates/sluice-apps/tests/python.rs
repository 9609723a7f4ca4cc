//! Runs the Python side's pytest suite (`python/tests`: the base page class,
//! its read-only SQL check, the AppTest runner) with the repository's
//! virtualenv, so `cargo test --workspace` covers it.

use std::path::Path;
use std::process::Command;

#[test]
fn pytest_suite_passes() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = repo.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `bash scripts/setup.sh` first",
        python.display()
    );
    let output = Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "python/tests",
        ])
        .current_dir(&repo)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("SLUICE_POSTGRES_URL")
        .output()
        .expect("pytest runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pytest failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Guard against a suite that silently collected nothing.
    assert!(stdout.contains(" passed"), "{stdout}");
    assert!(!stdout.contains("no tests ran"), "{stdout}");
}
