//! The doctor's Snowflake checks: the `snow` program and its version, and
//! each environment's connection as `snow` finds it (see the parent
//! module's doc), with `snow connection test` when `--online`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{first_line, Doctor, Finding, Status};
use crate::config::CONFIG_FILE;
use crate::workspace::Workspace;

/// The oldest Snowflake CLI that reads the `definition_version: '2'`
/// projects deploy generates as Sluice expects (the tests run 3.30).
const MIN_SNOW_MAJOR: u32 = 3;

pub(super) fn snow_finding(workspace: &Workspace, doctor: &Doctor) -> Finding {
    let snow = &doctor.snow;
    let output = Command::new(snow)
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            return Finding::problem(
                Status::Fail,
                "snow",
                format!(
                    "`{} --version` failed ({}): {}",
                    snow.display(),
                    output.status,
                    first_line(&String::from_utf8_lossy(&output.stderr)).unwrap_or("no output")
                ),
                "reinstall the Snowflake CLI: pip install snowflake-cli",
            )
        }
        Err(error) => {
            let venv_snow = workspace.root().join(".venv/bin/snow");
            let fix = if venv_snow.is_file() {
                format!(
                    "add .venv/bin to PATH, or set SLUICE_SNOW={}",
                    venv_snow.display()
                )
            } else {
                "pip install snowflake-cli (or set SLUICE_SNOW to its `snow`)".to_string()
            };
            return Finding::problem(
                Status::Fail,
                "snow",
                format!(
                    "cannot run the Snowflake CLI `{}` ({}): {error}",
                    snow.display(),
                    doctor.snow_origin
                ),
                fix,
            );
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Snowflake CLI version:"))
        .map(str::trim)
        .unwrap_or_else(|| text.trim());
    let major: Option<u32> = version.split('.').next().and_then(|m| m.parse().ok());
    if major.is_some_and(|m| m >= MIN_SNOW_MAJOR) {
        Finding::ok(
            "snow",
            format!("Snowflake CLI {version} ({})", doctor.snow_origin),
        )
    } else {
        Finding::problem(
            Status::Warn,
            "snow",
            format!(
                "Snowflake CLI {version} ({}) is older than {MIN_SNOW_MAJOR}.0, which deploy's definition_version 2 projects expect",
                doctor.snow_origin
            ),
            "pip install --upgrade snowflake-cli",
        )
    }
}

/// Where the Snowflake CLI keeps its configuration (see the module doc).
pub fn snowflake_config_dir(vars: &BTreeMap<String, String>) -> PathBuf {
    let home = PathBuf::from(vars.get("HOME").map_or("/", String::as_str));
    let expand = |p: &str| match p.strip_prefix("~/") {
        Some(rest) => home.join(rest),
        None => PathBuf::from(p),
    };
    let configured = vars
        .get("SNOWFLAKE_HOME")
        .filter(|v| !v.is_empty())
        .map_or_else(|| home.join(".snowflake"), |v| expand(v));
    if configured.is_dir() {
        return configured;
    }
    // platformdirs' user config folder, which snow falls back to.
    if cfg!(target_os = "macos") {
        return home.join("Library/Application Support/snowflake");
    }
    vars.get("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map_or_else(|| home.join(".config"), PathBuf::from)
        .join("snowflake")
}

/// The connections `snow` knows from its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownConnections {
    /// The file the connections come from (`connections.toml` wins over `config.toml`).
    pub file: PathBuf,
    pub exists: bool,
    pub names: BTreeSet<String>,
    /// Connections in `config.toml` that `snow` ignores because `connections.toml` exists.
    pub shadowed: BTreeSet<String>,
}

/// Reads the connection names from `dir`; a file that is not valid TOML is a failure.
pub fn known_connections(dir: &Path) -> Result<KnownConnections, Finding> {
    let config_file = dir.join("config.toml");
    let connections_file = dir.join("connections.toml");
    let from_config = read_toml(&config_file)?
        .and_then(|t| t.get("connections").and_then(|c| c.as_table()).cloned())
        .map(|c| table_names(&c))
        .unwrap_or_default();
    match read_toml(&connections_file)? {
        Some(table) => Ok(KnownConnections {
            file: connections_file,
            exists: true,
            names: table_names(&table),
            shadowed: from_config,
        }),
        None => Ok(KnownConnections {
            exists: config_file.is_file(),
            file: config_file,
            names: from_config,
            shadowed: BTreeSet::new(),
        }),
    }
}

