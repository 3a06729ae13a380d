//! OCI distribution over the same store: blobs, resumable uploads, manifests, tags and
//! referrers. A repository is `{space}/{name}`; when `name` is a chart, its chart versions
//! are its tags (SemVer `+` written `_`) and each version's manifest is the one stored
//! with its record, so a chart written through any API can be pulled, and a chart pushed
//! here is a version everywhere.
//!
//! Blobs are stored once for the whole registry, but are visible only in repositories
//! that hold them, as distribution does: one uploaded or mounted there (a link object),
//! one that is a manifest there, or one a chart version of that name needs. Bytes are
//! only ever removed by garbage collection; deleting a blob unlinks it.

use std::ops::Range;

use bytes::Bytes;
use chartyard_core::RegistryError;
use chartyard_core::error::{Thing, echo};
use chartyard_core::names::{check_name, parse_version};
use chartyard_core::oci::{self, BlobDigest, Descriptor, Hasher, Manifest};
use futures::stream::StreamExt;

pub use crate::gateway::ByteStream;
use crate::gateway::{ObjectStream, WriteError};
use crate::gc::referenced_blobs;
use crate::manifests::{Repository, RepositoryManifest};
use crate::registry::{DeleteOptions, Registry, UploadOptions};
use crate::spaces::new_generation;
use crate::uploads::Staging;

type Result<T> = std::result::Result<T, RegistryError>;

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
    pub body: ObjectStream,
}

/// The bytes of a blob a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=start-` or `bytes=start-end` (inclusive end).
    From { start: u64, end: Option<u64> },
    /// `bytes=-n`: the last `n` bytes.
    Suffix(u64),
}

impl ByteRange {
    /// The byte positions this range selects in a blob of `size` bytes.
    fn resolve(self, size: u64) -> Option<Range<u64>> {
        let range = match self {
            Self::From { start, end } => start..end.map_or(size, |e| e.saturating_add(1).min(size)),
            Self::Suffix(n) => size.saturating_sub(n)..size,
        };
        (range.start < range.end).then_some(range)
    }
}

/// What an upload's client said about the chunk it sends.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChunkRange {
    /// Where the chunk starts (`Content-Range: start-end`); it must be the upload's end.
    pub start: Option<u64>,
    /// How long the chunk is, from `Content-Range` or `Content-Length`; the body must
    /// be exactly that long.
    pub len: Option<u64>,
}

fn check_repository(space: &str, name: &str) -> Result<()> {
    check_name("space", space)
        .and_then(|_| check_name("name", name))
        .map_err(|e| RegistryError::InvalidName(e.to_string()))
}

fn upload_unknown(id: &str) -> RegistryError {
    RegistryError::Missing(Thing::Upload, format!("upload {} is unknown", echo(id)))
}

fn check_upload_id(id: &str) -> Result<()> {
    if id.len() == 20 && id.bytes().all(|b| b.is_ascii_hexdigit()) { Ok(()) } else { Err(upload_unknown(id)) }
}

fn parse_digest(digest: &str) -> Result<BlobDigest<'_>> {
    oci::parse_digest(digest).map_err(|e| RegistryError::InvalidDigest(e.to_string()))
}

fn blob_unknown(digest: &str) -> RegistryError {
    RegistryError::Missing(Thing::Blob, format!("blob {} is unknown", echo(digest)))
}

/// Layers a client may leave out of the registry (their bytes live elsewhere).
fn is_non_distributable(media_type: &str) -> bool {
    media_type.contains(".nondistributable.") || media_type.contains(".foreign.")
}

/// Largest chart config blob read to check it against the chart.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

impl Registry {
    // ---- blobs ----

    /// The size of a stored blob, `None` if there is none with that digest.
    async fn stored_blob_size(&self, digest: BlobDigest<'_>) -> Result<Option<u64>> {
        self.blobs.size(digest).await
    }

