//! chartyard's storage: one [`Registry`] over any `object_store` backend.
//!
//! Design rules, so that the same code is safe on a local disk and on S3 shared by
//! several replicas:
//! - a chart version is one small JSON record, written last with create-if-absent; the
//!   archive it names is stored first, content-addressed. A reader therefore sees a
//!   version whole or not at all, whatever is killed when.
//! - no object holds a whole space: uploads and deletes touch only their own keys.
//! - listings are derived from the records that exist, with parsed records cached by
//!   ETag so that a repeated listing costs one LIST and no GETs.
//!
//! Layout of the code: `gateway` is the only caller of the `ObjectStore` API (typed and
//! counted operations over `keys::StorageKey`); single-purpose stores own their keys
//! (`spaces`, `records`, `blobs`, `uploads`, `manifests`, `index`); `registry` (chart
//! operations), `oci` (OCI operations), `gc` and `compose` call the stores.

pub mod audit;
pub mod backend;
mod blobs;
mod cache;
mod changelog;
pub mod compose;
pub mod fs;
mod gateway;
mod gc;
mod index;
pub mod keys;
pub mod locks;
mod manifests;
pub mod oci;
mod policies;
mod records;
mod registry;
pub mod s3;
mod spaces;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tokens;
mod uploads;

#[cfg(test)]
mod parse_slots_tests;
#[cfg(test)]
mod provenance_tests;
#[cfg(test)]
mod request_count_tests;
#[cfg(test)]
mod retry_tests;

pub use gateway::StorageRequests;
pub use gc::GcReport;
pub use index::{ChartEntry, ListedVersions, RenderedIndex};
pub use records::StoredVersion;
pub use registry::{
    ArchiveStream, CacheStats, DEFAULT_CACHE_BYTES, DEFAULT_INDEX_FRESHNESS, DEFAULT_RECONCILE_INTERVAL, DeleteOptions,
    IndexStats, Registry, RegistryOptions, UploadOptions, default_parse_concurrency,
};
