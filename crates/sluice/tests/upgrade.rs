//! `sluice upgrade`: apps made from one version of `templates/app/` get a
//! maintainer's later template change by a three-way merge, through the
//! built binary.

use std::fs;
use std::path::{Path, PathBuf};

mod common;

use common::{assert_error, ok, replace_in, run, sluice};

const SUBHEADER: &str = "st.subheader(\"Sample data\")";
const NEW_SUBHEADER: &str = "st.subheader(\"Sample data (generated)\")";
const RUN_END: &str =
    "        self.set_page_layout()\n        self.setup_ui()\n\n    def show_sample_data";
const NEW_RUN_END: &str = "        self.set_page_layout()\n        self.setup_ui()\n        st.caption(\"Questions? Ask #data-platform.\")\n\n    def show_sample_data";
const LIVE_QUERY: &str =
    "LIVE_QUERY = \"SELECT current_database() AS database_name, current_timestamp AS server_time\"";
const HR_QUERY: &str = "LIVE_QUERY = \"SELECT current_database() AS database_name\"";

/// A workspace with three apps made from the first template version: `sales`
/// (untouched), `hr` (its creator changed the live query), `finance` (its
/// creator changed the subheader line the template change touches too).
fn three_apps() -> (tempfile::TempDir, PathBuf) {
    let (dir, root) = common::init_workspace();
    for app in ["sales", "hr", "finance"] {
        ok(sluice(&root).args(["new-app", app]));
    }
    let apps = root.join("applications");
    replace_in(&apps.join("hr/dashboard.py"), LIVE_QUERY, HR_QUERY);
    replace_in(
        &apps.join("finance/dashboard.py"),
        SUBHEADER,
        "st.subheader(\"Budget sample\")",
    );
    (dir, root)
}

/// The maintainers' change: two lines of the dashboard and a new file.
fn change_the_template(root: &Path) {
    let dashboard = root.join("templates/app/dashboard.py.j2");
    replace_in(&dashboard, SUBHEADER, NEW_SUBHEADER);
    replace_in(&dashboard, RUN_END, NEW_RUN_END);
    fs::write(
        root.join("templates/app/CHANGELOG.md.j2"),
        "# {{ app_title }}: changes\n",
    )
    .unwrap();
}

fn version_of(app_dir: &Path) -> String {
    let record = fs::read_to_string(app_dir.join(".sluice-app.yml")).unwrap();
    record
        .lines()
        .find_map(|l| l.strip_prefix("template_version: "))
        .unwrap()
        .to_string()
}

