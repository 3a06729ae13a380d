//! YAML in and out, with the budgets that keep hostile documents cheap.

use serde::{Serialize, de::DeserializeOwned};

use crate::RegistryError;

/// Parses one YAML document from a chart file. The budget bounds nodes and depth so that
/// alias bombs and deeply nested documents fail fast instead of exhausting the server.
pub fn from_yaml<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, RegistryError> {
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: 1_000_000,
            max_depth: 50,
            max_aliases: 10_000,
            max_documents: 1,
        },
    };
    serde_saphyr::from_slice_with_options(bytes, options)
        .map_err(|e| RegistryError::invalid(format!("{what} is not valid YAML: {}", first_line(&e.to_string()))))
}

/// Writes YAML; strings a YAML 1.1 reader would take for another type are quoted.
pub fn to_yaml<T: Serialize>(value: &T) -> Result<String, RegistryError> {
    serde_saphyr::to_string(value).map_err(RegistryError::internal)
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}
