//! The app framework's commands, run through the built `sluice` binary:
//! `init`, `new-app`, `new-page`, `config show`, `setup`, `run`, `test`.
//!
//! Pages are tested with the repository's virtualenv (`.venv`, made by
//! `scripts/setup.sh`) through `SLUICE_PYTHON`. Every error case asserts the
//! exact one-line message and exit code, and that nothing was overwritten.

use std::fs;
use std::path::{Path, PathBuf};

mod common;
// The Snowflake CLI check the deploy tests use (sluice-apps' test support).
#[path = "../../sluice-apps/tests/common/mod.rs"]
mod apps_common;

use common::{assert_error, free_port, run, sluice};

/// A fresh workspace made by `sluice init` in a temporary folder.
fn workspace() -> (tempfile::TempDir, PathBuf) {
    common::init_workspace()
}

#[test]
fn the_done_when_sequence_passes_with_real_apptest() {
    let dir = tempfile::tempdir().unwrap();
    let init = run(sluice(dir.path()).args(["init", "w"]));
    assert_eq!(init.code, 0, "{}", init.stderr);
    let root = dir.path().join("w");
    assert!(init.stdout.starts_with("Created Sluice workspace `w` in "));
    assert!(init
        .stdout
        .contains("Config:      sluice.yml (environments: local, prod, test)\n"));
    assert!(init
        .stdout
        .contains("Environment: local\nApps dir:    applications/\n"));
    for file in [
        "sluice.yml",
        "compliance/rules.yml",
        "CODEOWNERS",
        ".gitlab-ci.yml",
        "applications/components/__init__.py",
        "applications/components/base_page.py",
        "templates/app/dashboard.py.j2",
        "templates/page/page.py.j2",
        "applications/main_app/dashboard.py",
        "applications/main_app/pages/overview.py",
        "applications/main_app/snowflake.yml",
        "applications/main_app/environment.yml",
        "applications/main_app/share.yml",
        "applications/main_app/README.md",
    ] {
        assert!(root.join(file).is_file(), "{file} missing");
        assert!(
            init.stdout.contains(&format!("\n  {file}\n")),
            "{file} not listed"
        );
    }

    let app = run(sluice(&root).args(["new-app", "sales_dashboard"]));
    assert_eq!(app.code, 0, "{}", app.stderr);
    assert_eq!(
        app.stdout,
        "Environment: local\n\
         Apps dir:    applications/\n\
         Created app `sales_dashboard`:\n  \
           applications/sales_dashboard/README.md\n  \
           applications/sales_dashboard/dashboard.py\n  \
           applications/sales_dashboard/environment.yml\n  \
           applications/sales_dashboard/share.yml\n  \
           applications/sales_dashboard/snowflake.yml\n  \
           applications/sales_dashboard/.sluice-app.yml\n  \
           applications/sales_dashboard/pages/\n\
         Next: sluice new-page sales_dashboard PAGE, sluice run sales_dashboard, sluice test sales_dashboard\n"
    );
    let page = run(sluice(&root).args(["new-page", "sales_dashboard", "analytics"]));
    assert_eq!(page.code, 0, "{}", page.stderr);
    assert_eq!(
        page.stdout,
        "Environment: local\n\
         Apps dir:    applications/\n\
         Created page `analytics` in app `sales_dashboard`:\n  \
           applications/sales_dashboard/pages/analytics.py\n"
    );

    let test = run(sluice(&root).arg("test"));
    assert_eq!(test.code, 0, "{}\n{}", test.stdout, test.stderr);
    let expected_lines = [
        "PASS main_app/dashboard.py",
        "PASS main_app/pages/overview.py",
        "PASS sales_dashboard/dashboard.py",
        "PASS sales_dashboard/pages/analytics.py",
        "4 pages: 4 passed, 0 failed",
    ];
    let lines: Vec<&str> = test.stdout.lines().skip(1).collect();
    assert_eq!(lines, expected_lines, "{}", test.stdout);
    assert!(test.stdout.starts_with("Testing 4 pages in 2 apps with "));
}