fn table_names(table: &toml::Table) -> BTreeSet<String> {
    table
        .iter()
        .filter(|(_, v)| v.is_table())
        .map(|(k, _)| k.clone())
        .collect()
}

fn read_toml(path: &Path) -> Result<Option<toml::Table>, Finding> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(Finding::problem(
                Status::Fail,
                "snowflake config",
                format!("cannot read {}: {error}", path.display()),
                format!("make {} readable by you (chmod 0600)", path.display()),
            ))
        }
    };
    text.parse::<toml::Table>().map(Some).map_err(|error| {
        let line = error
            .span()
            .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
        let location = line.map(|l| format!(":{l}")).unwrap_or_default();
        Finding::problem(
            Status::Fail,
            "snowflake config",
            format!(
                "{}{location}: invalid TOML: {}",
                path.display(),
                error.message()
            ),
            "correct the file (snow cannot read any connection from it)",
        )
    })
}

pub(super) fn connection_findings(workspace: &Workspace, doctor: &Doctor) -> Vec<Finding> {
    let config = workspace.config();
    let mut wanted: Vec<(String, String)> = Vec::new();
    for name in config.environments.keys() {
        let resolved = config.resolve(Some(name), Path::new(CONFIG_FILE), |k| {
            doctor.vars.get(k).cloned()
        });
        if let Some(connection) = resolved.ok().and_then(|r| r.values.connection) {
            wanted.push((name.clone(), connection));
        }
    }
    if wanted.is_empty() {
        return Vec::new();
    }
    let dir = snowflake_config_dir(&doctor.vars);
    let known = match known_connections(&dir) {
        Ok(known) => known,
        Err(finding) => return vec![finding],
    };
    let mut findings = Vec::new();
    for (environment, connection) in wanted {
        let finding = connection_finding(&environment, &connection, &known, &doctor.vars);
        let present = finding.status == Status::Ok;
        findings.push(finding);
        if present && doctor.online {
            findings.push(connection_test(doctor, &environment, &connection));
        }
    }
    findings
}

/// The `SNOWFLAKE_CONNECTIONS_<NAME>_<KEY>` variables set for `connection`.
fn connection_variables<'a>(connection: &str, vars: &'a BTreeMap<String, String>) -> Vec<&'a str> {
    let prefix = format!("SNOWFLAKE_CONNECTIONS_{}_", connection.to_uppercase());
    vars.keys()
        .filter(|k| k.starts_with(&prefix) && k.len() > prefix.len())
        .map(String::as_str)
        .collect()
}

fn connection_finding(
    environment: &str,
    connection: &str,
    known: &KnownConnections,
    vars: &BTreeMap<String, String>,
) -> Finding {
    let subject = format!("connection \"{connection}\"");
    let variables = connection_variables(connection, vars);
    let variable_pattern = format!("SNOWFLAKE_CONNECTIONS_{}_*", connection.to_uppercase());
    let in_connections_toml = known.file.ends_with("connections.toml");
    let section = if in_connections_toml {
        format!("[{connection}]")
    } else {
        format!("[connections.{connection}]")
    };
    let file = known.file.display();
    if known.names.contains(connection) {
        let filled = if variables.is_empty() {
            String::new()
        } else {
            format!(", filled in by {}", variables.join(", "))
        };
        return Finding::ok(
            subject,
            format!("environment {environment} uses {section} in {file}{filled}"),
        );
    }
    if known.shadowed.contains(connection) {
        return Finding::problem(
            Status::Fail,
            subject,
            format!(
                "environment {environment}'s connection is in config.toml, which snow ignores for connections because {file} exists"
            ),
            format!("move it to {file} as [{connection}]"),
        );
    }
    if !variables.is_empty() {
        return Finding::problem(
            Status::Fail,
            subject,
            format!(
                "environment {environment}: {variable_pattern} variables are set, but snow reads them only into an existing {section} section, and {file} has none"
            ),
            format!("add an empty section: printf '{section}\\n' >> {file}"),
        );
    }
    let place = if known.exists {
        format!("{file} has no {section}")
    } else {
        format!("there is no {file}")
    };
    Finding::problem(
        Status::Fail,
        subject,
        format!("environment {environment} needs it, but {place} and no {variable_pattern} variables are set"),
        format!(
            "snow connection add --connection-name {connection} --account ACCOUNT --user USER (in CI: an empty {section} section and {variable_pattern} variables)"
        ),
    )
}