#[test]
fn upgrading_three_apps_merges_untouched_lines_and_marks_conflicting_ones() {
    let (_dir, root) = three_apps();
    let apps = root.join("applications");
    let before: Vec<String> = ["sales", "hr", "finance"]
        .iter()
        .map(|a| fs::read_to_string(apps.join(a).join("dashboard.py")).unwrap())
        .collect();
    let old = version_of(&apps.join("sales"));
    change_the_template(&root);

    let result = run(sluice(&root).args(["upgrade", "--all"]));
    let new = version_of(&apps.join("sales"));
    assert_ne!(old, new);
    assert_error(
        &result,
        1,
        "resolve the conflict markers in finance/dashboard.py, then commit",
    );
    assert_eq!(
        result.stdout,
        format!(
            "Template: templates/app/ is version {new}\n\
             finance: {old} -> {new}\n\
             \x20 added    CHANGELOG.md (new in the template)\n\
             \x20 CONFLICT dashboard.py (line 33): you and the template changed the same lines; resolve the <<<<<<< markers\n\
             hr: {old} -> {new}\n\
             \x20 added    CHANGELOG.md (new in the template)\n\
             \x20 merged   dashboard.py (your changes and the template's, in different lines)\n\
             main_app: {old} -> {new}\n\
             \x20 added    CHANGELOG.md (new in the template)\n\
             \x20 updated  dashboard.py (you had not changed it)\n\
             sales: {old} -> {new}\n\
             \x20 added    CHANGELOG.md (new in the template)\n\
             \x20 updated  dashboard.py (you had not changed it)\n\
             Recorded template version {new} in templates/.versions/{new}/ (commit it with the apps)\n\
             Upgraded 4 apps; 1 file with conflicts\n"
        )
    );

    // Untouched: exactly the template's change.
    let with_template_change = |text: &str| {
        text.replacen(SUBHEADER, NEW_SUBHEADER, 1)
            .replacen(RUN_END, NEW_RUN_END, 1)
    };
    let sales = fs::read_to_string(apps.join("sales/dashboard.py")).unwrap();
    assert_eq!(sales, with_template_change(&before[0]));
    // The creator's change and the template's, in different lines: both.
    let hr = fs::read_to_string(apps.join("hr/dashboard.py")).unwrap();
    assert_eq!(hr, with_template_change(&before[1]));
    assert!(hr.contains(HR_QUERY));
    // The same line changed by both: conflict markers, the rest merged.
    let finance = fs::read_to_string(apps.join("finance/dashboard.py")).unwrap();
    let expected = before[2].replacen(RUN_END, NEW_RUN_END, 1).replacen(
        "        st.subheader(\"Budget sample\")\n",
        &format!(
            "<<<<<<< your app\n        st.subheader(\"Budget sample\")\n\
                 ||||||| template {old}\n        {SUBHEADER}\n\
                 =======\n        {NEW_SUBHEADER}\n\
                 >>>>>>> template {new}\n"
        ),
        1,
    );
    assert_eq!(finance, expected);
    assert_eq!(finance.lines().nth(32), Some("<<<<<<< your app"));
    for app in ["sales", "hr", "finance"] {
        let changelog = fs::read_to_string(apps.join(app).join("CHANGELOG.md")).unwrap();
        assert!(changelog.ends_with(": changes\n"), "{changelog}");
        assert_eq!(version_of(&apps.join(app)), new);
    }
    assert!(root.join("templates/.versions").join(&new).is_dir());
    assert!(root.join("templates/.versions").join(&old).is_dir());

    // The conflicted page cannot pass the check (so it cannot deploy) ...
    let check = run(sluice(&root).args(["check", "--app", "finance"]));
    assert_eq!(check.code, 1);
    assert!(
        check
            .stdout
            .contains("applications/finance/dashboard.py:32: [error] python-syntax: "),
        "{}",
        check.stdout
    );
    // ... and a second upgrade does not merge the same change twice.
    let again = ok(sluice(&root).args(["upgrade", "--all"]));
    assert!(
        again.stdout.ends_with(
            "finance: up to date\nhr: up to date\nmain_app: up to date\nsales: up to date\nNothing to upgrade.\n"
        ),
        "{}",
        again.stdout
    );
}

#[test]
fn a_dry_run_prints_the_diff_and_writes_nothing() {
    let (_dir, root) = three_apps();
    change_the_template(&root);
    let hr = root.join("applications/hr");
    let before = fs::read_to_string(hr.join("dashboard.py")).unwrap();
    let record = fs::read_to_string(hr.join(".sluice-app.yml")).unwrap();
    let result = ok(sluice(&root).args(["upgrade", "hr", "--dry-run"]));
    assert!(
        result
            .stdout
            .contains("--- a/applications/hr/dashboard.py\n+++ b/applications/hr/dashboard.py\n"),
        "{}",
        result.stdout
    );
    assert!(result.stdout.contains(&format!(
        "\n-        {SUBHEADER}\n+        {NEW_SUBHEADER}\n"
    )));
    assert!(result
        .stdout
        .contains("\n+        st.caption(\"Questions? Ask #data-platform.\")\n"));
    assert!(result
        .stdout
        .contains("+++ b/applications/hr/CHANGELOG.md\n@@ -0,0 +1 @@\n+# Hr: changes\n"));
    assert!(result.stdout.ends_with("Dry run: nothing was written.\n"));
    assert_eq!(fs::read_to_string(hr.join("dashboard.py")).unwrap(), before);
    assert_eq!(
        fs::read_to_string(hr.join(".sluice-app.yml")).unwrap(),
        record
    );
    assert!(!hr.join("CHANGELOG.md").exists());
}

