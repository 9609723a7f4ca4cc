//! `sluice apps`: every app with its pages, owners (`CODEOWNERS`), the roles
//! it is shared with per environment (`share.yml`), its compliance status
//! ([`crate::compliance`], as `sluice check` reports it) and its last deploy
//! per environment (the audit log).
//!
//! `sluice apps --live --env E` ([`live`]) compares the repository with what
//! is live in the environment's schema, as `snow streamlit list --format
//! json` reports it: apps live but unknown to the repository (orphans a
//! deploy never dropped), and apps known but not live.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use globset::{Glob, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::audit::AuditEntry;
use crate::compliance;
use crate::deploy::{share, Step, StepKind, Target, SNOW};
use crate::workspace::Workspace;

/// Where `CODEOWNERS` may live, in GitLab's order of precedence.
pub const CODEOWNERS_PATHS: [&str; 3] = ["CODEOWNERS", "docs/CODEOWNERS", ".gitlab/CODEOWNERS"];

/// One app's line in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppInfo {
    pub name: String,
    /// Page files relative to the app folder (`dashboard.py`, `pages/x.py`).
    pub pages: Vec<String>,
    /// Owners of the app folder per `CODEOWNERS` (the last matching line).
    pub owners: Vec<String>,
    /// Roles per deployable environment (those with a `connection`).
    pub shared: BTreeMap<String, Vec<String>>,
    pub compliance: Compliance,
    /// The last deploy attempt per environment.
    pub last_deploy: BTreeMap<String, LastDeploy>,
}

/// What `sluice check` says about the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compliance {
    /// `passed`, `failed` or `unknown` (the rules could not be read).
    pub status: String,
    pub errors: usize,
    pub warnings: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastDeploy {
    pub time: String,
    pub actor: String,
    pub commit: String,
    /// `succeeded` or `failed`.
    pub result: String,
}

/// The inventory of `ws`, with the deploy history `history`.
pub fn inventory(ws: &Workspace, history: &[AuditEntry]) -> Vec<AppInfo> {
    let owners = CodeOwners::load(ws.root());
    let compliance = compliance(ws);
    let envs: Vec<&String> = ws
        .config()
        .environments
        .iter()
        .filter(|(_, e)| e.connection.is_some())
        .map(|(name, _)| name)
        .collect();
    let apps_dir = ws.config().apps_dir.to_string_lossy().replace('\\', "/");
    ws.apps()
        .into_iter()
        .map(|app| {
            let pages = app
                .pages
                .iter()
                .map(|p| {
                    p.strip_prefix(&app.dir)
                        .unwrap_or(p)
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            let mut shared = BTreeMap::new();
            for env in &envs {
                // A broken share.yml shows as no roles; `sluice check` names the problem.
                let roles = share::roles_for(&app, env).unwrap_or_default();
                shared.insert((*env).clone(), roles);
            }
            let mut last_deploy = BTreeMap::new();
            for entry in history
                .iter()
                .filter(|e| e.app == app.name && matches!(e.action.as_str(), "deploy" | "rollback"))
            {
                last_deploy.insert(
                    entry.env.clone(),
                    LastDeploy {
                        time: entry.time.clone(),
                        actor: entry.actor.clone(),
                        commit: entry.commit.clone(),
                        result: entry.result.clone(),
                    },
                );
            }
            AppInfo {
                owners: owners.owners_of(&format!("{apps_dir}/{}", app.name)),
                compliance: compliance.get(&app.name).cloned().unwrap_or(Compliance {
                    status: "unknown".into(),
                    errors: 0,
                    warnings: 0,
                }),
                name: app.name,
                pages,
                shared,
                last_deploy,
            }
        })
        .collect()
}

/// The deploy gate's verdict per app; empty when the rules cannot be used.
fn compliance(ws: &Workspace) -> BTreeMap<String, Compliance> {
    let Ok(report) = compliance::gate(ws, None) else {
        return BTreeMap::new();
    };
    report
        .apps
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                Compliance {
                    status: if a.passed() { "passed" } else { "failed" }.into(),
                    errors: a.errors,
                    warnings: a.warnings,
                },
            )
        })
        .collect()
}