    /// Whether a repository holds a blob: uploaded or mounted there, one of its manifests,
    /// or needed by one of its chart versions.
    async fn repository_has_blob(
        &self,
        space: &str,
        generation: &str,
        name: &str,
        digest: BlobDigest<'_>,
    ) -> Result<bool> {
        if self.blobs.linked(space, generation, name, digest).await?
            || self.manifests.exists(Repository { space, generation, name }, digest).await?
        {
            return Ok(true);
        }
        let wanted = digest.to_string();
        Ok(self.chart_manifests_records(space, name).await?.iter().any(|r| referenced_blobs(r).contains(&wanted)))
    }

    /// The size of a blob held by a repository, `None` if the repository does not hold it.
    pub async fn blob_size(&self, space: &str, name: &str, digest: &str) -> Result<Option<u64>> {
        check_repository(space, name)?;
        let parsed = parse_digest(digest)?;
        let Some(generation) = self.generation(space).await? else { return Ok(None) };
        if !self.repository_has_blob(space, &generation, name, parsed).await? {
            return Ok(None);
        }
        self.stored_blob_size(parsed).await
    }

    /// A blob of a repository, or a byte range of it.
    pub async fn open_blob(
        &self,
        space: &str,
        name: &str,
        digest: &str,
        range: Option<ByteRange>,
    ) -> Result<BlobContent> {
        let size = self.blob_size(space, name, digest).await?.ok_or_else(|| blob_unknown(digest))?;
        let parsed = parse_digest(digest)?;
        let range = match range {
            None => 0..size,
            Some(asked) => asked.resolve(size).ok_or_else(|| {
                RegistryError::RangeNotSatisfiable(format!("the range is outside the blob's {size} bytes"))
            })?,
        };
        let body = if range.is_empty() {
            futures::stream::empty().boxed()
        } else {
            let opened = self.blobs.open(parsed, Some(range.clone())).await?;
            opened.ok_or_else(|| blob_unknown(digest))?.body
        };
        Ok(BlobContent { size, range, body })
    }

    // ---- uploads ----

    /// Starts an upload session for a repository; answers its id.
    pub async fn start_upload(&self, space: &str, name: &str) -> Result<String> {
        check_repository(space, name)?;
        self.uploads.start(space, name).await?.ok_or_else(|| {
            let max = self.uploads.max_sessions();
            RegistryError::TooMany(format!(
                "{max} uploads are open; finish or cancel one, or wait for idle ones to expire"
            ))
        })
    }

    /// Checks that a session exists, is not being completed and belongs to the repository.
    async fn check_session(&self, space: &str, name: &str, id: &str) -> Result<()> {
        check_upload_id(id)?;
        let session = self.uploads.session(id).await?.ok_or_else(|| upload_unknown(id))?;
        if session.space != space || session.name != name || self.uploads.is_claimed(id).await? {
            return Err(upload_unknown(id));
        }
        Ok(())
    }

    /// Holds a session for one request: a second request on the same session while one
    /// streams is refused rather than interleaved.
    async fn hold_session(&self, id: &str) -> Result<crate::locks::LockGuard> {
        self.uploads
            .hold(id)
            .await
            .ok_or_else(|| RegistryError::RangeNotSatisfiable(format!("another request is writing to upload {id}")))
    }

    /// How many bytes an upload holds.
    pub async fn upload_offset(&self, space: &str, name: &str, id: &str) -> Result<u64> {
        check_repository(space, name)?;
        self.check_session(space, name, id).await?;
        Ok(self.uploads.parts(id).await?.iter().map(|(_, size)| size).sum())
    }

