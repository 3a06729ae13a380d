//! The `s3` backend: object_store's `AmazonS3`, configured with docker distribution's
//! parameter names, checked at startup for the conditional writes the registry relies on.
//!
//! The registry's guarantees rest on three store operations:
//! - create-if-absent (`PutMode::Create`, `If-None-Match: *`): one version, one 201;
//! - compare-and-swap (`PutMode::Update`, `If-Match: <etag>`): changes of a record;
//! - copy-if-absent (`rename_if_not_exists`): a verified staging object becomes a blob or
//!   an upload chunk. On S3 this is a one-part multipart upload copying the source,
//!   completed with `If-None-Match: *` (object_store's `S3CopyIfNotExists::Multipart`).
//!
//! S3-compatible servers differ in what they honour, so [`open`] first [`probe`]s the
//! bucket under `{rootdirectory}/_probe/` and refuses a store that cannot guarantee the
//! first two. Some servers (Ceph RGW, DigitalOcean Spaces) accept `If-Match` only with an
//! unquoted ETag; the probe finds out and [`S3Store`] then sends ETags that way. Where
//! copy-if-absent is not atomic, [`S3Store`] copies when a HEAD finds the target absent:
//! what the registry copies this way are blobs, whose bytes were hashed before the copy, so
//! a lost race writes the same bytes again; an upload chunk is copied only by the request
//! that claimed its offset with create-if-absent (see `uploads`), so no race reaches it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut, S3CopyIfNotExists};
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    Attribute, ClientConfigKey, CopyMode, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    RenameTargetMode, Result, RetryConfig, UpdateVersion,
};

use crate::backend::OpenedBackend;

/// Storage classes an object may be written with (`storageclass`); `NONE` sends no class,
/// leaving the bucket's default. Archive classes (Glacier, Deep Archive) are left out:
/// their objects cannot be read back without a restore.
pub const STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "OUTPOSTS",
    "NONE",
];

/// Settings of the `s3` driver, by docker distribution's names. What is `None` comes from
/// the standard AWS environment (`AWS_*` variables, web identity, container and instance
/// credentials), as object_store's `AmazonS3Builder::from_env` reads it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Options {
    /// `bucket`
    pub bucket: String,
    /// `region`
    pub region: Option<String>,
    /// `regionendpoint`: an S3-compatible server's URL (scheme optional).
    pub endpoint: Option<String>,
    /// `accesskey`
    pub access_key: Option<String>,
    /// `secretkey`
    pub secret_key: Option<String>,
    /// `sessiontoken`
    pub session_token: Option<String>,
    /// `rootdirectory`: the key prefix everything is stored under, without slashes at
    /// either end ("" for the bucket's root).
    pub root_directory: String,
    /// `secure`: `Some(false)` allows plain http.
    pub secure: Option<bool>,
    /// `skipverify`: accept any TLS certificate.
    pub skip_verify: bool,
    /// `forcepathstyle`: `Some(true)` for `endpoint/bucket/key` URLs, `Some(false)` for
    /// `bucket.endpoint/key`; `None` keeps object_store's default (path style).
    pub force_path_style: Option<bool>,
    /// `encrypt`: server-side encryption, SSE-S3 (`AES256`), or SSE-KMS with `key_id`.
    pub encrypt: bool,
    /// `keyid`: the KMS key for SSE-KMS.
    pub key_id: Option<String>,
    /// `storageclass`, one of [`STORAGE_CLASSES`].
    pub storage_class: Option<String>,
}

impl fmt::Debug for S3Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Logged at startup: secrets are never printed.
        let hidden = |value: &Option<String>| value.as_ref().map(|_| "<hidden>");
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key", &self.access_key)
            .field("secret_key", &hidden(&self.secret_key))
            .field("session_token", &hidden(&self.session_token))
            .field("root_directory", &self.root_directory)
            .field("secure", &self.secure)
            .field("skip_verify", &self.skip_verify)
            .field("force_path_style", &self.force_path_style)
            .field("encrypt", &self.encrypt)
            .field("key_id", &self.key_id)
            .field("storage_class", &self.storage_class)
            .finish()
    }
}

