//! `sluice-rules`: the compliance engine behind `sluice check`.
//!
//! Maintainers state policy once in `compliance/rules.yml`; every
//! application of the workspace is checked against it, exactly (real Python
//! and SQL parsers, no text matching) and fast (every file parsed once, in
//! parallel).
//!
//! # Layout
//! - [`config`] — the rules file model; YAML errors as `rules.yml:LINE:COL: message`.
//! - [`workspace`] — the workspace layout, for every command: the
//!   applications (folders under the apps dir except `components/`), their
//!   files and which of them are pages.
//! - [`share_file`] — the `share.yml` model, for the share rules and for
//!   deploy.
//! - [`project_file`] — an app's own `snowflake.yml` (its streamlit entity
//!   and runtime), for the runtime rules and for deploy.
//! - [`python`] — one `ruff_python_parser` parse per file → classes, bases,
//!   methods, functions, imports, SQL string literals with their lines.
//! - [`sql`] — statement splitting, comment stripping, read/write
//!   classification with `sqlparser` (Snowflake dialect) and a token-scan
//!   fallback for templated SQL.
//! - [`rules`] — one module per rule kind (class, function, import, file,
//!   sql, share, runtime) and the registry table [`rules::KINDS`].
//! - [`baseline`] — known violations (`--baseline`), matched by rule, file
//!   and a fingerprint of the offending text.
//! - [`engine`] — the walker: parse phase, rule phase, suppressions.
//! - [`report`] — the result model and one module per output format.
//! - [`source`] — line numbers and `# sluice: ignore[rule-id]` comments.
//!
//! The default rules file that `sluice init` writes is [`DEFAULT_RULES`].

pub mod baseline;
pub mod config;
pub mod engine;
pub mod project_file;
pub mod python;
pub mod report;
pub mod rules;
pub mod share_file;
pub mod source;
pub mod sql;
pub mod workspace;

pub use baseline::{Baseline, BaselineError};
pub use config::{load_rules, parse_rules, ConfigError, Severity};
pub use engine::{check, CheckError, CheckOptions};
pub use report::{render, Format, RenderOptions, Report, UnknownFormat};
pub use rules::{RuleError, RuleSet, Violation};
pub use share_file::{ShareError, ShareFile};
pub use workspace::Workspace;

/// Where a workspace keeps its rules, relative to its root.
pub const RULES_FILE: &str = "compliance/rules.yml";

/// Where a workspace keeps the violations it adopted as known debt
/// (`sluice check --write-baseline`), relative to its root: the generated CI
/// check and the deploy gate count only violations not in it.
pub const BASELINE_FILE: &str = "compliance/baseline.json";

/// The rules file `sluice init` writes to [`RULES_FILE`].
pub const DEFAULT_RULES: &str = include_str!("../default-rules.yml");