/// `sluice apps`' table: one line per app.
pub fn render_table(apps: &[AppInfo]) -> String {
    let header = [
        "APP",
        "PAGES",
        "OWNERS",
        "SHARED WITH",
        "CHECK",
        "LAST DEPLOY",
    ];
    let rows: Vec<[String; 6]> = apps
        .iter()
        .map(|a| {
            let shared = a
                .shared
                .iter()
                .map(|(env, roles)| {
                    let roles = if roles.is_empty() {
                        "-".to_string()
                    } else {
                        roles.join(",")
                    };
                    format!("{env}: {roles}")
                })
                .collect::<Vec<_>>()
                .join("; ");
            let check = match a.compliance.status.as_str() {
                "unknown" => "unknown".to_string(),
                status => format!(
                    "{status} ({}E {}W)",
                    a.compliance.errors, a.compliance.warnings
                ),
            };
            let deploys = if a.last_deploy.is_empty() {
                "never".to_string()
            } else {
                a.last_deploy
                    .iter()
                    .map(|(env, d)| {
                        let failed = if d.result == "succeeded" {
                            ""
                        } else {
                            " FAILED"
                        };
                        format!(
                            "{env}: {} {}@{}{failed}",
                            d.time,
                            d.actor,
                            crate::deploy::short_commit(&d.commit)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            [
                a.name.clone(),
                a.pages.len().to_string(),
                if a.owners.is_empty() {
                    "-".into()
                } else {
                    a.owners.join(" ")
                },
                shared,
                check,
                deploys,
            ]
        })
        .collect();
    crate::table::render(&header, &rows)
}

/// How an app or Streamlit object compares between the repository and an
/// environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveStatus {
    /// In the repository and live.
    Live,
    /// In the repository, not live (never deployed, or dropped by hand).
    KnownNotLive,
    /// Live, but no app of the repository is deployed as it (an orphan).
    LiveUnknown,
}

impl LiveStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LiveStatus::Live => "live",
            LiveStatus::KnownNotLive => "known but not live",
            LiveStatus::LiveUnknown => "live but unknown",
        }
    }
}

/// One line of `sluice apps --live`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveApp {
    /// The repository's app, when there is one.
    pub app: Option<String>,
    /// `DATABASE.SCHEMA.NAME`.
    pub object: String,
    pub status: LiveStatus,
}

/// Why the live apps could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("cannot run {program}: {error}")]
    Spawn {
        program: String,
        error: std::io::Error,
    },
    #[error("`{command}` failed ({status}){}", last_line(.stderr))]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` printed no JSON list of Streamlit objects: {error}")]
    Unreadable {
        command: String,
        error: serde_json::Error,
    },
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| format!(": {l}"))
        .unwrap_or_default()
}

/// A row of `SHOW STREAMLITS` as `snow ... --format json` prints it (the
/// other columns, `created_on`, `title`, `owner`, `url_id`, ..., are not read).
#[derive(Debug, Deserialize)]
struct Listed {
    name: String,
    database_name: Option<String>,
    schema_name: Option<String>,
}

/// `snow streamlit list --in schema DB.SCHEMA --format json`, on the
/// environment's connection.
pub fn list_step(target: &Target) -> Step {
    let mut argv = vec![
        SNOW.to_string(),
        "streamlit".into(),
        "list".into(),
        "--in".into(),
        "schema".into(),
        format!("{}.{}", target.database, target.schema),
        "--format".into(),
        "json".into(),
    ];
    argv.extend(target.connection_args());
    Step {
        kind: StepKind::List,
        description: format!("list the Streamlit objects of {}", target.env),
        argv,
    }
}

/// Runs [`list_step`] with `program` in place of `snow` (in `root`) and
/// compares its answer with the repository's apps.
pub fn live(ws: &Workspace, target: &Target, program: &OsStr) -> Result<Vec<LiveApp>, LiveError> {
    let step = list_step(target);
    let command = step.command_line();
    let output = Command::new(program)
        .args(&step.argv[1..])
        .current_dir(ws.root())
        .output()
        .map_err(|error| LiveError::Spawn {
            program: Path::new(program).display().to_string(),
            error,
        })?;
    if !output.status.success() {
        return Err(LiveError::Failed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned()
                + &String::from_utf8_lossy(&output.stdout),
        });
    }
    let listed: Vec<Listed> = serde_json::from_slice(&output.stdout)
        .map_err(|error| LiveError::Unreadable { command, error })?;
    let apps: Vec<String> = ws.apps().into_iter().map(|a| a.name).collect();
    Ok(compare(&apps, target, &listed))
}

fn compare(apps: &[String], target: &Target, listed: &[Listed]) -> Vec<LiveApp> {
    let here = |l: &&Listed| {
        let same =
            |a: &Option<String>, b: &str| a.as_deref().is_none_or(|a| a.eq_ignore_ascii_case(b));
        same(&l.database_name, &target.database) && same(&l.schema_name, &target.schema)
    };
    let live: Vec<String> = listed
        .iter()
        .filter(here)
        .map(|l| l.name.to_uppercase())
        .collect();
    let mut out: Vec<LiveApp> = apps
        .iter()
        .map(|app| LiveApp {
            app: Some(app.clone()),
            object: target.object(app),
            status: if live.contains(&app.to_uppercase()) {
                LiveStatus::Live
            } else {
                LiveStatus::KnownNotLive
            },
        })
        .collect();
    let mut orphans: Vec<&String> = live
        .iter()
        .filter(|name| !apps.iter().any(|a| a.eq_ignore_ascii_case(name)))
        .collect();
    orphans.sort();
    out.extend(orphans.into_iter().map(|name| LiveApp {
        app: None,
        object: format!("{}.{}.{name}", target.database, target.schema),
        status: LiveStatus::LiveUnknown,
    }));
    out
}