impl S3Options {
    /// Checks what can be checked without the network; the message names the parameter.
    pub fn check(&self) -> Result<(), String> {
        if self.bucket.is_empty() {
            return Err("bucket: missing (required by storagedriver s3)".into());
        }
        if !self.root_directory.is_empty() {
            check_root_directory(&self.root_directory)?;
        }
        if self.key_id.is_some() && !self.encrypt {
            return Err("keyid: set, but encrypt is not true (SSE-KMS needs both)".into());
        }
        if let Some(class) = self.storage_class.as_ref().filter(|c| !STORAGE_CLASSES.contains(&c.as_str())) {
            return Err(format!("storageclass: unknown storage class {class:?} (expected one of {STORAGE_CLASSES:?})"));
        }
        if let Some(endpoint) = &self.endpoint {
            endpoint_url(endpoint, self.secure)?;
        }
        Ok(())
    }

    /// The store's builder: the AWS environment first, then these settings over it.
    fn builder(&self) -> Result<AmazonS3Builder, String> {
        self.check()?;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&self.bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_copy_if_not_exists(S3CopyIfNotExists::Multipart);
        if let Some(region) = &self.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &self.access_key {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &self.secret_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &self.session_token {
            builder = builder.with_token(token);
        }
        if let Some(endpoint) = &self.endpoint {
            let (url, http) = endpoint_url(endpoint, self.secure)?;
            let url = match self.force_path_style {
                Some(false) => virtual_hosted(&url, &self.bucket),
                _ => url,
            };
            builder = builder.with_endpoint(url);
            if http {
                builder = builder.with_allow_http(true);
            }
        }
        if self.secure == Some(false) {
            builder = builder.with_allow_http(true);
        }
        if let Some(path_style) = self.force_path_style {
            builder = builder.with_virtual_hosted_style_request(!path_style);
        }
        if self.skip_verify {
            builder = builder.with_config(AmazonS3ConfigKey::Client(ClientConfigKey::AllowInvalidCertificates), "true");
        }
        if self.encrypt {
            builder = match &self.key_id {
                Some(key) => builder.with_sse_kms_encryption(key),
                None => builder
                    .with_config("aws_server_side_encryption".parse().map_err(|e| format!("encrypt: {e}"))?, "AES256"),
            };
        }
        Ok(builder)
    }

    /// An S3 store with these settings, prefixed by `rootdirectory`.
    fn store(&self, retry: RetryConfig) -> Result<Arc<dyn ObjectStore>, String> {
        let s3 = self.builder()?.with_retry(retry).build().map_err(|e| format!("s3: {e}"))?;
        Ok(if self.root_directory.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, Path::from(self.root_directory.as_str())))
        })
    }
}

/// `rootdirectory` is a key prefix: plain segments, no `.` or `..`.
fn check_root_directory(root: &str) -> Result<(), String> {
    for segment in root.split('/') {
        let plain = !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !plain {
            return Err(format!(
                "rootdirectory: {root:?} is not a key prefix (segments of letters, digits, '.', '_' and '-')"
            ));
        }
    }
    Ok(())
}

/// The endpoint as a URL, and whether it is plain http. Without a scheme, `secure`
/// (default true) picks https or http.
fn endpoint_url(endpoint: &str, secure: Option<bool>) -> Result<(String, bool), String> {
    let endpoint = endpoint.trim_end_matches('/');
    let (scheme, rest) = match endpoint.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None if secure == Some(false) => ("http".to_string(), endpoint),
        None => ("https".to_string(), endpoint),
    };
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(format!("regionendpoint: {endpoint:?} is not a URL"));
    }
    match scheme.as_str() {
        "https" => Ok((format!("https://{rest}"), false)),
        "http" if secure == Some(true) => {
            Err(format!("regionendpoint: {endpoint:?} is plain http, but secure is true"))
        }
        "http" => Ok((format!("http://{rest}"), true)),
        other => Err(format!("regionendpoint: unknown scheme {other:?} (expected http or https)")),
    }
}

/// `scheme://host/...` as `scheme://bucket.host/...`, the virtual-hosted form object_store
/// expects of an endpoint when path style is off.
fn virtual_hosted(url: &str, bucket: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{rest}"),
        None => format!("{bucket}.{url}"),
    }
}

/// How `If-Match` must carry an ETag on a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtagForm {
    /// `If-Match: "abc"`, as HTTP and AWS S3 have it.
    Quoted,
    /// `If-Match: abc`, all that Ceph RGW and DigitalOcean Spaces accept.
    Unquoted,
}