#[test]
fn dropped_files_deleted_files_and_refusals() {
    let (_dir, root) = three_apps();
    let apps = root.join("applications");
    // The template drops README.md; hr's creator had edited theirs, finance's
    // creator deleted share.yml, which the template changes.
    fs::remove_file(root.join("templates/app/README.md.j2")).unwrap();
    replace_in(
        &apps.join("hr/README.md"),
        "What this app shows",
        "Headcount, by team",
    );
    replace_in(
        &root.join("templates/app/share.yml.j2"),
        "restricted_data: false",
        "restricted_data: false  # ask data-governance before changing",
    );
    fs::remove_file(apps.join("finance/share.yml")).unwrap();
    // An app from before template versions were recorded.
    fs::remove_file(apps.join("main_app/.sluice-app.yml")).unwrap();

    let result = ok(sluice(&root).args(["upgrade", "--all"]));
    for line in [
        "  kept     README.md (the template dropped it, but you changed it)\n",
        "  skipped  share.yml (you deleted it; the template changed it; not restored)\n",
        "  removed  README.md (the template dropped it; you had not changed it)\n",
        "main_app: not upgraded: no .sluice-app.yml (made before sluice recorded template versions)\n",
    ] {
        assert!(result.stdout.contains(line), "{line:?} in\n{}", result.stdout);
    }
    assert!(apps.join("hr/README.md").is_file());
    assert!(!apps.join("sales/README.md").exists());
    assert!(!apps.join("finance/share.yml").exists());
    assert!(fs::read_to_string(apps.join("sales/share.yml"))
        .unwrap()
        .contains("ask data-governance"));

    // A snapshot that was edited is refused before anything is written.
    let version = version_of(&apps.join("sales"));
    let snapshot = root.join("templates/.versions").join(&version);
    fs::write(root.join("templates/app/extra.txt"), "x\n").unwrap();
    fs::write(snapshot.join("dashboard.py.j2"), "edited\n").unwrap();
    let result = run(sluice(&root).args(["upgrade", "sales"]));
    assert_eq!(result.code, 1);
    assert!(
        result.stderr.starts_with(&format!(
            "sluice: templates/.versions/{version} was edited (its contents are version "
        )),
        "{}",
        result.stderr
    );
    assert!(!apps.join("sales/extra.txt").exists());
    let result = run(sluice(&root).args(["upgrade", "nope"]));
    assert_error(
        &result,
        1,
        "unknown app `nope` (apps: finance, hr, main_app, sales)",
    );
}

/// The entity lines the app template had before deploy generated the stage
/// and the artifacts (`snowflake.yml.j2` until the app's own snowflake.yml
/// was merged with the environment).
const OLD_DEPLOY_LINES: &str =
    "    stage: streamlit\n    artifacts:\n      - dashboard.py\n      - pages/\n      - environment.yml\n";

#[test]
fn apps_made_with_the_old_snowflake_yml_template_upgrade_to_the_current_one() {
    let (_dir, root) = common::init_workspace();
    let template = root.join("templates/app/snowflake.yml.j2");
    let current = fs::read_to_string(&template).unwrap();
    assert!(!current.contains("artifacts:"), "{current}");
    // A workspace from before: its template still lists the stage and artifacts.
    replace_in(
        &template,
        "    pages_dir: pages\n",
        &format!("    pages_dir: pages\n{OLD_DEPLOY_LINES}"),
    );
    ok(sluice(&root).args(["new-app", "sales"]));
    let app = root.join("applications/sales");
    let old_version = version_of(&app);
    // Its creator gave the app a comment, away from the lines the template drops.
    replace_in(
        &app.join("snowflake.yml"),
        "    title: \"Sales\"\n",
        "    title: \"Sales\"\n    comment: Revenue by region\n",
    );

    // The maintainers take the current default template.
    fs::write(&template, &current).unwrap();
    let result = ok(sluice(&root).args(["upgrade", "sales"]));
    assert!(
        result.stdout.contains(
            "  merged   snowflake.yml (your changes and the template's, in different lines)\n"
        ),
        "{}",
        result.stdout
    );
    let upgraded = fs::read_to_string(app.join("snowflake.yml")).unwrap();
    assert!(!upgraded.contains("stage:"), "{upgraded}");
    assert!(!upgraded.contains("artifacts:"), "{upgraded}");
    assert!(
        upgraded.contains("    comment: Revenue by region\n"),
        "{upgraded}"
    );
    // The record and the snapshot name the current template.
    let new_version = version_of(&app);
    assert_ne!(new_version, old_version);
    assert_eq!(new_version, version_of(&root.join("applications/main_app")));
    assert_eq!(
        fs::read_to_string(
            root.join("templates/.versions")
                .join(&new_version)
                .join("snowflake.yml.j2")
        )
        .unwrap(),
        current
    );
    // The app deploys with its comment and the generated artifacts.
    ok(sluice(&root).args(["deploy", "sales", "--env", "test", "--dry-run"]));
    let generated =
        fs::read_to_string(root.join(".sluice/build/test/sales/snowflake.yml")).unwrap();
    assert!(
        generated.contains("comment: Revenue by region"),
        "{generated}"
    );
    assert!(generated.contains("artifacts:"), "{generated}");
}
