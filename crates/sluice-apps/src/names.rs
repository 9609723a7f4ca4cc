//! App and page names: lowercase snake_case identifiers.
//!
//! A name becomes a folder, a Python file, a Snowflake object name and a
//! Python class name, so only `^[a-z][a-z0-9_]*$` is accepted: that is safe
//! in all four places and cannot escape the apps folder (`../x`).

/// Names that cannot be apps: `components` holds the shared Python code.
pub const RESERVED_APP_NAMES: [&str; 1] = ["components"];

/// What is wrong with a proposed name (the caller adds "app"/"page").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    /// Not a lowercase snake_case identifier.
    NotSnakeCase,
    /// A name Sluice keeps for itself.
    Reserved,
}

/// Checks an app or page name's spelling.
pub fn check_identifier(name: &str) -> Result<(), NameProblem> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok {
        Ok(())
    } else {
        Err(NameProblem::NotSnakeCase)
    }
}

/// Checks an app name: an identifier that is not reserved, and not a
/// folder no command reads as an app (`venv`, `node_modules`).
pub fn check_app_name(name: &str) -> Result<(), NameProblem> {
    check_identifier(name)?;
    if RESERVED_APP_NAMES.contains(&name) || sluice_rules::workspace::is_skipped_dir(name) {
        return Err(NameProblem::Reserved);
    }
    Ok(())
}

/// `sales_dashboard` → `Sales Dashboard`.
pub fn title_case(name: &str) -> String {
    name.split('_')
        .filter(|w| !w.is_empty())
        .map(capitalise)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `sales_dashboard` → `SalesDashboard` (for Python class names).
pub fn camel_case(name: &str) -> String {
    name.split('_').map(capitalise).collect()
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// A folder name turned into a usable project name (`My Project` → `my_project`).
pub fn project_name_from(folder: &str) -> String {
    let mut name = String::new();
    for c in folder.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.ends_with('_') && !name.is_empty() {
            name.push('_');
        }
    }
    let name = name.trim_end_matches('_').to_string();
    if check_identifier(&name).is_ok() {
        name
    } else {
        "analytics".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers() {
        for good in ["a", "sales", "sales_dashboard", "q2_report", "a_"] {
            assert_eq!(check_identifier(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "Sales",
            "2x",
            "_x",
            "sales-dashboard",
            "../x",
            "a/b",
            "a.b",
            "é",
            "a b",
        ] {
            assert_eq!(
                check_identifier(bad),
                Err(NameProblem::NotSnakeCase),
                "{bad}"
            );
        }
    }

    #[test]
    fn components_is_reserved_for_apps() {
        assert_eq!(check_app_name("components"), Err(NameProblem::Reserved));
        // Folders the workspace layout never reads as apps.
        assert_eq!(check_app_name("venv"), Err(NameProblem::Reserved));
        assert_eq!(check_app_name("node_modules"), Err(NameProblem::Reserved));
        assert_eq!(check_identifier("components"), Ok(()));
    }

    #[test]
    fn cases() {
        assert_eq!(title_case("sales_dashboard"), "Sales Dashboard");
        assert_eq!(camel_case("sales_dashboard"), "SalesDashboard");
        assert_eq!(camel_case("q2_report"), "Q2Report");
        assert_eq!(project_name_from("My Project-2"), "my_project_2");
        assert_eq!(project_name_from("w"), "w");
        assert_eq!(project_name_from("123"), "analytics");
        assert_eq!(project_name_from(".tmpAbC"), "tmpabc");
    }
}
