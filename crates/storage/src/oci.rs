//! OCI distribution over the same store: blobs, resumable uploads, manifests, tags and
//! referrers. A repository is `{space}/{name}`; when `name` is a chart, its chart versions
//! are its tags (SemVer `+` written `_`) and each version's manifest is the one stored
//! with its record, so a chart written through any API can be pulled, and a chart pushed
//! here is a version everywhere.

use std::ops::Range;

use bytes::Bytes;
use chartyard_core::RegistryError;
use chartyard_core::error::echo;
use chartyard_core::names::{check_name, parse_version};
use chartyard_core::oci::{self, Descriptor, Manifest};
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::{GetOptions, GetRange, ObjectStoreExt, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::keys::StorageKey;
use crate::registry::{Registry, UploadOptions, new_generation, now_rfc3339, storage_error, stream_payload};

/// What went wrong, in the distribution spec's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OciErrorKind {
    BlobUnknown,
    BlobUploadUnknown,
    BlobUploadInvalid,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    RangeInvalid,
    Denied,
    Unsupported,
    /// Anything else, as a registry error (locked, internal, ...).
    Other,
}

#[derive(Debug)]
pub struct OciError {
    pub kind: OciErrorKind,
    pub message: String,
    /// The underlying registry error, for `Other`.
    pub source: Option<RegistryError>,
}

impl OciError {
    pub fn new(kind: OciErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), source: None }
    }
}

impl From<RegistryError> for OciError {
    fn from(error: RegistryError) -> Self {
        Self { kind: OciErrorKind::Other, message: error.to_string(), source: Some(error) }
    }
}

type Result<T> = std::result::Result<T, OciError>;

/// A request body being streamed in.
pub type ByteStream = BoxStream<'static, std::result::Result<Bytes, String>>;

/// A manifest as answered to clients.
pub struct ManifestContent {
    pub bytes: Bytes,
    pub media_type: String,
    pub digest: String,
}

/// A blob being read.
pub struct BlobContent {
    /// Size of the whole blob.
    pub size: u64,
    /// The bytes asked for (all, or the requested range).
    pub range: Range<u64>,
    pub body: BoxStream<'static, std::result::Result<Bytes, object_store::Error>>,
}

/// A manifest known in a repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryManifest {
    media_type: String,
    size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TagLink {
    digest: String,
}

/// The state of an upload: which repository it is for. Its bytes so far are its parts.
#[derive(Debug, Serialize, Deserialize)]
struct UploadSession {
    space: String,
    name: String,
    started: String,
}

fn check_repository(space: &str, name: &str) -> Result<()> {
    check_name("space", space)
        .and_then(|_| check_name("name", name))
        .map_err(|e| OciError::new(OciErrorKind::NameInvalid, e.to_string()))
}

fn check_upload_id(id: &str) -> Result<()> {
    if id.len() == 20 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(OciError::new(OciErrorKind::BlobUploadUnknown, format!("upload {} is unknown", echo(id))))
    }
}

fn digest_hex(digest: &str) -> Result<&str> {
    oci::parse_digest(digest).map_err(|e| OciError::new(OciErrorKind::DigestInvalid, e.to_string()))
}

impl Registry {
    // ---- blobs ----

