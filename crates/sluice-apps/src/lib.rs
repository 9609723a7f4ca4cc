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
//! - [`python`]: which Python runs pages, and `sluice setup`'s virtualenv.
//! - [`runner`]: `sluice test` (Streamlit's `AppTest`, one Python process for
//!   all pages) and `sluice run` (`streamlit run`).
//!
//! Deploy plans and the audit trail build on [`Workspace`] and
//! [`Workspace::environment`].

pub mod config;
pub mod names;
pub mod python;
pub mod runner;
pub mod scaffold;
pub mod workspace;

pub use config::{Config, ConfigError, Environment, ResolvedEnvironment};
pub use workspace::{App, Workspace, WorkspaceError};