impl EtagForm {
    fn apply(self, e_tag: &str) -> String {
        let bare = e_tag.trim_matches('"');
        match self {
            Self::Quoted => format!("\"{bare}\""),
            Self::Unquoted => bare.to_string(),
        }
    }
}

/// How copy-if-absent is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyIfAbsent {
    /// By the store, atomically.
    Native,
    /// A HEAD, then a plain copy if the target is absent (see the module's notes).
    HeadThenCopy,
}

/// What [`probe`] found out about a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub etag_form: EtagForm,
    /// Why copy-if-absent is not atomic on this store, if it is not.
    pub copy_fallback: Option<String>,
}

impl ProbeReport {
    pub fn copy_if_absent(&self) -> CopyIfAbsent {
        if self.copy_fallback.is_some() { CopyIfAbsent::HeadThenCopy } else { CopyIfAbsent::Native }
    }
}

/// Why a store failed [`probe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// A probe request failed: the store is unreachable, the bucket missing, access denied.
    Store(String),
    /// The store's answers break a guarantee the registry relies on.
    NotGuaranteed(String),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(message) => write!(f, "probing conditional writes failed: {message}"),
            Self::NotGuaranteed(message) => write!(f, "cannot guarantee conditional writes: {message}"),
        }
    }
}

/// A store's error on one line of bounded length, with its causes (a TLS or connection
/// failure is only named there); S3 errors carry the XML body they got, so a long message
/// keeps its start and its end.
fn one_line(error: &object_store::Error) -> String {
    const KEEP: usize = 300;
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars = text.chars().count();
    if chars <= 2 * KEEP {
        return text;
    }
    let head: String = text.chars().take(KEEP).collect();
    let tail: String = text.chars().skip(chars - KEEP).collect();
    format!("{head} … {tail}")
}

/// Checks that `store` honours conditional writes, under `_probe/{nonce}/` (removed
/// afterwards): create-if-absent twice on one key (the second must fail as existing, and
/// leave the object alone), compare-and-swap with the current ETag quoted and, failing
/// that, unquoted (one must work), the same with a stale ETag (it must fail), and
/// copy-if-absent twice onto one key. Fails with one line naming what failed;
/// copy-if-absent is only reported, since [`S3Store`] can do without it.
pub async fn probe(store: &dyn ObjectStore, nonce: &str) -> Result<ProbeReport, ProbeError> {
    let object = Path::from(format!("_probe/{nonce}/object"));
    let copy = Path::from(format!("_probe/{nonce}/copy"));
    let mut written = Vec::new();
    let result = probe_at(store, &object, &copy, &mut written).await;
    for key in written {
        match store.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(key = %key, error = %one_line(&e), "could not remove a probe object"),
        }
    }
    result
}

async fn probe_at<'a>(
    store: &dyn ObjectStore,
    object: &'a Path,
    copy: &'a Path,
    written: &mut Vec<&'a Path>,
) -> Result<ProbeReport, ProbeError> {
    use ProbeError::{NotGuaranteed, Store};
    let create = || PutOptions { mode: PutMode::Create, ..Default::default() };
    store
        .put_opts(object, PutPayload::from_static(b"first"), create())
        .await
        .map_err(|e| Store(format!("create-if-absent (If-None-Match: *) of {object}: {}", one_line(&e))))?;
    written.push(object);
    match store.put_opts(object, PutPayload::from_static(b"second"), create()).await {
        Err(object_store::Error::AlreadyExists { .. }) => {}
        Ok(_) => {
            return Err(NotGuaranteed(format!(
                "a second create-if-absent (If-None-Match: *) of {object} succeeded: the store ignores the condition"
            )));
        }
        Err(e) => {
            return Err(NotGuaranteed(format!(
                "a second create-if-absent (If-None-Match: *) of {object} did not report the object as existing: {}",
                one_line(&e)
            )));
        }
    }
    if read(store, object).await? != b"first".as_slice() {
        return Err(NotGuaranteed(format!("a refused create-if-absent (If-None-Match: *) still replaced {object}")));
    }

    let e_tag = store
        .head(object)
        .await
        .map_err(|e| Store(format!("reading {object}: {}", one_line(&e))))?
        .e_tag
        .ok_or_else(|| NotGuaranteed(format!("the store reports no ETag for {object}")))?;
    let mut etag_form = None;
    for form in [EtagForm::Quoted, EtagForm::Unquoted] {
        if swap(store, object, &form.apply(&e_tag), b"third").await? {
            etag_form = Some(form);
            break;
        }
    }
    let Some(etag_form) = etag_form else {
        return Err(NotGuaranteed(format!(
            "compare-and-swap (If-Match) of {object} with its current ETag {e_tag} failed, quoted and unquoted"
        )));
    };
    if read(store, object).await? != b"third".as_slice() {
        return Err(NotGuaranteed(format!("a compare-and-swap (If-Match) of {object} that succeeded did not write")));
    }
    // Now the first ETag is stale.
    if swap(store, object, &etag_form.apply(&e_tag), b"fourth").await? {
        return Err(NotGuaranteed(format!(
            "a compare-and-swap (If-Match) of {object} with a stale ETag succeeded: the store ignores the condition"
        )));
    }

    written.push(copy);
    let copy_fallback = match store.copy_if_not_exists(object, copy).await {
        Err(e) => Some(format!("copy-if-absent failed: {}", one_line(&e))),
        Ok(()) => match store.copy_if_not_exists(object, copy).await {
            Err(object_store::Error::AlreadyExists { .. }) => None,
            Ok(()) => Some("a second copy-if-absent onto one key succeeded".to_string()),
            Err(e) => Some(format!("a second copy-if-absent did not report the target as existing: {}", one_line(&e))),
        },
    };
    Ok(ProbeReport { etag_form, copy_fallback })
}