    /// Appends a chunk to an upload; it must start at the upload's current end. Answers
    /// the new end.
    pub async fn append_upload(
        &self,
        space: &str,
        name: &str,
        id: &str,
        chunk: ChunkRange,
        body: ByteStream,
    ) -> Result<u64> {
        check_repository(space, name)?;
        let _held = self.hold_session(id).await?;
        self.check_session(space, name, id).await?;
        let offset: u64 = self.uploads.parts(id).await?.iter().map(|(_, size)| size).sum();
        if chunk.start.is_some_and(|s| s != offset) {
            return Err(RegistryError::RangeNotSatisfiable(format!(
                "the upload holds {offset} bytes; a chunk must start there"
            )));
        }
        let budget = (self.options.max_blob_bytes as u64).saturating_sub(offset);
        let (staging, written) = self.stage(id, body, budget, None).await?;
        if chunk.len.is_some_and(|len| len != written) {
            self.uploads.discard(staging).await?;
            return Err(RegistryError::RangeNotSatisfiable(format!(
                "the chunk has {written} bytes, not the {} its range says",
                chunk.len.unwrap_or_default()
            )));
        }
        if written == 0 {
            self.uploads.discard(staging).await?;
            return Ok(offset);
        }
        // Create-if-absent: of two chunks for one offset (two replicas), one lands.
        if self.uploads.add_part(&staging, offset).await? {
            Ok(offset + written)
        } else {
            self.uploads.discard(staging).await?;
            Err(RegistryError::RangeNotSatisfiable(format!("another chunk was written at {offset}")))
        }
    }

    /// Streams one request's bytes into a staging object of its own (see
    /// [`crate::uploads::Uploads::stage`]), with its failures as registry errors.
    async fn stage(
        &self,
        id: &str,
        body: ByteStream,
        budget: u64,
        hasher: Option<&mut Hasher>,
    ) -> Result<(Staging, u64)> {
        self.uploads.stage(id, body, budget, hasher).await.map_err(|e| match e {
            WriteError::Body(e) => RegistryError::InvalidUpload(format!("reading the body: {}", echo(&e))),
            WriteError::OverBudget => {
                RegistryError::OverMaximum(format!("blob is larger than {} bytes", self.options.max_blob_bytes))
            }
            WriteError::Storage(e) => e,
        })
    }

    /// Completes an upload with its last chunk (possibly empty): the blob becomes visible
    /// in the repository only if its bytes have the digest the client named. A session
    /// completes at most once.
    pub async fn finish_upload(
        &self,
        space: &str,
        name: &str,
        id: &str,
        digest: &str,
        chunk: ChunkRange,
        body: ByteStream,
    ) -> Result<()> {
        check_repository(space, name)?;
        let parsed = parse_digest(digest)?;
        let _held = self.hold_session(id).await?;
        self.check_session(space, name, id).await?;
        let parts = self.uploads.parts(id).await?;
        let offset: u64 = parts.iter().map(|(_, size)| size).sum();
        if chunk.start.is_some_and(|s| s != offset) {
            return Err(RegistryError::RangeNotSatisfiable(format!(
                "the upload holds {offset} bytes; the last chunk must start there"
            )));
        }
        // The one request that completes the session (across processes too).
        if !self.uploads.claim(id).await? {
            return Err(upload_unknown(id));
        }
        let earlier = self.uploads.read_parts(id, parts);
        let result = self.commit_blob(space, name, id, parsed, earlier.chain(body).boxed()).await;
        self.uploads.close(id).await?;
        result
    }

    /// Streams bytes into a staging object of its own, checks they hash to `digest`, and
    /// only then stores them as that blob (create-if-absent) and links it into the
    /// repository. Whatever other requests do, a blob's bytes always hash to its name.
    async fn commit_blob(
        &self,
        space: &str,
        name: &str,
        id: &str,
        digest: BlobDigest<'_>,
        body: ByteStream,
    ) -> Result<()> {
        let mut hasher = Hasher::new(digest.algorithm);
        let budget = self.options.max_blob_bytes as u64;
        let (staging, _) = self.stage(id, body, budget, Some(&mut hasher)).await?;
        let actual = hasher.finish();
        if actual != digest.to_string() {
            self.uploads.discard(staging).await?;
            return Err(RegistryError::DigestMismatch(format!(
                "the uploaded bytes have digest {actual}, not {digest}"
            )));
        }
        self.blobs.adopt(&staging, digest).await?;
        let generation = self.ensure_space(space).await?;
        self.blobs.link(space, &generation, name, digest).await
    }

    /// Stores a whole blob sent in one request (`POST ...?digest=`).
    pub async fn put_whole_blob(&self, space: &str, name: &str, digest: &str, body: ByteStream) -> Result<()> {
        check_repository(space, name)?;
        let parsed = parse_digest(digest)?;
        // Its staging object sits under an id of its own; a killed request leaves it to
        // the idle-upload sweep.
        let id = new_generation();
        let result = self.commit_blob(space, name, &id, parsed, body).await;
        if result.is_err() {
            self.uploads.remove(&id).await?;
        }
        result
    }

