//! The chart model of chartyard: names and versions, Helm chart archives, values,
//! stored version records and the `/api/v1` wire types.
//!
//! This crate does no I/O and knows nothing about HTTP: everything here is a pure
//! function of its inputs, so every front-end (seed API, Helm repository, ChartMuseum,
//! OCI) and the client share one definition of what a chart is.

pub mod access;
pub mod archive;
pub mod compose;
pub mod error;
pub mod index;
pub mod metadata;
pub mod names;
pub mod oci;
pub mod paging;
pub mod policy;
pub mod provenance;
pub mod record;
pub mod search;
pub mod values;
pub mod wire;
pub mod yaml;

pub use error::RegistryError;
