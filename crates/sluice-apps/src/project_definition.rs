//! One value of an app's own `snowflake.yml` (the Snowflake CLI's project
//! definition): a key of its `streamlit` entity (`definition_version: 2`)
//! or of its `streamlit:` section (version 1). `sluice doctor` reads the
//! runtime and `sluice import` the main file through it; deploy builds the
//! definition it uploads itself.

/// `key` of the app's streamlit entity, when the text is YAML that has it
/// as a string.
pub(crate) fn streamlit_value(text: &str, key: &str) -> Option<String> {
    let definition: serde_norway::Value = serde_norway::from_str(text).ok()?;
    let from_entities = definition
        .get("entities")
        .and_then(|e| e.as_mapping())
        .into_iter()
        .flat_map(|entities| entities.values())
        .filter(|entity| entity.get("type").and_then(|t| t.as_str()) == Some("streamlit"))
        .find_map(|entity| entity.get(key).and_then(|v| v.as_str()));
    from_entities
        .or_else(|| {
            definition
                .get("streamlit")
                .and_then(|s| s.get(key))
                .and_then(|v| v.as_str())
        })
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_version_2_entities_and_version_1_sections() {
        let v2 = "definition_version: '2'\nentities:\n  fn:\n    type: function\n    main_file: no.py\n  old:\n    type: streamlit\n    main_file: home.py\n";
        assert_eq!(streamlit_value(v2, "main_file").as_deref(), Some("home.py"));
        let v1 = "definition_version: 1\nstreamlit:\n  name: x\n  main_file: start.py\n";
        assert_eq!(
            streamlit_value(v1, "main_file").as_deref(),
            Some("start.py")
        );
        assert_eq!(streamlit_value(v1, "runtime_name"), None);
        assert_eq!(streamlit_value("not: [yaml", "main_file"), None);
    }
}