async fn read(store: &dyn ObjectStore, key: &Path) -> Result<bytes::Bytes, ProbeError> {
    let failed = |e: object_store::Error| ProbeError::Store(format!("reading {key}: {}", one_line(&e)));
    store.get(key).await.map_err(failed)?.bytes().await.map_err(failed)
}

/// One compare-and-swap: whether the store took it (`false` when the condition failed).
async fn swap(store: &dyn ObjectStore, key: &Path, e_tag: &str, body: &'static [u8]) -> Result<bool, ProbeError> {
    let current = UpdateVersion { e_tag: Some(e_tag.to_string()), version: None };
    let opts = PutOptions { mode: PutMode::Update(current), ..Default::default() };
    match store.put_opts(key, PutPayload::from_static(body), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::Precondition { .. }) => Ok(false),
        Err(e) => Err(ProbeError::NotGuaranteed(format!(
            "compare-and-swap (If-Match: {e_tag}) of {key} failed: {}",
            one_line(&e)
        ))),
    }
}

/// A store as the registry needs it: `If-Match` ETags in the form the store accepts,
/// copy-if-absent done as the store allows, a delete of one absent object reported as
/// `NotFound` (S3 answers 204 either way; the registry answers 404 for deleting what does
/// not exist, as on a filesystem), and every object written with the configured storage
/// class.
#[derive(Debug)]
pub struct S3Store {
    inner: Arc<dyn ObjectStore>,
    etag_form: EtagForm,
    copy_if_absent: CopyIfAbsent,
    storage_class: Option<String>,
}

impl S3Store {
    pub fn new(
        inner: Arc<dyn ObjectStore>,
        etag_form: EtagForm,
        copy_if_absent: CopyIfAbsent,
        storage_class: Option<String>,
    ) -> Self {
        let storage_class = storage_class.filter(|class| class != "NONE");
        Self { inner, etag_form, copy_if_absent, storage_class }
    }

    fn with_class(&self, attributes: &mut object_store::Attributes) {
        if let Some(class) = &self.storage_class {
            attributes.insert(Attribute::StorageClass, class.clone().into());
        }
    }
}