    /// Abandons an upload.
    pub async fn cancel_upload(&self, space: &str, name: &str, id: &str) -> Result<()> {
        check_repository(space, name)?;
        let _held = self.hold_session(id).await?;
        self.check_session(space, name, id).await?;
        self.uploads.close(id).await
    }

    /// Counts the upload sessions in storage, for the cap on open ones; called once before
    /// the server takes requests, after which starts and ends keep the count.
    pub async fn count_uploads(&self) -> std::result::Result<usize, RegistryError> {
        self.uploads.count().await
    }

    /// Deletes upload sessions (and stray staging objects) with no activity for longer
    /// than `idle`; answers how many were deleted.
    pub async fn expire_uploads(&self, idle: std::time::Duration) -> std::result::Result<usize, RegistryError> {
        self.uploads.expire(idle).await
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
        let manifest =
            Manifest::parse(&bytes, content_type).map_err(|e| RegistryError::InvalidManifest(e.to_string()))?;
        let (digest, tag) = if reference.contains(':') {
            let claimed = parse_digest(reference)?;
            let mut hasher = Hasher::new(claimed.algorithm);
            hasher.update(&bytes);
            let digest = hasher.finish();
            if digest != reference {
                return Err(RegistryError::DigestMismatch(format!(
                    "the manifest's digest is {digest}, not {}",
                    echo(reference)
                )));
            }
            (digest, None)
        } else if oci::is_valid_tag(reference) {
            (oci::digest_of(&bytes), Some(reference))
        } else {
            return Err(RegistryError::InvalidManifest(format!("tag {:?} is invalid", echo(reference))));
        };
        // Checked before anything is written: a refused push creates nothing, not even its
        // space.
        let current = self.generation(space).await?;
        for blob in manifest.blobs() {
            if is_non_distributable(&blob.media_type) {
                continue;
            }
            let known = match (oci::parse_digest(&blob.digest), &current) {
                (Ok(d), Some(generation)) => self.repository_has_blob(space, generation, name, d).await?,
                _ => false,
            };
            if !known {
                return Err(RegistryError::MissingReference(format!(
                    "blob {} is unknown in {space}/{name}",
                    echo(&blob.digest)
                )));
            }
        }
        let chart_tag = tag.filter(|_| manifest.is_helm_chart());
        if let Some(tag) = chart_tag {
            // Validated and stored as a chart version first: a refused push leaves nothing.
            self.put_chart_manifest(space, name, tag, &manifest, bytes.clone(), overwrite).await?;
        } else if let Some(tag) = tag {
            self.check_artifact_tag(space, name, tag).await?;
            if let Some(generation) = &current
                && self.policies.get(space, generation).await?.is_immutable()
            {
                let repository = Repository { space, generation, name };
                if self.manifests.tag(repository, tag).await?.is_some_and(|held| held != digest) {
                    return Err(RegistryError::Refused(format!(
                        "space {space} is immutable: tag {tag} of {space}/{name} is not moved"
                    )));
                }
            }
        }
        let generation = self.ensure_space(space).await?;
        let parsed = parse_digest(&digest)?;
        self.blobs.put(parsed, bytes.clone()).await?;
        let media_type = manifest.media_type_or(content_type).unwrap_or_else(|| oci::OCI_MANIFEST_MEDIA_TYPE.into());
        let link = RepositoryManifest {
            media_type,
            size: bytes.len() as u64,
            artifact_type: manifest.effective_artifact_type(),
            subject: manifest.subject.as_ref().map(|s| s.digest.clone()),
            annotations: manifest.annotations.clone(),
        };
        let repository = Repository { space, generation: &generation, name };
        self.manifests.put(repository, parsed, &link).await?;
        if let Some(tag) = tag.filter(|_| chart_tag.is_none()) {
            self.manifests.put_tag(repository, tag, &digest).await?;
        }
        Ok(digest)
    }

