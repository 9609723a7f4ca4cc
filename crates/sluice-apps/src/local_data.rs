//! Where an app's pages read data when they run locally (`sluice test`,
//! `sluice run`): the `local` environment's PostgreSQL, or Snowpark's own
//! local testing mode with the app's fixture tables.
//!
//! An app runs with **Snowpark** when it has fixtures (a `tests/data/`
//! folder: `tests/data/ORDERS.csv` becomes the table `ORDERS`) or when the
//! `local` environment has no `postgres_url`, its only PostgreSQL source.
//! Otherwise it runs with **PostgreSQL** (`SLUICE_POSTGRES_URL`, which
//! `BasePage.query` reads). An app never gets both, so a page cannot pass
//! locally against a source Snowflake would not give it.

use std::path::PathBuf;

use crate::config::{ConfigError, DEFAULT_ENVIRONMENT};
use crate::workspace::{App, Workspace};

/// An app's local test material (fixtures), relative to its folder; deploy
/// never uploads it.
pub const TESTS_DIR: &str = "tests";
/// The fixture folder of an app, relative to its folder.
pub const FIXTURES_DIR: &str = "tests/data";

/// An app's local data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalData {
    /// `SLUICE_POSTGRES_URL` from the `local` environment.
    Postgres { url: String },
    /// A local-testing Snowpark session whose tables are the CSV files of
    /// `fixtures` (which may not exist: then the session has no tables).
    Snowpark { fixtures: PathBuf },
}

/// The local data source of `app` (see the module doc).
pub fn local_data(workspace: &Workspace, app: &App) -> Result<LocalData, ConfigError> {
    let fixtures = app.dir.join(FIXTURES_DIR);
    if fixtures.is_dir() {
        return Ok(LocalData::Snowpark { fixtures });
    }
    Ok(match local_postgres_url(workspace)? {
        Some(url) => LocalData::Postgres { url },
        None => LocalData::Snowpark { fixtures },
    })
}

/// The `local` environment's PostgreSQL URL (after `SLUICE_POSTGRES_URL`);
/// a workspace without a `local` environment has none.
pub fn local_postgres_url(workspace: &Workspace) -> Result<Option<String>, ConfigError> {
    if !workspace
        .config()
        .environments
        .contains_key(DEFAULT_ENVIRONMENT)
    {
        return Ok(None);
    }
    Ok(workspace
        .environment(Some(DEFAULT_ENVIRONMENT))?
        .values
        .postgres_url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn workspace(sluice_yml: &str) -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("sluice.yml"), sluice_yml).unwrap();
        fs::create_dir_all(dir.path().join("applications/with_fixtures/tests/data")).unwrap();
        fs::create_dir_all(dir.path().join("applications/plain")).unwrap();
        let ws = Workspace::open(dir.path()).unwrap();
        (dir, ws)
    }

    #[test]
    fn fixtures_choose_snowpark_and_a_url_postgres_for_the_rest() {
        let (_dir, ws) = workspace(
            "project: t\nenvironments:\n  local:\n    postgres_url: postgresql://a@h/db\n",
        );
        let with = ws.app("with_fixtures").unwrap();
        assert_eq!(
            local_data(&ws, &with).unwrap(),
            LocalData::Snowpark {
                fixtures: with.dir.join("tests/data")
            }
        );
        assert_eq!(
            local_data(&ws, &ws.app("plain").unwrap()).unwrap(),
            LocalData::Postgres {
                url: "postgresql://a@h/db".into()
            }
        );
    }

    #[test]
    fn without_a_url_every_app_gets_snowpark() {
        let (_dir, ws) = workspace("project: t\nenvironments:\n  local: {}\n  test: {}\n");
        assert!(matches!(
            local_data(&ws, &ws.app("plain").unwrap()).unwrap(),
            LocalData::Snowpark { .. }
        ));
    }
}