impl fmt::Display for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Store({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put_opts(&self, location: &Path, payload: PutPayload, mut opts: PutOptions) -> Result<PutResult> {
        if let PutMode::Update(current) = &mut opts.mode {
            current.e_tag = current.e_tag.as_deref().map(|e_tag| self.etag_form.apply(e_tag));
        }
        self.with_class(&mut opts.attributes);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        mut opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.with_class(&mut opts.attributes);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    /// A stream of one location (a single delete) is checked with a HEAD first; longer
    /// ones (prefix sweeps, garbage collection) go to S3's bulk delete as they are.
    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let inner = Arc::clone(&self.inner);
        locations
            .chunks(1000)
            .flat_map(move |chunk| match <[Result<Path>; 1]>::try_from(chunk) {
                Ok([location]) => {
                    let inner = Arc::clone(&inner);
                    futures::stream::once(async move {
                        let location = location?;
                        inner.head(&location).await?;
                        inner.delete(&location).await?;
                        Ok(location)
                    })
                    .boxed()
                }
                Err(chunk) => inner.delete_stream(futures::stream::iter(chunk).boxed()),
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        if options.mode == CopyMode::Create && self.copy_if_absent == CopyIfAbsent::HeadThenCopy {
            return match self.inner.head(to).await {
                Ok(_) => {
                    Err(object_store::Error::AlreadyExists { path: to.to_string(), source: "the object exists".into() })
                }
                Err(object_store::Error::NotFound { .. }) => {
                    self.inner.copy_opts(from, to, CopyOptions { mode: CopyMode::Overwrite, ..options }).await
                }
                Err(e) => Err(e),
            };
        }
        self.inner.copy_opts(from, to, options).await
    }

    /// A copy (as above), then a delete of the source without the HEAD a single delete
    /// costs here: the copy has just read the source.
    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        let mode = match options.target_mode {
            RenameTargetMode::Overwrite => CopyMode::Overwrite,
            RenameTargetMode::Create => CopyMode::Create,
        };
        self.copy_opts(from, to, CopyOptions { mode, extensions: options.extensions }).await?;
        self.inner.delete(from).await
    }
}

/// Retries of the startup probe: a wrong endpoint fails in seconds, not minutes.
fn probe_retries() -> RetryConfig {
    RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(20), ..Default::default() }
}

/// Opens the bucket after probing its conditional writes; refuses a bucket that cannot
/// guarantee them, with one line naming what failed.
pub fn open(options: &S3Options) -> Result<OpenedBackend, String> {
    // object_store's client uses rustls with ring; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let name = format!("s3 bucket {}", options.bucket);
    // The probe gets a store and a runtime of its own, so that it can run before (or
    // inside) the caller's runtime, and no connection outlives the runtime it was made on.
    let probe_store = options.store(probe_retries())?;
    let nonce = crate::spaces::new_generation();
    let report = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("{name}: starting the probe: {e}"))?;
                runtime.block_on(probe(probe_store.as_ref(), &nonce)).map_err(|e| format!("{name}: {e}"))
            })
            .join()
            .unwrap_or_else(|_| Err(format!("{name}: the probe panicked")))
    })?;
    if let Some(reason) = &report.copy_fallback {
        tracing::warn!(
            reason = %reason,
            "{name}: copy-if-absent is not atomic; copying when a HEAD finds the target absent"
        );
    }
    tracing::info!(
        etag_form = ?report.etag_form,
        copy_if_absent = ?report.copy_if_absent(),
        "{name}: conditional writes verified"
    );
    let inner = options.store(RetryConfig::default())?;
    let store = S3Store::new(inner, report.etag_form, report.copy_if_absent(), options.storage_class.clone());
    Ok(OpenedBackend { store: Arc::new(store), conditional_updates: true, deletes_report_missing: true, shared: true })
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    use crate::testing::{Faults, FaultyStore};

    /// A server ignoring `If-None-Match` and `If-Match`, or only `If-Match`.
    fn ignoring(create_too: bool) -> FaultyStore {
        FaultyStore::new(Faults { ignores_create: create_too, ignores_update: true, ..Faults::default() })
    }

    /// A server whose ETags are quoted (as InMemory's) but whose `If-Match` takes them only
    /// unquoted (as Ceph RGW's), and which has no copy-if-absent.
    fn unquoted_only() -> FaultyStore {
        FaultyStore::new(Faults { unquoted_if_match: true, no_copy_if_absent: true, ..Faults::default() })
    }

    async fn keys(store: &dyn ObjectStore) -> Vec<String> {
        store.list(None).map(|meta| meta.unwrap().location.to_string()).collect().await
    }

    #[tokio::test]
    async fn an_honest_store_passes_and_the_probe_cleans_up() {
        let store = InMemory::new();
        let report = probe(&store, "n1").await.unwrap();
        assert_eq!(report.copy_fallback, None);
        assert_eq!(report.copy_if_absent(), CopyIfAbsent::Native);
        assert!(keys(&store).await.is_empty(), "probe objects left: {:?}", keys(&store).await);
    }

    #[tokio::test]
    async fn a_store_ignoring_create_if_absent_is_refused() {
        let store = ignoring(true);
        let error = probe(&store, "n2").await.unwrap_err();
        let ProbeError::NotGuaranteed(message) = &error else { panic!("{error:?}") };
        assert!(message.contains("second create-if-absent") && message.contains("ignores"), "{error}");
        assert!(keys(&store).await.is_empty(), "probe objects left: {:?}", keys(&store).await);
    }

    #[tokio::test]
    async fn a_store_ignoring_compare_and_swap_is_refused() {
        let store = ignoring(false);
        let error = probe(&store, "n3").await.unwrap_err().to_string();
        assert!(error.starts_with("cannot guarantee conditional writes: "), "{error}");
        assert!(error.contains("stale ETag succeeded") && !error.contains('\n'), "{error}");
        assert!(keys(&store).await.is_empty());
    }

    #[tokio::test]
    async fn unquoted_etags_and_copy_without_condition_are_detected_and_handled() {
        let report = probe(&unquoted_only(), "n4").await.unwrap();
        assert_eq!(report.etag_form, EtagForm::Unquoted);
        assert!(report.copy_fallback.as_deref().is_some_and(|r| r.contains("copy-if-absent failed")), "{report:?}");

        // Through S3Store, the registry's compare-and-swap with the ETag it read (quoted)
        // works, and a stale one still fails.
        let store = S3Store::new(Arc::new(unquoted_only()), report.etag_form, report.copy_if_absent(), None);
        let key = Path::from("charts/s/g/c/1.0.0.json");
        store.put(&key, PutPayload::from_static(b"a")).await.unwrap();
        let first = store.head(&key).await.unwrap().e_tag.unwrap();
        assert!(first.starts_with('"'), "{first}");
        let update = |e_tag: &str| PutOptions {
            mode: PutMode::Update(UpdateVersion { e_tag: Some(e_tag.to_string()), version: None }),
            ..Default::default()
        };
        store.put_opts(&key, PutPayload::from_static(b"b"), update(&first)).await.unwrap();
        let stale = store.put_opts(&key, PutPayload::from_static(b"c"), update(&first)).await;
        assert!(matches!(stale, Err(object_store::Error::Precondition { .. })), "{stale:?}");

        // Copy-if-absent falls back to HEAD then copy: a rename onto an existing key is
        // refused and leaves both objects alone.
        let (staging, blob) = (Path::from("uploads/u/staging-1"), Path::from("blobs/sha256/ab/abc"));
        store.put(&staging, PutPayload::from_static(b"bytes")).await.unwrap();
        store.rename_if_not_exists(&staging, &blob).await.unwrap();
        assert!(matches!(store.head(&staging).await, Err(object_store::Error::NotFound { .. })));
        store.put(&staging, PutPayload::from_static(b"other")).await.unwrap();
        let again = store.rename_if_not_exists(&staging, &blob).await;
        assert!(matches!(again, Err(object_store::Error::AlreadyExists { .. })), "{again:?}");
        assert_eq!(store.get(&blob).await.unwrap().bytes().await.unwrap().as_ref(), b"bytes");
    }

    #[tokio::test]
    async fn storage_class_is_set_on_every_write() {
        let store = S3Store::new(
            Arc::new(InMemory::new()),
            EtagForm::Unquoted,
            CopyIfAbsent::Native,
            Some("STANDARD_IA".into()),
        );
        let key = Path::from("a");
        store.put(&key, PutPayload::from_static(b"x")).await.unwrap();
        let attributes = store.get(&key).await.unwrap().attributes;
        assert_eq!(attributes.get(&Attribute::StorageClass).map(|v| v.as_ref()), Some("STANDARD_IA"));
        let mut upload = store.put_multipart(&Path::from("b")).await.unwrap();
        upload.put_part(PutPayload::from_static(b"y")).await.unwrap();
        upload.complete().await.unwrap();
        let attributes = store.get(&Path::from("b")).await.unwrap().attributes;
        assert_eq!(attributes.get(&Attribute::StorageClass).map(|v| v.as_ref()), Some("STANDARD_IA"));
        let none =
            S3Store::new(Arc::new(InMemory::new()), EtagForm::Unquoted, CopyIfAbsent::Native, Some("NONE".into()));
        none.put(&key, PutPayload::from_static(b"x")).await.unwrap();
        assert!(none.get(&key).await.unwrap().attributes.get(&Attribute::StorageClass).is_none());
    }

    #[test]
    fn store_errors_are_one_bounded_line_with_their_causes() {
        let cause = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let body = format!("<Error>\n  <Code>NoSuchBucket</Code>\n{}</Error>", "x".repeat(5000));
        let error = object_store::Error::Generic { store: "S3", source: format!("PUT failed: {body}").into() };
        let line = one_line(&error);
        assert!(!line.contains('\n') && line.chars().count() < 700, "{line}");
        assert!(line.contains("NoSuchBucket") && line.ends_with("</Error>"), "{line}");
        // As reqwest's: the message names the step, only the source names the reason.
        #[derive(Debug)]
        struct SendError(std::io::Error);
        impl fmt::Display for SendError {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "error sending request")
            }
        }
        impl std::error::Error for SendError {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let nested = object_store::Error::Generic { store: "S3", source: Box::new(SendError(cause)) };
        let line = one_line(&nested);
        assert!(line.contains("error sending request: invalid peer certificate: UnknownIssuer"), "{line}");
    }

    #[tokio::test]
    async fn deleting_one_absent_object_is_not_found_and_bulk_deletes_stay_bulk() {
        // InMemory, like S3, deletes an absent key without complaint.
        let memory = Arc::new(InMemory::new());
        assert!(memory.delete(&Path::from("absent")).await.is_ok());
        let store = S3Store::new(memory, EtagForm::Quoted, CopyIfAbsent::Native, None);
        let missing = store.delete(&Path::from("absent")).await;
        assert!(matches!(missing, Err(object_store::Error::NotFound { .. })), "{missing:?}");
        for key in ["p/a", "p/b", "p/c", "q"] {
            store.put(&Path::from(key), PutPayload::from_static(b"x")).await.unwrap();
        }
        store.delete(&Path::from("q")).await.unwrap();
        let listed = store.list(Some(&Path::from("p"))).map(|meta| meta.map(|meta| meta.location)).boxed();
        let deleted: Vec<Path> = store.delete_stream(listed).map(Result::unwrap).collect().await;
        assert_eq!(deleted.len(), 3);
        assert!(keys(&store).await.is_empty());
    }

    #[test]
    fn options_are_checked_by_parameter_name() {
        let base = S3Options { bucket: "charts".into(), ..Default::default() };
        assert_eq!(base.check(), Ok(()));
        let check = |options: S3Options| options.check().unwrap_err();
        assert!(check(S3Options { bucket: String::new(), ..base.clone() }).starts_with("bucket:"));
        for bad in ["a//b", "../x", "a/./b", "a b"] {
            let error = check(S3Options { root_directory: bad.into(), ..base.clone() });
            assert!(error.starts_with("rootdirectory:"), "{bad}: {error}");
        }
        assert_eq!(S3Options { root_directory: "registry/v1".into(), ..base.clone() }.check(), Ok(()));
        assert!(check(S3Options { key_id: Some("k".into()), ..base.clone() }).starts_with("keyid:"));
        assert!(
            check(S3Options { storage_class: Some("GLACIER".into()), ..base.clone() }).starts_with("storageclass:")
        );
        let http = S3Options { endpoint: Some("http://minio:9000".into()), secure: Some(true), ..base.clone() };
        assert!(check(http).starts_with("regionendpoint:"));
        assert!(check(S3Options { endpoint: Some("ftp://x".into()), ..base.clone() }).starts_with("regionendpoint:"));
    }

    #[test]
    fn endpoints_take_a_scheme_from_secure() {
        assert_eq!(endpoint_url("minio:9000", None), Ok(("https://minio:9000".into(), false)));
        assert_eq!(endpoint_url("minio:9000/", Some(false)), Ok(("http://minio:9000".into(), true)));
        assert_eq!(endpoint_url("http://127.0.0.1:9000", None), Ok(("http://127.0.0.1:9000".into(), true)));
        assert_eq!(virtual_hosted("https://s3.example.com", "charts"), "https://charts.s3.example.com");
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let options = S3Options {
            bucket: "b".into(),
            secret_key: Some("very-secret".into()),
            session_token: Some("token-secret".into()),
            ..Default::default()
        };
        let printed = format!("{options:?}");
        assert!(!printed.contains("secret\"") && !printed.contains("very-secret") && !printed.contains("token-secret"));
        assert!(printed.contains("<hidden>"), "{printed}");
    }
}
