//! Which space a repository or ChartMuseum request is for: the `{space}` path segment, or
//! the configured default space for the routes served at the root.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use chartyard_storage::DeleteOptions;

use crate::AppState;
use crate::auth::Caller;
use crate::chartmuseum::CmError;

/// How a space's policy treats the caller's deletions, for every route that deletes
/// versions, tags or manifests: in an immutable space only a global admin deletes.
pub fn delete_options(caller: Option<&Caller>) -> DeleteOptions {
    DeleteOptions { by_global_admin: caller.is_some_and(|c| c.is_global_admin() && !c.rejected()) }
}

/// The space named by the request.
pub struct SpaceName(pub String);

impl FromRequestParts<AppState> for SpaceName {
    type Rejection = CmError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let params: Path<HashMap<String, String>> =
            Path::from_request_parts(parts, state).await.map_err(|e| CmError::bad_request(e.body_text()))?;
        match params.get("space").cloned().or_else(|| state.default_space.clone()) {
            Some(space) => Ok(Self(space)),
            None => Err(CmError::not_found("no default space is configured")),
        }
    }
}