    /// One tag, one owner: an artifact that is not a chart may not take a chart version's
    /// tag, nor a version-shaped tag in a repository that holds chart versions (a later
    /// chart upload would have to move it).
    async fn check_artifact_tag(&self, space: &str, name: &str, tag: &str) -> Result<()> {
        let version = oci::tag_to_version(tag);
        if parse_version(&version).is_err() {
            return Ok(());
        }
        if !self.chart_manifests_records(space, name).await?.is_empty() {
            return Err(RegistryError::Refused(format!(
                "{space}/{name} holds chart versions; tag {tag} is reserved for chart version {version}"
            )));
        }
        Ok(())
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
        let invalid = |m: String| RegistryError::InvalidManifest(m);
        // Helm installs the last chart layer it finds and verifies the last provenance
        // layer: a manifest with several could show one chart here and install another.
        let count = |media_type: &str| manifest.layers.iter().filter(|l| l.media_type == media_type).count();
        if count(oci::HELM_CHART_MEDIA_TYPE) != 1 {
            return Err(invalid("a Helm chart manifest needs exactly one chart layer".into()));
        }
        if count(oci::HELM_PROVENANCE_MEDIA_TYPE) > 1 {
            return Err(invalid("a Helm chart manifest has at most one provenance layer".into()));
        }
        let layer =
            manifest.chart_layer().ok_or_else(|| invalid("a Helm chart manifest needs a chart layer".into()))?;
        let version = oci::tag_to_version(tag);
        parse_version(&version).map_err(|e| invalid(format!("tag {tag}: {e}")))?;
        let config = manifest.config.as_ref().ok_or_else(|| invalid("a Helm chart manifest needs a config".into()))?;
        if config.size > MAX_CONFIG_BYTES {
            return Err(invalid(format!("the chart config is larger than {MAX_CONFIG_BYTES} bytes")));
        }
        let config_bytes = self.read_blob(&config.digest, MAX_CONFIG_BYTES).await?;
        let config_json: serde_json::Value =
            serde_json::from_slice(&config_bytes).map_err(|e| invalid(format!("the chart config is not JSON: {e}")))?;
        let archive = self.read_blob(&layer.digest, self.options.max_blob_bytes as u64).await?;
        let provenance = match manifest.provenance_layer() {
            Some(layer) => Some(self.read_blob(&layer.digest, self.options.max_blob_bytes as u64).await?),
            None => None,
        };
        let chart = self.load_chart(archive.clone()).await?;
        if chart.metadata.name != name || chart.metadata.version != version {
            return Err(invalid(format!(
                "the chart is {}-{}, but was pushed as {space}/{name}:{tag}",
                chart.metadata.name, chart.metadata.version
            )));
        }
        if config_json.get("name").and_then(|v| v.as_str()) != Some(name)
            || config_json.get("version").and_then(|v| v.as_str()) != Some(version.as_str())
        {
            return Err(invalid(format!("the chart config does not name {name} {version}, as its chart layer does")));
        }
        // In an immutable space the same chart pushed again is answered from what is stored
        // (the upload would be refused as a rewrite).
        if let Some(generation) = self.generation(space).await?
            && self.policies.get(space, &generation).await?.is_immutable()
            && let Ok(existing) = self.version(space, name, &version).await
            && format!("sha256:{}", existing.digest) == layer.digest
        {
            return Ok(());
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
                    Err(RegistryError::Refused(format!("{id} exists; versions are not overwritten")))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// A whole stored blob of at most `max` bytes.
    async fn read_blob(&self, digest: &str, max: u64) -> Result<Bytes> {
        let parsed = parse_digest(digest)?;
        let unknown = || RegistryError::MissingReference(format!("blob {} is unknown", echo(digest)));
        self.blobs.read(parsed, max).await?.ok_or_else(unknown)
    }

    /// A manifest by tag or digest.
    pub async fn get_manifest(&self, space: &str, name: &str, reference: &str) -> Result<ManifestContent> {
        check_repository(space, name)?;
        let generation = self.oci_generation(space).await?;
        let unknown = || {
            RegistryError::Missing(
                Thing::Manifest,
                format!("manifest {} is unknown in {space}/{name}", echo(reference)),
            )
        };
        let repository = Repository { space, generation: &generation, name };
        let (digest, media_type) = if reference.contains(':') {
            let parsed = parse_digest(reference)?;
            match self.manifests.get(repository, parsed).await? {
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
            if !oci::is_valid_tag(reference) {
                return Err(unknown());
            }
            let digest = self.manifests.tag(repository, reference).await?.ok_or_else(unknown)?;
            let parsed = parse_digest(&digest)?;
            let media_type = self.manifests.get(repository, parsed).await?.ok_or_else(unknown)?.media_type;
            (digest, media_type)
        };
        let bytes = self.read_blob(&digest, u64::MAX).await.map_err(|_| unknown())?;
        Ok(ManifestContent { bytes, media_type, digest })
    }

    async fn oci_generation(&self, space: &str) -> Result<String> {
        self.generation(space)
            .await?
            .ok_or_else(|| RegistryError::Missing(Thing::Space, format!("repository space {} is unknown", echo(space))))
    }

    /// The records of a chart's versions; none when the space or chart does not exist.
    async fn chart_manifests_records(
        &self,
        space: &str,
        name: &str,
    ) -> Result<Vec<std::sync::Arc<chartyard_core::record::VersionRecord>>> {
        match self.chart_versions(space, name).await {
            Ok(versions) => Ok(versions.into_iter().map(|v| v.record).collect()),
            Err(RegistryError::NotFound(_)) => Ok(Vec::new()),
            Err(e) => Err(e),
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
            Err(e) => Err(e),
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
            Err(e) => Err(e),
        }
    }

    /// Whether a non-chart artifact holds the tag a chart version would have.
    pub(crate) async fn artifact_tag_exists(
        &self,
        space: &str,
        generation: &str,
        chart: &str,
        version: &str,
    ) -> std::result::Result<bool, RegistryError> {
        let tag = oci::version_to_tag(version);
        self.manifests.tag_exists(Repository { space, generation, name: chart }, &tag).await
    }

    /// Tags of a repository in lexical order: its chart versions and its other tags.
    pub async fn tags(&self, space: &str, name: &str) -> Result<Vec<String>> {
        check_repository(space, name)?;
        let generation = self.oci_generation(space).await?;
        let mut tags: Vec<String> =
            self.chart_manifests(space, name).await?.into_iter().map(|(v, _)| oci::version_to_tag(&v)).collect();
        let repository = Repository { space, generation: &generation, name };
        tags.extend(self.manifests.tags(repository).await?);
        let known_repository = !tags.is_empty() || self.manifests.any(repository).await;
        if !known_repository {
            return Err(RegistryError::Missing(Thing::Repository, format!("repository {space}/{name} is unknown")));
        }
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// Every repository (`{space}/{name}`) in lexical order: each space's charts and its
    /// other OCI repositories.
    pub async fn catalog(&self) -> Result<Vec<String>> {
        let mut repositories = Vec::new();
        for space in self.list_spaces().await? {
            let Some(generation) = self.generation(&space).await? else { continue };
            let mut names: Vec<String> = match self.list_charts(&space).await {
                Ok(charts) => charts,
                Err(RegistryError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            names.extend(self.manifests.names(&space, &generation).await?);
            names.sort();
            names.dedup();
            repositories.extend(names.into_iter().map(|name| format!("{space}/{name}")));
        }
        repositories.sort();
        Ok(repositories)
    }

    /// Deletes a tag, or a manifest with every tag and chart version that names it.
    pub async fn delete_manifest(&self, space: &str, name: &str, reference: &str) -> Result<()> {
        self.delete_manifest_as(space, name, reference, DeleteOptions { by_global_admin: true }).await
    }

    /// Deletes a tag or manifest as a caller who may be refused by the space's policy
    /// (in an immutable space only a global admin deletes).
    pub async fn delete_manifest_as(
        &self,
        space: &str,
        name: &str,
        reference: &str,
        options: DeleteOptions,
    ) -> Result<()> {
        check_repository(space, name)?;
        let generation = self.oci_generation(space).await?;
        self.policies.get(space, &generation).await?.check_delete(space, options.by_global_admin)?;
        let repository = Repository { space, generation: &generation, name };
        let unknown = || {
            RegistryError::Missing(
                Thing::Manifest,
                format!("manifest {} is unknown in {space}/{name}", echo(reference)),
            )
        };
        if !reference.contains(':') {
            if self.chart_manifest_for_tag(space, name, reference).await?.is_some() {
                return self.delete_version(space, name, &oci::tag_to_version(reference)).await;
            }
            if !oci::is_valid_tag(reference) {
                return Err(unknown());
            }
            return match self.manifests.delete_tag(repository, reference).await? {
                true => Ok(()),
                false => Err(unknown()),
            };
        }
        let parsed = parse_digest(reference)?;
        let mut found = self.manifests.delete(repository, parsed).await?;
        for (version, manifest) in self.chart_manifests(space, name).await? {
            if manifest.digest == reference {
                self.delete_version(space, name, &version).await?;
                found = true;
            }
        }
        found |= self.manifests.delete_tags_of(repository, reference).await?;
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
        parse_digest(digest)?;
        let Some(generation) = self.generation(space).await? else { return Ok(Vec::new()) };
        let mut referrers = Vec::new();
        for (manifest_digest, link) in self.manifests.list(Repository { space, generation: &generation, name }).await? {
            if link.subject.as_deref() != Some(digest)
                || artifact_type.is_some_and(|t| link.artifact_type.as_deref() != Some(t))
            {
                continue;
            }
            referrers.push(Descriptor {
                media_type: link.media_type,
                digest: manifest_digest,
                size: link.size,
                artifact_type: link.artifact_type,
                annotations: link.annotations,
            });
        }
        Ok(referrers)
    }

    /// Unlinks a blob from a repository. Its bytes stay until garbage collection finds
    /// nothing else needs them; a blob this repository's manifests or chart versions
    /// need is refused.
    pub async fn delete_blob(&self, space: &str, name: &str, digest: &str) -> Result<()> {
        check_repository(space, name)?;
        let parsed = parse_digest(digest)?;
        let generation = self.generation(space).await?.ok_or_else(|| blob_unknown(digest))?;
        if !self.repository_has_blob(space, &generation, name, parsed).await? {
            return Err(blob_unknown(digest));
        }
        let in_use =
            |what: String| RegistryError::Refused(format!("blob {digest} is still needed by {what} in {space}/{name}"));
        let repository = Repository { space, generation: &generation, name };
        if self.manifests.exists(repository, parsed).await? {
            return Err(in_use("a manifest (it is one)".into()));
        }
        if let Some(stored) = self
            .chart_versions(space, name)
            .await
            .unwrap_or_default()
            .into_iter()
            .find(|v| referenced_blobs(&v.record).contains(&parsed.to_string()))
        {
            return Err(in_use(format!("chart version {}", stored.version)));
        }
        for (manifest_digest, _) in self.manifests.list(Repository { space, generation: &generation, name }).await? {
            let Ok(bytes) = self.read_blob(&manifest_digest, u64::MAX).await else { continue };
            if Manifest::parse(&bytes, None).is_ok_and(|m| m.blobs().any(|b| b.digest == digest)) {
                return Err(in_use(format!("manifest {manifest_digest}")));
            }
        }
        self.blobs.unlink(space, &generation, name, parsed).await?;
        Ok(())
    }

    /// Makes a blob of another repository available here (`POST ...?mount=&from=`), when
    /// that repository holds it; answers whether it did.
    pub async fn mount_blob(&self, space: &str, name: &str, digest: &str, from: &str) -> Result<bool> {
        check_repository(space, name)?;
        let parsed = parse_digest(digest)?;
        let Some((from_space, from_name)) = from.split_once('/') else { return Ok(false) };
        if check_repository(from_space, from_name).is_err() {
            return Ok(false);
        }
        if self.blob_size(from_space, from_name, digest).await?.is_none() {
            return Ok(false);
        }
        let generation = self.ensure_space(space).await?;
        self.blobs.link(space, &generation, name, parsed).await?;
        Ok(true)
    }
}
