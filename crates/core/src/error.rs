//! The one error type every layer returns; only the HTTP layer turns it into a status.

/// What went wrong, in terms of the registry's resources.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The request is malformed: a bad name, version, archive or body.
    #[error("{0}")]
    Invalid(String),
    /// The named resource (space, chart, version, ...) does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The named resource exists already and may not be overwritten.
    #[error("resource conflict because {0} exist")]
    AlreadyExists(String),
    /// Another writer holds the resource for longer than the configured lock timeout.
    #[error("{0} is locked and can't be handled")]
    Locked(String),
    /// A body or archive is over a configured size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The server failed (storage unavailable, corrupt record, ...).
    #[error("{0}")]
    Internal(String),
}

impl RegistryError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }

    pub fn internal(message: impl std::fmt::Display) -> Self {
        Self::Internal(message.to_string())
    }
}