#[test]
fn a_page_that_raises_fails_the_test_with_its_error() {
    let (_dir, root) = workspace();
    fs::write(
        root.join("applications/main_app/pages/broken.py"),
        "import streamlit as st\n\nst.write('before')\ntotal = 1 / 0\n",
    )
    .unwrap();
    let result = run(sluice(&root).args(["test", "main_app"]));
    assert_error(&result, 1, "1 of 3 pages failed");
    assert!(result.stdout.contains("PASS main_app/dashboard.py\n"));
    assert!(result.stdout.contains("PASS main_app/pages/overview.py\n"));
    assert!(
        result
            .stdout
            .contains("FAIL main_app/pages/broken.py\n     ZeroDivisionError: division by zero\n"),
        "{}",
        result.stdout
    );
    assert!(
        result.stdout.contains("broken.py\", line 4"),
        "{}",
        result.stdout
    );
    assert!(result.stdout.ends_with("3 pages: 2 passed, 1 failed\n"));
}

#[test]
fn pages_see_the_apps_folder_and_the_local_database_url() {
    let (_dir, root) = workspace();
    fs::write(
        root.join("applications/main_app/pages/env_check.py"),
        "import os\nimport components.base_page\n\
         url = os.environ['SLUICE_POSTGRES_URL']\n\
         assert url == 'postgresql://app:app@127.0.0.1:6432/app', url\n\
         assert os.getcwd().endswith('main_app'), os.getcwd()\n",
    )
    .unwrap();
    let result = run(sluice(&root).args(["test", "main_app"]));
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    assert!(result.stdout.contains("PASS main_app/pages/env_check.py\n"));

    // An override reaches the pages too.
    let result = run(sluice(&root)
        .args(["test", "main_app"])
        .env("SLUICE_POSTGRES_URL", "postgresql://other@127.0.0.1:1/x"));
    assert_eq!(result.code, 1);
    assert!(
        result
            .stdout
            .contains("AssertionError: postgresql://other@127.0.0.1:1/x"),
        "{}",
        result.stdout
    );
}

#[test]
fn require_data_fails_pages_that_cannot_reach_their_database() {
    let (_dir, root) = workspace();
    // Nothing listens on the closed port: the example dashboard shows its fallback...
    let closed = format!("postgresql://app:app@127.0.0.1:{}/app", free_port());
    let result = run(sluice(&root)
        .args(["test", "main_app"])
        .env("SLUICE_POSTGRES_URL", &closed));
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    // ...which `--require-data` turns into a failure naming the database.
    let result = run(sluice(&root)
        .args(["test", "main_app", "--require-data"])
        .env("SLUICE_POSTGRES_URL", &closed));
    assert_eq!(result.code, 1, "{}\n{}", result.stdout, result.stderr);
    assert!(
        result.stdout.contains("FAIL main_app/dashboard.py")
            && result.stdout.contains(
                "DataRequired: SLUICE_REQUIRE_DATA=1 and cannot connect to the local database"
            ),
        "{}",
        result.stdout
    );
}

