//! `sluice-apps`: the app framework's model.
//!
//! # Layout
//! - [`config`]: `sluice.yml` (project, apps folder, audit log, environments),
//!   `file:line:col` errors, `SLUICE_*` overrides.
//! - [`workspace`]: finding `sluice.yml` upward from any folder; the apps
//!   and their pages.
//! - [`names`]: what an app or page may be called.
//! - [`scaffold`]: `init`, `new-app`, `new-page` from minijinja templates
//!   (the defaults are embedded; apps render from the workspace's copies).
//! - [`app_template`]: the template version each app was made from
//!   (`.sluice-app.yml`) and the snapshots of those versions.
//! - [`upgrade`]: `sluice upgrade`, a three-way merge of template changes
//!   into apps.
//! - [`doctor`]: `sluice doctor`, one line per check of Python, Streamlit,
//!   `snow` and the environments' Snowflake CLI connections.
//! - [`import`]: `sluice import PATH NAME`, an existing Streamlit app
//!   folder brought in as an app, completed from the app templates.
//! - [`local_data`]: where pages read data locally: PostgreSQL, or a local
//!   Snowpark session over the app's `tests/data/*.csv`.
//! - [`python`]: which Python runs pages, and `sluice setup`'s virtualenv.
//! - [`runner`]: `sluice test` (Streamlit's `AppTest`, one Python process for
//!   all pages) and `sluice run` (`streamlit run`).
//!
//! - [`compliance`]: the one place the compliance rules are loaded and
//!   checked, for `sluice check`, `sluice import`, the deploy gate and
//!   `sluice apps`.
//! - [`deploy`]: deploy and share plans (the deployment folder with the
//!   app's `snowflake.yml` merged with the environment, every `snow`
//!   command, a digest), `--changed-since` and its drops of removed apps,
//!   rollback to a deployed commit, and executing a plan.
//! - [`audit`]: the append-only JSON-lines audit log of deploys and shares.
//! - [`inventory`]: `sluice apps` (pages, owners, roles, compliance,
//!   deploys) and `sluice apps --live` (the repository against `snow
//!   streamlit list`).
//!
//! Private helpers: `table` (the aligned text tables of `sluice audit` and
//! `sluice apps`) and `write_once` (content-named folders written once: the
//! runner scripts, template snapshots).
//!
//! The files an app shares with the checker come from `sluice_rules`, the
//! one model of each: the apps and their files and pages
//! (`sluice_rules::workspace`), `share.yml` (`share_file`) and the app's own
//! `snowflake.yml` (`project_file`, read by deploy, doctor and import).

pub mod app_template;
pub mod audit;
pub mod compliance;
pub mod config;
pub mod deploy;
pub mod doctor;
pub mod import;
pub mod inventory;
pub mod local_data;
pub mod names;
pub mod python;
pub mod runner;
pub mod scaffold;
mod table;
pub mod upgrade;
pub mod workspace;
mod write_once;

pub use config::{Config, ConfigError, Environment, ResolvedEnvironment};
pub use workspace::{App, Workspace, WorkspaceError};
