//! Content-addressed blobs, shared by the whole registry, and their links into OCI
//! repositories. A blob's bytes always hash to its name and a stored blob is never
//! overwritten: every write is create-if-absent.

use std::ops::Range;

use bytes::Bytes;
use chartyard_core::RegistryError;
use chartyard_core::oci::{self, BlobDigest};
use object_store::ObjectMeta;

use crate::gateway::{Gateway, Opened, collect};
use crate::keys::{StorageKey, parse_blob_path};
use crate::uploads::Staging;

type Result<T> = std::result::Result<T, RegistryError>;

/// The blobs and repository blob links.
pub(crate) struct Blobs {
    gateway: Gateway,
}

impl Blobs {
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway }
    }

    /// Stores bytes under their digest, which the caller computed from these very bytes.
    /// A stored blob is never overwritten (create-if-absent): its bytes are the ones its
    /// name was verified against when it was first written.
    pub async fn put(&self, digest: BlobDigest<'_>, bytes: Bytes) -> Result<()> {
        self.gateway.create(StorageKey::Blob { digest }, bytes).await?;
        Ok(())
    }

    /// Makes the bytes of a staging object, verified against `digest` by the caller, that
    /// blob, unless it is stored already; the staging object goes either way.
    pub async fn adopt(&self, staging: &Staging, digest: BlobDigest<'_>) -> Result<()> {
        if !self.gateway.rename_if_absent(staging.key(), StorageKey::Blob { digest }).await? {
            self.gateway.delete(staging.key()).await?;
        }
        Ok(())
    }

    /// The size of a stored blob, `None` if there is none with that digest.
    pub async fn size(&self, digest: BlobDigest<'_>) -> Result<Option<u64>> {
        Ok(self.gateway.head(StorageKey::Blob { digest }).await?.map(|meta| meta.size))
    }

    /// A stored blob, or a byte range of it, opened for reading; `None` if there is none.
    pub async fn open(&self, digest: BlobDigest<'_>, range: Option<Range<u64>>) -> Result<Option<Opened>> {
        self.gateway.open(StorageKey::Blob { digest }, range).await
    }

    /// A whole stored blob; `None` if there is none, `OverMaximum` if it has more than
    /// `max` bytes.
    pub async fn read(&self, digest: BlobDigest<'_>, max: u64) -> Result<Option<Bytes>> {
        let Some(opened) = self.open(digest, None).await? else { return Ok(None) };
        if opened.size > max {
            return Err(RegistryError::OverMaximum(format!("blob {digest} is larger than {max} bytes")));
        }
        collect(opened.body).await.map(Some)
    }

    /// Every stored blob, by digest (`algorithm:hex`).
    pub async fn list(&self) -> Result<Vec<(String, ObjectMeta)>> {
        let blobs = self.gateway.list(StorageKey::Blobs).await?;
        Ok(blobs.into_iter().filter_map(|blob| Some((parse_blob_path(&blob.location)?, blob))).collect())
    }

    /// Deletes a blob's bytes; answers whether they were there.
    pub async fn delete(&self, digest: &str) -> Result<bool> {
        self.gateway.delete(StorageKey::Blob { digest: oci::parse_digest(digest)? }).await
    }

    /// Links a stored blob into a repository.
    pub async fn link(&self, space: &str, generation: &str, name: &str, digest: BlobDigest<'_>) -> Result<()> {
        self.gateway.put(StorageKey::RepositoryBlob { space, generation, name, digest }, Bytes::new()).await
    }

    /// Whether a blob is linked into a repository.
    pub async fn linked(&self, space: &str, generation: &str, name: &str, digest: BlobDigest<'_>) -> Result<bool> {
        self.gateway.exists(StorageKey::RepositoryBlob { space, generation, name, digest }).await
    }

    /// Removes a blob's link from a repository; answers whether it was there.
    pub async fn unlink(&self, space: &str, generation: &str, name: &str, digest: BlobDigest<'_>) -> Result<bool> {
        self.gateway.delete(StorageKey::RepositoryBlob { space, generation, name, digest }).await
    }
}