#[test]
fn commands_work_from_a_subfolder() {
    let (_dir, root) = workspace();
    let pages = root.join("applications/main_app/pages");
    let result = run(sluice(&pages).args(["new-page", "main_app", "details"]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(pages.join("details.py").is_file());
    let result = run(sluice(&pages).args(["new-app", "second"]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(root.join("applications/second/dashboard.py").is_file());
    let result = run(sluice(&pages).args(["config", "show"]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(result
        .stdout
        .starts_with(&format!("workspace:   {}\n", root.display())));
    let result = run(sluice(&pages).args(["test", "second"]));
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    assert!(result.stdout.contains("PASS second/dashboard.py\n"));
}

#[test]
fn outside_a_workspace_every_command_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().canonicalize().unwrap();
    let message = format!(
        "no sluice.yml in {} or any parent folder; run `sluice init` to create a workspace",
        here.display()
    );
    for args in [
        &["new-app", "x"][..],
        &["new-page", "x", "y"],
        &["config", "show"],
        &["setup"],
        &["run", "x"],
        &["test"],
    ] {
        let result = run(sluice(&here).args(args));
        assert_error(&result, 1, &message);
    }
}

#[test]
fn init_refuses_a_non_empty_folder_and_leaves_a_workspace_alone() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("busy");
    fs::create_dir(&folder).unwrap();
    fs::write(folder.join("notes.txt"), "mine").unwrap();
    let result = run(sluice(dir.path()).args(["init", "busy"]));
    assert_error(
        &result,
        1,
        &format!(
            "refusing to initialise {}: the folder is not empty and has no sluice.yml",
            folder.canonicalize().unwrap().display()
        ),
    );
    assert_eq!(
        fs::read_to_string(folder.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(fs::read_dir(&folder).unwrap().count(), 1);

    // A folder with only `.git` (a fresh clone) is fine.
    let clone = dir.path().join("clone");
    fs::create_dir_all(clone.join(".git")).unwrap();
    let result = run(sluice(&clone).arg("init"));
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(result
        .stdout
        .ends_with("\nNext: sluice setup && sluice test\n"));

    // Again: nothing is touched.
    fs::write(clone.join("sluice.yml"), "project: edited\n").unwrap();
    let result = run(sluice(&clone).arg("init"));
    assert_eq!(result.code, 0);
    assert_eq!(
        result.stdout,
        format!(
            "{} is already a Sluice workspace (sluice.yml exists); nothing changed\n",
            clone.canonicalize().unwrap().display()
        )
    );
    assert_eq!(
        fs::read_to_string(clone.join("sluice.yml")).unwrap(),
        "project: edited\n"
    );
}

#[test]
fn bad_app_names_are_refused() {
    let (_dir, root) = workspace();
    let before = fs::read_dir(root.join("applications")).unwrap().count();
    for name in ["Sales", "../x", "sales-dashboard", "2fast", "a/b", ""] {
        let result = run(sluice(&root).args(["new-app", name]));
        assert_error(
            &result,
            1,
            &format!(
                "invalid app name `{name}`: use a lowercase snake_case identifier (a-z, 0-9 and _, starting with a letter)"
            ),
        );
    }
    let result = run(sluice(&root).args(["new-app", "components"]));
    assert_error(
        &result,
        1,
        "`components` is reserved for the shared components; choose another app name",
    );
    assert_eq!(
        fs::read_dir(root.join("applications")).unwrap().count(),
        before
    );
    assert!(!root.join("x").exists());
}

#[test]
fn an_unknown_sluice_env_stops_new_app_before_writing() {
    let (_dir, root) = workspace();
    let result = run(sluice(&root)
        .args(["new-app", "fresh"])
        .env("SLUICE_ENV", "staging"));
    assert_error(
        &result,
        1,
        "unknown environment `staging` in sluice.yml (environments: local, prod, test)",
    );
    assert!(!root.join("applications/fresh").exists());
}

#[test]
fn an_existing_app_is_not_overwritten() {
    let (_dir, root) = workspace();
    let dashboard = root.join("applications/main_app/dashboard.py");
    fs::write(&dashboard, "# my work\n").unwrap();
    let result = run(sluice(&root).args(["new-app", "main_app"]));
    assert_error(
        &result,
        1,
        "app `main_app` already exists at applications/main_app",
    );
    assert_eq!(fs::read_to_string(&dashboard).unwrap(), "# my work\n");
}

#[test]
fn page_errors() {
    let (_dir, root) = workspace();
    let overview = root.join("applications/main_app/pages/overview.py");
    fs::write(&overview, "# my page\n").unwrap();

    let result = run(sluice(&root).args(["new-page", "main_app", "overview"]));
    assert_error(
        &result,
        1,
        "page `overview` already exists at applications/main_app/pages/overview.py",
    );
    assert_eq!(fs::read_to_string(&overview).unwrap(), "# my page\n");

    for app in ["nope", "components", "../main_app", "Main_app"] {
        let result = run(sluice(&root).args(["new-page", app, "x"]));
        assert_error(&result, 1, &format!("unknown app `{app}` (apps: main_app)"));
    }
    for page in ["Bad", "../../x", "my-page"] {
        let result = run(sluice(&root).args(["new-page", "main_app", page]));
        assert_error(
            &result,
            1,
            &format!(
                "invalid page name `{page}`: use a lowercase snake_case identifier (a-z, 0-9 and _, starting with a letter)"
            ),
        );
    }
    let pages: Vec<_> = fs::read_dir(root.join("applications/main_app/pages"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(pages, ["overview.py"]);
}

#[test]
fn a_missing_template_is_named() {
    let (_dir, root) = workspace();
    fs::remove_file(root.join("templates/page/page.py.j2")).unwrap();
    let result = run(sluice(&root).args(["new-page", "main_app", "extra"]));
    assert_error(
        &result,
        1,
        "missing template templates/page/page.py.j2: restore it from another workspace or `sluice init` a new one",
    );
}

#[test]
fn edited_templates_shape_new_apps() {
    let (_dir, root) = workspace();
    fs::write(
        root.join("templates/app/OWNERS.txt.j2"),
        "{{ app_title }} ({{ app_name }}) in {{ project }}\n",
    )
    .unwrap();
    let result = run(sluice(&root).args(["new-app", "q2_report"]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(
        fs::read_to_string(root.join("applications/q2_report/OWNERS.txt")).unwrap(),
        "Q2 Report (q2_report) in ws\n"
    );
    assert!(result
        .stdout
        .contains("  applications/q2_report/OWNERS.txt\n"));

    fs::write(root.join("templates/app/bad.txt.j2"), "line\n{{ nope }}\n").unwrap();
    let result = run(sluice(&root).args(["new-app", "another"]));
    assert_error(&result, 1, "templates/app/bad.txt.j2:2: undefined value");
    assert!(!root.join("applications/another").exists());
}

#[test]
fn config_show_prints_the_resolved_environment() {
    let (_dir, root) = workspace();
    let result = run(sluice(&root).args(["config", "show"]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(
        result.stdout,
        format!(
            "workspace:   {0}\n\
             config:      {0}/sluice.yml\n\
             project:     ws\n\
             apps_dir:    applications\n\
             audit_log:   .sluice/audit.jsonl\n\
             environment: local (default)\n  \
               connection    -\n  \
               database      -\n  \
               schema        -\n  \
               stage         -\n  \
               warehouse     -\n  \
               role          -\n  \
               postgres_url  postgresql://app:app@127.0.0.1:6432/app  (sluice.yml)\n",
            root.display()
        )
    );

    let result = run(sluice(&root)
        .args(["config", "show"])
        .env("SLUICE_ENV", "test")
        .env("SLUICE_DATABASE", "SCRATCH")
        .env("SLUICE_POSTGRES_URL", "postgresql://x@127.0.0.1/y"));
    assert_eq!(result.code, 0, "{}", result.stderr);
    let environment: Vec<&str> = result.stdout.lines().skip(5).collect();
    assert_eq!(
        environment,
        [
            "environment: test (SLUICE_ENV)",
            "  connection    test  (sluice.yml)",
            "  database      SCRATCH  (SLUICE_DATABASE)",
            "  schema        APPS  (sluice.yml)",
            "  stage         STREAMLIT_STAGE  (sluice.yml)",
            "  warehouse     COMPUTE_WH  (sluice.yml)",
            "  role          STREAMLIT_DEPLOYER  (sluice.yml)",
            "  postgres_url  postgresql://x@127.0.0.1/y  (SLUICE_POSTGRES_URL)",
        ]
    );

    // --env beats SLUICE_ENV.
    let result = run(sluice(&root)
        .args(["config", "show", "--env", "prod"])
        .env("SLUICE_ENV", "test"));
    assert!(result.stdout.contains("environment: prod (--env)\n"));
    assert!(result
        .stdout
        .contains("  database      WS_PROD  (sluice.yml)\n"));

    let result = run(sluice(&root).args(["config", "show", "--env", "staging"]));
    assert_error(
        &result,
        1,
        "unknown environment `staging` in sluice.yml (environments: local, prod, test)",
    );
}

#[test]
fn a_broken_sluice_yml_is_reported_with_its_line() {
    let (_dir, root) = workspace();
    let config = root.join("sluice.yml");
    fs::write(
        &config,
        "project: ws\nenvironments:\n  test:\n    warehose: COMPUTE_WH\n",
    )
    .unwrap();
    let sub = root.join("applications");
    for args in [&["config", "show"][..], &["test"], &["new-app", "x"]] {
        let result = run(sluice(&sub).args(args));
        assert_error(
            &result,
            2,
            &format!(
                "{}:4:5: environments.test: unknown field `warehose`, expected one of `connection`, `database`, `schema`, `stage`, `warehouse`, `role`, `postgres_url`, `streamlit`",
                config.display()
            ),
        );
    }

    fs::write(&config, "project: ws\nenvironments:\n  local: {\n").unwrap();
    let result = run(sluice(&root).args(["config", "show"]));
    assert_eq!(result.code, 2);
    assert!(
        result
            .stderr
            .starts_with(&format!("sluice: {}:4:1: ", config.display())),
        "{}",
        result.stderr
    );
}

/// A Python that cannot see any installed package (`-S -I`), standing in
/// for a machine where `sluice setup` has not run.
fn python_without_streamlit(dir: &Path) -> PathBuf {
    let path = dir.join("bare-python");
    common::write_script(&path, "#!/bin/sh\nexec python3 -S -I \"$@\"\n");
    path
}

#[test]
fn a_python_without_streamlit_suggests_setup() {
    let (dir, root) = workspace();
    let bare = python_without_streamlit(dir.path());
    let message = format!(
        "{} (SLUICE_PYTHON) cannot import streamlit; run `sluice setup` to create the workspace's virtualenv, or set SLUICE_PYTHON",
        bare.display()
    );
    let result = run(sluice(&root).arg("test").env("SLUICE_PYTHON", &bare));
    assert_error(&result, 1, &message);
    let result = run(sluice(&root)
        .args(["run", "main_app"])
        .env("SLUICE_PYTHON", &bare));
    assert_error(&result, 1, &message);

    let result = run(sluice(&root)
        .arg("test")
        .env("SLUICE_PYTHON", "/nonexistent/python"));
    assert_error(
        &result,
        1,
        "cannot run /nonexistent/python (SLUICE_PYTHON): No such file or directory (os error 2)",
    );
}

#[test]
fn unknown_apps_for_run_and_test() {
    let (_dir, root) = workspace();
    let result = run(sluice(&root).args(["test", "nope"]));
    assert_error(&result, 1, "unknown app `nope` (apps: main_app)");
    let result = run(sluice(&root).args(["run", "nope"]));
    assert_error(&result, 1, "unknown app `nope` (apps: main_app)");
}

#[test]
fn setup_creates_the_virtualenv_once() {
    let (_dir, root) = workspace();
    // No packages to install, so the test needs no network; the install path
    // is the same pip call the real requirements go through.
    fs::write(root.join("requirements.txt"), "# nothing\n").unwrap();
    let first = run(sluice(&root).arg("setup"));
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first.stdout.starts_with(
            "setup: created virtualenv .venv with python3\n\
             setup: no packages listed in requirements.txt\n\
             setup: ready: .venv/bin/python\n\
             setup: checking the workspace (sluice doctor)\n\
             ok    python: "
        ),
        "{}",
        first.stdout
    );
    assert!(root.join(".venv/bin/python").exists());
    // An empty Snowflake CLI configuration, whatever this machine has.
    let snowflake_home = tempfile::tempdir().unwrap();
    let second = run(sluice(&root)
        .arg("setup")
        .env("SNOWFLAKE_HOME", snowflake_home.path()));
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stdout.starts_with(
            "setup: virtualenv .venv exists\n\
             setup: packages from requirements.txt already installed\n\
             setup: ready: .venv/bin/python\n\
             setup: checking the workspace (sluice doctor)\n"
        ),
        "{}",
        second.stdout
    );
    // Setup succeeds whatever the doctor finds (CI's test job has no
    // Snowflake connections), and says so once.
    let doctor_lines: Vec<&str> = second.stdout.lines().skip(4).collect();
    let (findings, summary) = doctor_lines.split_at(doctor_lines.len() - 1);
    assert!(
        findings.iter().all(|l| ["ok    ", "WARN  ", "FAIL  "]
            .iter()
            .any(|p| l.starts_with(p))),
        "{}",
        second.stdout
    );
    assert!(findings
        .iter()
        .any(|l| l.starts_with("FAIL  connection \"test\": ")));
    assert!(
        summary[0].starts_with("setup: the doctor found "),
        "{}",
        second.stdout
    );
}

/// `GET path` on loopback; `None` while nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn run_serves_the_app_with_streamlit() {
    let (_dir, root) = workspace();
    let port = free_port();
    let mut child = sluice(&root.join("applications"))
        .args(["run", "main_app", "--", "--server.headless", "true"])
        .arg(format!("--server.port={port}"))
        .arg("--server.address=127.0.0.1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Streamlit needs a few seconds to start; poll a bounded number of times.
    let mut health = None;
    for _ in 0..120 {
        if let Some(response) = http_get(port, "/_stcore/health") {
            health = Some(response);
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // `sluice run` became Streamlit (exec), so this stops the server itself.
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let health = health.unwrap_or_else(|| panic!("streamlit never answered:\n{stdout}"));
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok"), "{health}");
    assert!(
        stdout.starts_with("Running applications/main_app/dashboard.py with "),
        "{stdout}"
    );
    assert!(
        http_get(port, "/_stcore/health").is_none(),
        "server still up"
    );
}

#[test]
fn generated_project_definitions_satisfy_the_snowflake_cli() {
    let (_dir, root) = workspace();
    let result = run(sluice(&root).args(["new-app", "bare_app"]));
    assert_eq!(result.code, 0, "{}", result.stderr);
    // main_app has a page; bare_app's pages/ is empty.
    for app in ["main_app", "bare_app"] {
        apps_common::assert_snow_accepts(&root.join("applications").join(app));
    }
}

#[test]
fn a_slow_page_fails_at_the_timeout() {
    let (_dir, root) = workspace();
    let slow = root.join("applications/slow_app");
    fs::create_dir(&slow).unwrap();
    fs::write(
        slow.join("dashboard.py"),
        "import time\n\ntime.sleep(3600)\n",
    )
    .unwrap();
    let result = run(sluice(&root).args(["test", "slow_app", "--timeout", "3"]));
    assert_error(&result, 1, "1 of 1 page failed");
    assert!(
        result.stdout.contains(
            "FAIL slow_app/dashboard.py\n     TimeoutError: the page was still running after 3s\n"
        ),
        "{}",
        result.stdout
    );
}

#[test]
fn an_app_without_pages_fails() {
    let (_dir, root) = workspace();
    fs::create_dir(root.join("applications/empty")).unwrap();
    let result = run(sluice(&root).arg("test"));
    assert_error(&result, 1, "1 of 3 pages failed");
    assert!(
        result
            .stdout
            .contains("FAIL empty: no dashboard.py and no pages\n"),
        "{}",
        result.stdout
    );
    assert!(result.stdout.contains("PASS main_app/dashboard.py\n"));
}

#[test]
fn a_crashing_runner_is_reported_with_its_last_words() {
    let (dir, root) = workspace();
    let python = dir.path().join("crashing-python");
    common::write_script(
        &python,
        "#!/bin/sh\ncat >/dev/null\necho 'Fatal Python error: out of luck' >&2\nexit 6\n",
    );
    let result = run(sluice(&root).arg("test").env("SLUICE_PYTHON", &python));
    assert_error(
        &result,
        1,
        "the page runner stopped unexpectedly (exit status 6): Fatal Python error: out of luck",
    );
}