    /// The size of a stored blob, `None` if there is none with that digest.
    pub async fn blob_size(&self, digest: &str) -> Result<Option<u64>> {
        let hex = digest_hex(digest)?;
        match self.store.head(&StorageKey::Blob { digest: hex }.path()).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage_error(e).into()),
        }
    }

    /// A blob, or a byte range of it.
    pub async fn open_blob(
        &self,
        space: &str,
        name: &str,
        digest: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<BlobContent> {
        check_repository(space, name)?;
        let hex = digest_hex(digest)?;
        let size = self
            .blob_size(digest)
            .await?
            .ok_or_else(|| OciError::new(OciErrorKind::BlobUnknown, format!("blob {} is unknown", echo(digest))))?;
        let range = match range {
            None => 0..size,
            Some((start, end)) => {
                let end = end.map_or(size, |e| (e + 1).min(size));
                if start >= end {
                    return Err(OciError::new(
                        OciErrorKind::RangeInvalid,
                        format!("range {start}- is outside 0-{size}"),
                    ));
                }
                start..end
            }
        };
        let options = GetOptions { range: Some(GetRange::Bounded(range.clone())), ..Default::default() };
        let body = if size == 0 {
            futures::stream::empty().boxed()
        } else {
            stream_payload(
                self.store.get_opts(&StorageKey::Blob { digest: hex }.path(), options).await.map_err(storage_error)?,
            )
        };
        Ok(BlobContent { size, range, body })
    }

    // ---- uploads ----

    /// Starts an upload session for a repository; answers its id.
    pub async fn start_upload(&self, space: &str, name: &str) -> Result<String> {
        check_repository(space, name)?;
        let id = new_generation();
        let session = UploadSession { space: space.into(), name: name.into(), started: now_rfc3339() };
        let body = serde_json::to_vec(&session).map_err(RegistryError::internal)?;
        self.store.put(&StorageKey::UploadSession { id: &id }.path(), body.into()).await.map_err(storage_error)?;
        Ok(id)
    }

    /// The parts of an upload so far, by offset, with their sizes; checks the session
    /// belongs to the repository.
    async fn upload_parts(&self, space: &str, name: &str, id: &str) -> Result<Vec<(u64, u64)>> {
        check_upload_id(id)?;
        let unknown = || OciError::new(OciErrorKind::BlobUploadUnknown, format!("upload {} is unknown", echo(id)));
        let session: UploadSession = match self.store.get(&StorageKey::UploadSession { id }.path()).await {
            Ok(result) => {
                serde_json::from_slice(&result.bytes().await.map_err(storage_error)?).map_err(|_| unknown())?
            }
            Err(object_store::Error::NotFound { .. }) => return Err(unknown()),
            Err(e) => return Err(storage_error(e).into()),
        };
        if session.space != space || session.name != name {
            return Err(unknown());
        }
        let metas: Vec<_> =
            self.store.list(Some(&StorageKey::Upload { id }.path())).try_collect().await.map_err(storage_error)?;
        let mut parts: Vec<(u64, u64)> = metas
            .iter()
            .filter_map(|m| m.location.filename()?.strip_prefix("part-")?.parse().ok().map(|offset| (offset, m.size)))
            .collect();
        parts.sort();
        Ok(parts)
    }

    /// How many bytes an upload holds.
    pub async fn upload_offset(&self, space: &str, name: &str, id: &str) -> Result<u64> {
        Ok(self.upload_parts(space, name, id).await?.iter().map(|(_, size)| size).sum())
    }

    /// Appends a chunk to an upload. `start`, when the client sends a range, must be the
    /// current end. Answers the new end.
    pub async fn append_upload(
        &self,
        space: &str,
        name: &str,
        id: &str,
        start: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        let offset = self.upload_offset(space, name, id).await?;
        if start.is_some_and(|s| s != offset) {
            return Err(OciError::new(
                OciErrorKind::RangeInvalid,
                format!("the upload holds {offset} bytes; a chunk must start there"),
            ));
        }
        let budget = (self.options.max_blob_bytes as u64).saturating_sub(offset);
        let written = self.stream_to(&StorageKey::UploadPart { id, offset }.path(), body, budget, None).await?;
        Ok(offset + written)
    }

    /// Writes a stream to one object, without holding it in memory; answers its size and,
    /// when given a hasher, feeds it. Fails once more than `budget` bytes arrive.
    async fn stream_to(
        &self,
        location: &object_store::path::Path,
        mut body: ByteStream,
        budget: u64,
        mut hasher: Option<&mut Sha256>,
    ) -> Result<u64> {
        let upload = self.store.put_multipart(location).await.map_err(storage_error)?;
        let mut writer = WriteMultipart::new(upload);
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(OciError::new(OciErrorKind::BlobUploadInvalid, format!("reading the body: {e}")));
                }
            };
            written += chunk.len() as u64;
            if written > budget {
                let _ = writer.abort().await;
                return Err(OciError::new(
                    OciErrorKind::SizeInvalid,
                    format!("blob is larger than {} bytes", self.options.max_blob_bytes),
                ));
            }
            if let Some(hasher) = hasher.as_deref_mut() {
                hasher.update(&chunk);
            }
            writer.write(&chunk);
        }
        writer.finish().await.map_err(storage_error)?;
        Ok(written)
    }

    /// Completes an upload with its last chunk (possibly empty): the blob becomes visible
    /// only if its bytes have the digest the client named.
    pub async fn finish_upload(&self, space: &str, name: &str, id: &str, digest: &str, body: ByteStream) -> Result<()> {
        let hex = digest_hex(digest)?.to_string();
        let parts = self.upload_parts(space, name, id).await?;
        // Earlier chunks, then the final body, streamed into one staging object.
        let (store, upload) = (self.store.clone(), id.to_string());
        let earlier = futures::stream::iter(parts)
            .then(move |(part_offset, _)| {
                let (store, upload) = (store.clone(), upload.clone());
                async move {
                    let location = StorageKey::UploadPart { id: &upload, offset: part_offset }.path();
                    store
                        .get(&location)
                        .await
                        .map(|r| stream_payload(r).map_err(|e| e.to_string()))
                        .map_err(|e| e.to_string())
                }
            })
            .try_flatten()
            .boxed();
        let whole: ByteStream = earlier.chain(body).boxed();
        let staging = StorageKey::UploadPart { id, offset: u64::MAX }.path();
        let mut hasher = Sha256::new();
        let budget = self.options.max_blob_bytes as u64;
        self.stream_to(&staging, whole, budget, Some(&mut hasher)).await?;
        let actual: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if actual != hex {
            self.delete_prefix(&StorageKey::Upload { id }.path()).await?;
            return Err(OciError::new(
                OciErrorKind::DigestInvalid,
                format!("the uploaded bytes have digest sha256:{actual}, not {}", echo(digest)),
            ));
        }
        self.store.rename(&staging, &StorageKey::Blob { digest: &hex }.path()).await.map_err(storage_error)?;
        self.delete_prefix(&StorageKey::Upload { id }.path()).await?;
        Ok(())
    }

    /// Abandons an upload.
    pub async fn cancel_upload(&self, space: &str, name: &str, id: &str) -> Result<()> {
        self.upload_parts(space, name, id).await?;
        Ok(self.delete_prefix(&StorageKey::Upload { id }.path()).await?)
    }

    // ---- manifests and tags ----

    /// Stores a manifest under a tag or its digest. A Helm chart manifest under a tag
    /// becomes a chart version (validated like any upload); answers the manifest digest.
    pub async fn put_manifest(
        &self,
        space: &str,
        name: &str,
        reference: &str,
        bytes: Bytes,
        content_type: Option<&str>,
        overwrite: bool,
    ) -> Result<String> {
        check_repository(space, name)?;
        let manifest = Manifest::parse(&bytes, content_type)
            .map_err(|e| OciError::new(OciErrorKind::ManifestInvalid, e.to_string()))?;
        let digest = oci::digest_of(&bytes);
        let tag = if reference.contains(':') {
            if reference != digest {
                return Err(OciError::new(
                    OciErrorKind::DigestInvalid,
                    format!("the manifest's digest is {digest}, not {}", echo(reference)),
                ));
            }
            None
        } else if oci::is_valid_tag(reference) {
            Some(reference)
        } else {
            return Err(OciError::new(OciErrorKind::ManifestInvalid, format!("tag {:?} is invalid", echo(reference))));
        };
        for blob in manifest.blobs() {
            if self.blob_size(&blob.digest).await?.is_none() {
                return Err(OciError::new(
                    OciErrorKind::ManifestBlobUnknown,
                    format!("blob {} is unknown", echo(&blob.digest)),
                ));
            }
        }
        let chart_tag = tag.filter(|_| manifest.is_helm_chart());
        if let Some(tag) = chart_tag {
            // Validated and stored as a chart version first: a refused push leaves nothing.
            self.put_chart_manifest(space, name, tag, &manifest, bytes.clone(), overwrite).await?;
        } else if let Some(tag) = tag
            && self.chart_manifest_for_tag(space, name, tag).await?.is_some()
        {
            return Err(OciError::new(
                OciErrorKind::Denied,
                format!("{space}/{name}:{tag} is a chart version; only that chart can be pushed under it"),
            ));
        }
        let generation = self.ensure_space(space).await?;
        let hex = digest_hex(&digest)?.to_string();
        self.put_blob(&hex, bytes.clone()).await?;
        let media_type = manifest.media_type_or(content_type).unwrap_or_else(|| oci::OCI_MANIFEST_MEDIA_TYPE.into());
        let link = RepositoryManifest {
            media_type,
            size: bytes.len() as u64,
            artifact_type: manifest.effective_artifact_type(),
            subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
            annotations: manifest.annotations.clone(),
        };
        let link_key = StorageKey::RepositoryManifest { space, generation: &generation, name, digest: &hex };
        self.store
            .put(&link_key.path(), serde_json::to_vec(&link).map_err(RegistryError::internal)?.into())
            .await
            .map_err(storage_error)?;
        if let Some(tag) = tag.filter(|_| chart_tag.is_none()) {
            let tag_key = StorageKey::RepositoryTag { space, generation: &generation, name, tag };
            let body = serde_json::to_vec(&TagLink { digest: digest.clone() }).map_err(RegistryError::internal)?;
            self.store.put(&tag_key.path(), body.into()).await.map_err(storage_error)?;
        }
        Ok(digest)
    }

    /// A chart manifest pushed under a tag: its layer becomes that chart version.
    async fn put_chart_manifest(
        &self,
        space: &str,
        name: &str,
        tag: &str,
        manifest: &Manifest,
        bytes: Bytes,
        overwrite: bool,
    ) -> Result<()> {
        let invalid = |m: String| OciError::new(OciErrorKind::ManifestInvalid, m);
        let layer =
            manifest.chart_layer().ok_or_else(|| invalid("a Helm chart manifest needs a chart layer".into()))?;
        let archive = self.read_blob(&layer.digest).await?;
        let provenance = match manifest.provenance_layer() {
            Some(layer) => Some(self.read_blob(&layer.digest).await?),
            None => None,
        };
        let version = oci::tag_to_version(tag);
        parse_version(&version).map_err(|e| invalid(format!("tag {tag}: {e}")))?;
        let chart = self.load_chart(archive.clone()).await?;
        if chart.metadata.name != name || chart.metadata.version != version {
            return Err(invalid(format!(
                "the chart is {}-{}, but was pushed as {space}/{name}:{tag}",
                chart.metadata.name, chart.metadata.version
            )));
        }
        let options = UploadOptions { provenance, overwrite, manifest: Some(bytes) };
        match self.upload_with(space, archive, options).await {
            Ok(_) => Ok(()),
            Err(RegistryError::AlreadyExists(id)) => {
                // Pushing the same chart again is fine (helm stamps a new creation time into
                // each manifest); other bytes may not replace a version.
                let existing = self.version(space, name, &version).await?;
                if format!("sha256:{}", existing.digest) == layer.digest {
                    Ok(())
                } else {
                    Err(OciError::new(OciErrorKind::Denied, format!("{id} exists; versions are not overwritten")))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn read_blob(&self, digest: &str) -> Result<Bytes> {
        let hex = digest_hex(digest)?;
        let result = self.store.get(&StorageKey::Blob { digest: hex }.path()).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => {
                OciError::new(OciErrorKind::ManifestBlobUnknown, format!("blob {} is unknown", echo(digest)))
            }
            e => storage_error(e).into(),
        })?;
        Ok(result.bytes().await.map_err(storage_error)?)
    }

    /// A manifest by tag or digest.
    pub async fn get_manifest(&self, space: &str, name: &str, reference: &str) -> Result<ManifestContent> {
        check_repository(space, name)?;
        let generation = self.oci_generation(space).await?;
        let unknown = || {
            OciError::new(
                OciErrorKind::ManifestUnknown,
                format!("manifest {} is unknown in {space}/{name}", echo(reference)),
            )
        };
        let (digest, media_type) = if reference.contains(':') {
            let hex = digest_hex(reference)?;
            match self.repository_manifest(space, &generation, name, hex).await? {
                Some(link) => (reference.to_string(), link.media_type),
                None => {
                    let chart_manifest =
                        self.chart_manifests(space, name).await?.into_iter().find(|(_, m)| m.digest == reference);
                    let (_, m) = chart_manifest.ok_or_else(unknown)?;
                    (m.digest, m.media_type)
                }
            }
        } else if let Some(m) = self.chart_manifest_for_tag(space, name, reference).await? {
            (m.digest, m.media_type)
        } else {
            let tag_key = StorageKey::RepositoryTag { space, generation: &generation, name, tag: reference };
            let link: TagLink = match self.store.get(&tag_key.path()).await {
                Ok(r) => {
                    serde_json::from_slice(&r.bytes().await.map_err(storage_error)?).map_err(RegistryError::internal)?
                }
                Err(object_store::Error::NotFound { .. }) => return Err(unknown()),
                Err(e) => return Err(storage_error(e).into()),
            };
            let hex = digest_hex(&link.digest)?;
            let media_type =
                self.repository_manifest(space, &generation, name, hex).await?.ok_or_else(unknown)?.media_type;
            (link.digest, media_type)
        };
        let bytes = self.read_blob(&digest).await.map_err(|_| unknown())?;
        Ok(ManifestContent { bytes, media_type, digest })
    }

    async fn oci_generation(&self, space: &str) -> Result<String> {
        self.generation(space)
            .await?
            .ok_or_else(|| OciError::new(OciErrorKind::NameUnknown, format!("repository space {space} is unknown")))
    }

    async fn repository_manifest(
        &self,
        space: &str,
        generation: &str,
        name: &str,
        hex: &str,
    ) -> Result<Option<RepositoryManifest>> {
        let key = StorageKey::RepositoryManifest { space, generation, name, digest: hex };
        match self.store.get(&key.path()).await {
            Ok(r) => Ok(Some(
                serde_json::from_slice(&r.bytes().await.map_err(storage_error)?).map_err(RegistryError::internal)?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(storage_error(e).into()),
        }
    }

    /// The manifests of a chart's versions, by version.
    async fn chart_manifests(
        &self,
        space: &str,
        name: &str,
    ) -> Result<Vec<(String, chartyard_core::record::ManifestRef)>> {
        match self.chart_versions(space, name).await {
            Ok(versions) => {
                Ok(versions.into_iter().filter_map(|v| Some((v.version, v.record.manifest.clone()?))).collect())
            }
            Err(RegistryError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    async fn chart_manifest_for_tag(
        &self,
        space: &str,
        name: &str,
        tag: &str,
    ) -> Result<Option<chartyard_core::record::ManifestRef>> {
        let version = oci::tag_to_version(tag);
        if parse_version(&version).is_err() {
            return Ok(None);
        }
        match self.version(space, name, &version).await {
            Ok(record) => Ok(record.manifest.clone()),
            Err(RegistryError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Tags of a repository in lexical order: its chart versions and its other tags.
    pub async fn tags(&self, space: &str, name: &str) -> Result<Vec<String>> {
        check_repository(space, name)?;
        let generation = self.oci_generation(space).await?;
        let mut tags: Vec<String> =
            self.chart_manifests(space, name).await?.into_iter().map(|(v, _)| oci::version_to_tag(&v)).collect();
        let prefix = StorageKey::RepositoryTags { space, generation: &generation, name }.path();
        let listed: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.map_err(storage_error)?;
        tags.extend(listed.iter().filter_map(|m| m.location.filename()?.strip_suffix(".json").map(str::to_string)));
        let known_repository = !tags.is_empty()
            || self
                .store
                .list(Some(&StorageKey::RepositoryManifests { space, generation: &generation, name }.path()))
                .next()
                .await
                .is_some();
        if !known_repository {
            return Err(OciError::new(OciErrorKind::NameUnknown, format!("repository {space}/{name} is unknown")));
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Deletes a tag, or a manifest with every tag and chart version that names it.
    pub async fn delete_manifest(&self, space: &str, name: &str, reference: &str) -> Result<()> {
        check_repository(space, name)?;
        let generation = self.oci_generation(space).await?;
        let unknown = || {
            OciError::new(
                OciErrorKind::ManifestUnknown,
                format!("manifest {} is unknown in {space}/{name}", echo(reference)),
            )
        };
        if !reference.contains(':') {
            if self.chart_manifest_for_tag(space, name, reference).await?.is_some() {
                return Ok(self.delete_version(space, name, &oci::tag_to_version(reference)).await?);
            }
            let tag_key = StorageKey::RepositoryTag { space, generation: &generation, name, tag: reference };
            return match self.delete_if_present(&tag_key.path()).await? {
                true => Ok(()),
                false => Err(unknown()),
            };
        }
        let hex = digest_hex(reference)?.to_string();
        let mut found = self
            .delete_if_present(
                &StorageKey::RepositoryManifest { space, generation: &generation, name, digest: &hex }.path(),
            )
            .await?;
        for (version, manifest) in self.chart_manifests(space, name).await? {
            if manifest.digest == reference {
                self.delete_version(space, name, &version).await?;
                found = true;
            }
        }
        let prefix = StorageKey::RepositoryTags { space, generation: &generation, name }.path();
        let listed: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.map_err(storage_error)?;
        for meta in listed {
            let link: Option<TagLink> = match self.store.get(&meta.location).await {
                Ok(r) => serde_json::from_slice(&r.bytes().await.map_err(storage_error)?).ok(),
                Err(_) => None,
            };
            if link.is_some_and(|l| l.digest == reference) {
                found |= self.delete_if_present(&meta.location).await?;
            }
        }
        if found { Ok(()) } else { Err(unknown()) }
    }

    /// Manifests in a repository whose `subject` is `digest`, optionally of one type.
    pub async fn referrers(
        &self,
        space: &str,
        name: &str,
        digest: &str,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        check_repository(space, name)?;
        digest_hex(digest)?;
        let Some(generation) = self.generation(space).await? else { return Ok(Vec::new()) };
        let prefix = StorageKey::RepositoryManifests { space, generation: &generation, name }.path();
        let listed: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.map_err(storage_error)?;
        let mut referrers = Vec::new();
        for meta in listed {
            let Some(hex) = meta.location.filename().and_then(|f| f.strip_suffix(".json")).map(str::to_string) else {
                continue;
            };
            let Some(link) = self.repository_manifest(space, &generation, name, &hex).await? else { continue };
            if link.subject.as_deref() != Some(digest)
                || artifact_type.is_some_and(|t| link.artifact_type.as_deref() != Some(t))
            {
                continue;
            }
            referrers.push(Descriptor {
                media_type: link.media_type,
                digest: format!("sha256:{hex}"),
                size: link.size,
                artifact_type: link.artifact_type,
                annotations: link.annotations,
            });
        }
        Ok(referrers)
    }

    /// Blobs the OCI repositories of live spaces refer to (manifests, configs, layers),
    /// for garbage collection.
    pub(crate) async fn repository_blobs(
        &self,
        live: &std::collections::HashMap<String, String>,
    ) -> std::result::Result<Vec<String>, RegistryError> {
        let metas: Vec<_> =
            self.store.list(Some(&StorageKey::AllRepositories.path())).try_collect().await.map_err(storage_error)?;
        let mut blobs = Vec::new();
        for meta in metas {
            let parts: Vec<String> = meta.location.parts().map(|p| p.as_ref().to_string()).collect();
            // oci/{space}/{generation}/{name}/manifests/{hex}.json
            let [_, space, generation, _, kind, file] = parts.as_slice() else { continue };
            if kind != "manifests" || live.get(space) != Some(generation) {
                continue;
            }
            let Some(hex) = file.strip_suffix(".json") else { continue };
            blobs.push(hex.to_string());
            if let Ok(manifest) = self.read_blob(&format!("sha256:{hex}")).await
                && let Ok(parsed) = Manifest::parse(&manifest, None)
            {
                blobs.extend(parsed.blobs().filter_map(|d| oci::parse_digest(&d.digest).ok().map(str::to_string)));
            }
        }
        Ok(blobs)
    }

    /// Stores a whole blob sent in one request (`POST ...?digest=`).
    pub async fn put_whole_blob(&self, space: &str, name: &str, digest: &str, body: ByteStream) -> Result<()> {
        let id = self.start_upload(space, name).await?;
        self.finish_upload(space, name, &id, digest, body).await
    }

    /// Deletes a blob nothing live needs. Blobs are stored once for every repository, so
    /// one still used by a chart version or manifest anywhere is refused.
    pub async fn delete_blob(&self, space: &str, name: &str, digest: &str) -> Result<()> {
        check_repository(space, name)?;
        let hex = digest_hex(digest)?.to_string();
        if self.blob_size(digest).await?.is_none() {
            return Err(OciError::new(OciErrorKind::BlobUnknown, format!("blob {} is unknown", echo(digest))));
        }
        if self.blob_in_use(&hex).await? {
            return Err(OciError::new(
                OciErrorKind::Denied,
                format!("blob {} is still referenced by a manifest", echo(digest)),
            ));
        }
        self.delete_if_present(&StorageKey::Blob { digest: &hex }.path()).await?;
        Ok(())
    }

    /// Makes a blob from another repository available here (`POST ...?mount=&from=`):
    /// blobs are stored once, so this only checks it exists.
    pub async fn mount_blob(&self, space: &str, name: &str, digest: &str) -> Result<bool> {
        check_repository(space, name)?;
        Ok(self.blob_size(digest).await?.is_some())
    }
}
