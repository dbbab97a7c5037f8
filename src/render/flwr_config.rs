//! The `flwr` CLI's connection to the deployment: a `[superlink.NAME]` table for
//! `~/.flwr/config.toml` (1.35+), or `[tool.flwr.federations.NAME]` for the app's
//! `pyproject.toml` (releases before 1.35). Serialized by toml_edit, never pasted.

use anyhow::Result;
use toml_edit::{DocumentMut, Item, Table, value};

use crate::deploy::Deployment;
use crate::error::Error;

use super::text;

/// The TOML table alone (no comments), for tests and for merging into a config file.
/// Empty for a deployment without a superlink.
pub fn table(deployment: &Deployment) -> String {
    let Some(connection) = &deployment.connection else {
        return String::new();
    };
    let mut entry = Table::new();
    entry.insert("address", value(connection.address.to_string()));
    match &connection.root_certificates {
        Some(ca) => {
            entry.insert("root-certificates", value(ca.to_string_lossy().as_ref()));
        }
        None => {
            entry.insert("insecure", value(true));
        }
    }
    let path: &[&str] = if connection.config_toml {
        &["superlink"]
    } else {
        &["tool", "flwr", "federations"]
    };
    let mut document = DocumentMut::new();
    let mut parent: &mut Table = document.as_table_mut();
    for key in path {
        let mut implicit = Table::new();
        implicit.set_implicit(true);
        parent = parent
            .entry(key)
            .or_insert(Item::Table(implicit))
            .as_table_mut()
            .expect("a table we just made");
    }
    parent.insert(&connection.name, Item::Table(entry));
    document.to_string()
}

/// `render flwr-config`: the connection snippet (none without a superlink).
pub const FORMAT: super::Format = super::Format {
    name: "flwr-config",
    about: Some(
        "The flwr CLI connection ([superlink.NAME] for ~/.flwr/config.toml; the pyproject.toml federation table before 1.35)",
    ),
    file_name: text::flwr_config_file,
    mode: super::public,
    in_folder: |deployment| deployment.connection.is_some(),
    render: |deployment, _| render(deployment),
};

/// The snippet with comments saying where it goes and how to use it.
pub fn render(deployment: &Deployment) -> Result<String> {
    if deployment.connection.is_none() {
        return Err(Error::Usage(
            "flwr-config: a supernode deployment has no superlink for the flwr CLI to connect to; render it from the superlink's deployment"
                .into(),
        )
        .into());
    }
    let mut out = text::flwr_config_header(deployment)?;
    out.push_str(&table(deployment));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::deploy::{self, Security, Settings};

    #[test]
    fn newest_release_uses_config_toml() {
        let settings = Settings::defaults(PathBuf::from("/srv/a \"b\""));
        let text = table(&deploy::build(&settings).unwrap());
        let parsed: DocumentMut = text.parse().unwrap();
        let entry = &parsed["superlink"]["flowerbed"];
        assert_eq!(entry["address"].as_str(), Some("127.0.0.1:8000"));
        assert_eq!(
            entry["root-certificates"].as_str(),
            Some("/srv/a \"b\"/supernode-certificates/ca.crt")
        );
    }

    #[test]
    fn seed_release_uses_pyproject_federations() {
        let mut settings = Settings::defaults(PathBuf::from("/srv/x"));
        settings.flower_version = "1.13.1".into();
        settings.security = Security::Insecure;
        let text = table(&deploy::build(&settings).unwrap());
        let parsed: DocumentMut = text.parse().unwrap();
        let entry = &parsed["tool"]["flwr"]["federations"]["flowerbed"];
        assert_eq!(entry["address"].as_str(), Some("127.0.0.1:9093"));
        assert_eq!(entry["insecure"].as_bool(), Some(true));
        assert!(text.starts_with("[tool.flwr.federations.flowerbed]"), "{text}");
    }
}
