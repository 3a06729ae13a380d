//! JSON bodies of the `/api/v1` API, shared by the server and its clients.

use serde::{Deserialize, Serialize};

pub use crate::metadata::MetadataTree as Metadata;

/// A page of a list: `{"metadata":{"total":N,"itemsLength":M},"items":[...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListResponse<T> {
    pub metadata: ListMetadata,
    pub items: Vec<T>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListMetadata {
    /// Items in the whole list.
    pub total: usize,
    /// Items on this page.
    #[serde(rename = "itemsLength")]
    pub items_length: usize,
}

impl<T> ListResponse<T> {
    pub fn new(total: usize, items: Vec<T>) -> Self {
        Self { metadata: ListMetadata { total, items_length: items.len() }, items }
    }
}

/// Answer to creating a space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub name: String,
    pub link: String,
}

/// Answer to storing a chart version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChartLink {
    pub space: String,
    pub chart: String,
    pub version: String,
    pub link: String,
}

/// A chart found by `GET /api/v1/search`: its latest version, with what a result list shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchHit {
    pub space: String,
    pub chart: String,
    pub version: String,
    #[serde(rename = "appVersion", default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    /// The version's `/api/v1` URL.
    pub link: String,
}

/// Every `/api/v1` error: `{"message","reason"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    pub reason: String,
}

/// The seed's `reason` values.
pub mod reason {
    /// A malformed request (400).
    pub const REQUEST: &str = "ReasonRequest";
    /// Not found, conflict and server errors (404, 409, 500).
    pub const INTERNAL: &str = "ReasonInternal";
    /// A resource held by another writer past the lock timeout (423).
    pub const LOCKING: &str = "ResourceLocking";
}

/// One entry of a space's audit log: a write (or a refused attempt at one) in the space.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When the request was answered (RFC 3339, UTC).
    pub time: String,
    /// The user, or `anonymous`.
    pub user: String,
    /// How the caller signed in: `password`, `token:{id}`, `session`, `bearer` or
    /// `anonymous`.
    pub via: String,
    /// The client's address (the peer's, or what a trusted proxy forwarded); empty if
    /// unknown.
    #[serde(default)]
    pub client: String,
    pub method: String,
    /// The route template the request matched, such as
    /// `/api/v1/spaces/{space}/charts/{chart}/versions/{version}`.
    pub route: String,
    pub path: String,
    /// The status of the answer (401 and 403 for refused requests).
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}