/// `sluice apps --live`'s table and a count per status.
pub fn render_live(target: &Target, apps: &[LiveApp]) -> String {
    let rows: Vec<[String; 3]> = apps
        .iter()
        .map(|a| {
            [
                a.app.clone().unwrap_or_else(|| "-".into()),
                a.object.clone(),
                a.status.as_str().to_string(),
            ]
        })
        .collect();
    let count = |s: LiveStatus| apps.iter().filter(|a| a.status == s).count();
    format!(
        "Live in {} ({}.{}), per `snow streamlit list`:\n{}{} apps: {} live, {} known but not live, {} live but unknown\n",
        target.env,
        target.database,
        target.schema,
        crate::table::render(&["APP", "OBJECT", "STATUS"], &rows),
        apps.len(),
        count(LiveStatus::Live),
        count(LiveStatus::KnownNotLive),
        count(LiveStatus::LiveUnknown),
    )
}

/// A parsed `CODEOWNERS`: (pattern, owners) in file order.
#[derive(Debug, Default)]
pub struct CodeOwners {
    rules: Vec<(globset::GlobSet, Vec<String>)>,
}

impl CodeOwners {
    /// Reads the first `CODEOWNERS` of [`CODEOWNERS_PATHS`]; none: no owners.
    pub fn load(root: &Path) -> CodeOwners {
        CODEOWNERS_PATHS
            .iter()
            .find_map(|p| std::fs::read_to_string(root.join(p)).ok())
            .map(|text| CodeOwners::parse(&text))
            .unwrap_or_default()
    }

    /// Parses `CODEOWNERS` text. Sections (`[Name]`) and comments are
    /// skipped; a pattern that is not a valid glob is ignored.
    pub fn parse(text: &str) -> CodeOwners {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty()
                || line.starts_with('#')
                || line.starts_with('[')
                || line.starts_with("^[")
            {
                continue;
            }
            let mut words = line.split_whitespace();
            let Some(pattern) = words.next() else {
                continue;
            };
            let owners: Vec<String> = words
                .take_while(|w| !w.starts_with('#'))
                .map(str::to_string)
                .collect();
            if let Some(set) = pattern_globs(pattern) {
                rules.push((set, owners));
            }
        }
        CodeOwners { rules }
    }

    /// The owners of `path` (a workspace-relative folder): the last matching line wins.
    pub fn owners_of(&self, path: &str) -> Vec<String> {
        let inside = format!("{path}/__any_file__");
        self.rules
            .iter()
            .rev()
            .find(|(set, _)| set.is_match(path) || set.is_match(&inside))
            .map(|(_, owners)| owners.clone())
            .unwrap_or_default()
    }
}

/// A CODEOWNERS pattern as globs: anchored at the root when it starts with
/// `/`, anywhere otherwise; a folder pattern also matches everything in it.
fn pattern_globs(pattern: &str) -> Option<globset::GlobSet> {
    let anchored = pattern.starts_with('/');
    let body = pattern.trim_start_matches('/').trim_end_matches('/');
    let body = if body.is_empty() { "**" } else { body };
    let base = if anchored || body.starts_with("**") {
        body.to_string()
    } else {
        format!("**/{body}")
    };
    let mut builder = GlobSetBuilder::new();
    for glob in [base.clone(), format!("{base}/**")] {
        builder.add(Glob::new(&glob).ok()?);
    }
    builder.build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNERS: &str = "\
# comment
*                           @data-platform/maintainers
/applications/components/   @data-platform/maintainers
/applications/sales_dashboard/  @sales-analytics @jane
[Finance]
finance_*/ @finance  # trailing comment
";

    #[test]
    fn the_last_matching_line_wins() {
        let owners = CodeOwners::parse(OWNERS);
        assert_eq!(
            owners.owners_of("applications/sales_dashboard"),
            ["@sales-analytics", "@jane"]
        );
        assert_eq!(
            owners.owners_of("applications/main_app"),
            ["@data-platform/maintainers"]
        );
        assert_eq!(owners.owners_of("applications/finance_kpis"), ["@finance"]);
        assert!(CodeOwners::parse("").owners_of("applications/x").is_empty());
    }
}
