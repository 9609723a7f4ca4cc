//! `--changed-since REV` on a real git repository: which apps CI deploys.

mod common;

use std::fs;

use common::{git, workspace, write};
use sluice_apps::deploy::changed::{changed_apps, changes, shared_at};

/// Commits everything and returns the new commit.
fn commit(root: &std::path::Path, message: &str) -> String {
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", message]);
    git(root, &["rev-parse", "HEAD"])
}

#[test]
fn changed_since_picks_the_apps_whose_files_changed() {
    let (_dir, ws) = workspace();
    let root = ws.root();
    git(root, &["init", "-q", "-b", "main"]);
    let start = commit(root, "workspace");

    // Nothing changed yet.
    assert!(changed_apps(&ws, &start).unwrap().is_empty());

    // One page of one app.
    write(
        &ws,
        "applications/sales_dashboard/pages/analytics.py",
        &(fs::read_to_string(root.join("applications/sales_dashboard/pages/analytics.py"))
            .unwrap()
            + "# reviewed\n"),
    );
    let one_app = commit(root, "sales page");
    assert_eq!(changed_apps(&ws, &start).unwrap(), ["sales_dashboard"]);

    // Files outside any app deploy nothing: templates, CI, docs.
    write(&ws, "templates/app/README.md.j2", "# {{ app_title }}\n");
    write(&ws, ".gitlab-ci.yml", "stages: [check]\n");
    write(&ws, "docs/notes.md", "notes\n");
    let outside = commit(root, "outside");
    assert!(changed_apps(&ws, &one_app).unwrap().is_empty());
    assert_eq!(changed_apps(&ws, &start).unwrap(), ["sales_dashboard"]);

    // The shared components are part of every app's deployment folder.
    write(
        &ws,
        "applications/components/helpers.py",
        "def money(x: float) -> str:\n    return f\"{x:,.2f}\"\n",
    );
    let components = commit(root, "components");
    assert_eq!(
        changed_apps(&ws, &outside).unwrap(),
        ["main_app", "sales_dashboard"]
    );

    // sluice.yml holds the environments every app deploys to.
    let config = fs::read_to_string(root.join("sluice.yml")).unwrap();
    write(&ws, "sluice.yml", &config.replace("COMPUTE_WH", "APPS_WH"));
    let config_change = commit(root, "warehouse");
    assert_eq!(
        changed_apps(&ws, &components).unwrap(),
        ["main_app", "sales_dashboard"]
    );

    // A deleted app is not deployed; a new one is.
    fs::remove_dir_all(root.join("applications/main_app")).unwrap();
    sluice_apps::scaffold::new_app(&ws, "hr_overview").unwrap();
    commit(root, "replace main_app");
    assert_eq!(changed_apps(&ws, &config_change).unwrap(), ["hr_overview"]);
    // ...and the deleted one is a tombstone, with the roles it had then.
    let since = changes(&ws, &config_change).unwrap();
    assert_eq!(since.apps, ["hr_overview"]);
    assert_eq!(since.removed, ["main_app"]);
    assert_eq!(
        shared_at(&ws, &config_change, "main_app", "test"),
        ["DATA_ANALYST"]
    );
    assert!(shared_at(&ws, &config_change, "hr_overview", "test").is_empty());

    // A rename: the new name is changed, the old one removed.
    fs::rename(
        root.join("applications/hr_overview"),
        root.join("applications/people_overview"),
    )
    .unwrap();
    let before_rename = git(root, &["rev-parse", "HEAD"]);
    commit(root, "rename");
    let renamed = changes(&ws, &before_rename).unwrap();
    assert_eq!(renamed.apps, ["people_overview"]);
    assert_eq!(renamed.removed, ["hr_overview"]);
}

#[test]
fn a_workspace_inside_a_larger_repository_maps_its_own_paths() {
    let (_dir, ws) = workspace();
    // The repository root is the workspace's parent folder.
    let repo = ws.root().parent().unwrap().to_path_buf();
    git(&repo, &["init", "-q", "-b", "main"]);
    fs::write(repo.join("OTHER.md"), "other\n").unwrap();
    let start = commit(&repo, "all");
    write(&ws, "applications/main_app/dashboard.py", "# replaced\n");
    fs::write(repo.join("OTHER.md"), "changed\n").unwrap();
    commit(&repo, "main_app");
    assert_eq!(changed_apps(&ws, &start).unwrap(), ["main_app"]);
}

#[test]
fn an_unknown_revision_is_a_one_line_error() {
    let (_dir, ws) = workspace();
    git(ws.root(), &["init", "-q", "-b", "main"]);
    commit(ws.root(), "workspace");
    let err = changed_apps(&ws, "no-such-rev").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "git diff no-such-rev HEAD in {}: ",
            ws.root().display()
        )),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
    assert_eq!(
        changed_apps(&ws, "--output=/tmp/x")
            .unwrap_err()
            .to_string(),
        "`--output=/tmp/x` is not a git revision"
    );
}