fn connection_test(doctor: &Doctor, environment: &str, connection: &str) -> Finding {
    let subject = format!("connection \"{connection}\" online");
    let output = Command::new(&doctor.snow)
        .args(["connection", "test", "-c", connection])
        .stdin(Stdio::null())
        .output();
    match output {
        Ok(output) if output.status.success() => Finding::ok(
            subject,
            format!("`snow connection test -c {connection}` succeeded (environment {environment})"),
        ),
        Ok(output) => {
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            );
            Finding::problem(
                Status::Fail,
                subject,
                format!(
                    "`snow connection test -c {connection}` failed: {}",
                    snow_message(&text).unwrap_or_else(|| output.status.to_string())
                ),
                format!(
                    "check the account, user and credentials of connection {connection} (snow connection test -c {connection} shows the details)"
                ),
            )
        }
        Err(error) => Finding::problem(
            Status::Fail,
            subject,
            format!("cannot run `{}`: {error}", doctor.snow.display()),
            "install the Snowflake CLI (pip install snowflake-cli) or set SLUICE_SNOW",
        ),
    }
}

/// The message inside snow's boxed error (`╭─ Error ─╮ │ ... │ ╰─╯`), on one line.
fn snow_message(text: &str) -> Option<String> {
    let parts: Vec<&str> = text
        .lines()
        .map(|l| l.trim().trim_matches(|c: char| "│╭╮╰╯─ ".contains(c)))
        .filter(|l| !l.is_empty() && *l != "Error")
        .collect();
    (!parts.is_empty()).then(|| parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_config_folder_follows_snowflake_home() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".snowflake")).unwrap();
        let custom = dir.path().join("custom");
        std::fs::create_dir_all(&custom).unwrap();
        let h = home.to_str().unwrap();
        assert_eq!(
            snowflake_config_dir(&vars(&[("HOME", h)])),
            home.join(".snowflake")
        );
        assert_eq!(
            snowflake_config_dir(&vars(&[
                ("HOME", h),
                ("SNOWFLAKE_HOME", custom.to_str().unwrap())
            ])),
            custom
        );
        // A SNOWFLAKE_HOME that does not exist falls back to platformdirs, as snow does.
        assert_eq!(
            snowflake_config_dir(&vars(&[("HOME", h), ("SNOWFLAKE_HOME", "/nope")])),
            home.join(".config/snowflake")
        );
    }

    #[test]
    fn connections_toml_wins_over_config_toml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "default_connection_name = \"test\"\n[connections.test]\n[connections.prod]\naccount = \"x\"\n",
        )
        .unwrap();
        let known = known_connections(dir.path()).unwrap();
        assert_eq!(known.names, BTreeSet::from(["prod".into(), "test".into()]));
        std::fs::write(
            dir.path().join("connections.toml"),
            "[dev]\naccount = \"y\"\n",
        )
        .unwrap();
        let known = known_connections(dir.path()).unwrap();
        assert_eq!(known.names, BTreeSet::from(["dev".to_string()]));
        assert!(known.shadowed.contains("prod"));
        let finding = connection_finding("prod", "prod", &known, &BTreeMap::new());
        assert_eq!(finding.status, Status::Fail);
        assert!(finding.message.contains("ignores"), "{finding}");
    }

    #[test]
    fn broken_toml_names_the_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "[connections.test]\naccount = \n",
        )
        .unwrap();
        let finding = known_connections(dir.path()).unwrap_err();
        let line = finding.to_string();
        assert!(
            line.starts_with(&format!(
                "FAIL  snowflake config: {}:2: invalid TOML",
                dir.path().join("config.toml").display()
            )),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn variables_alone_are_not_a_connection() {
        let known = KnownConnections {
            file: PathBuf::from("/h/.snowflake/config.toml"),
            exists: true,
            names: BTreeSet::new(),
            shadowed: BTreeSet::new(),
        };
        let finding = connection_finding(
            "test",
            "test",
            &known,
            &vars(&[("SNOWFLAKE_CONNECTIONS_TEST_ACCOUNT", "a")]),
        );
        assert_eq!(finding.status, Status::Fail);
        assert_eq!(
            finding.fix.as_deref(),
            Some(
                "add an empty section: printf '[connections.test]\\n' >> /h/.snowflake/config.toml"
            )
        );
    }

    #[test]
    fn snow_errors_lose_their_box() {
        let text = "╭─ Error ──────╮\n│ Connection test is not configured │\n╰──────────────╯\n";
        assert_eq!(
            snow_message(text).as_deref(),
            Some("Connection test is not configured")
        );
    }
}
