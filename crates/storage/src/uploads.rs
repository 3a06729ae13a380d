//! OCI upload sessions kept in storage: the session object, its parts (written
//! create-if-absent at their offsets), each request's staging object, the claim of the
//! request completing it, and the count and expiry of open sessions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use chartyard_core::RegistryError;
use chartyard_core::oci::Hasher;
use futures::stream::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::gateway::{ByteStream, Created, Gateway, WriteError};
use crate::keys::{StorageKey, parse_upload_object, parse_upload_part};
use crate::locks::{LockGuard, Locks};
use crate::spaces::{new_generation, now_rfc3339};

type Result<T> = std::result::Result<T, RegistryError>;

/// The state of an upload: which repository it is for. Its bytes so far are its parts.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UploadSession {
    pub space: String,
    pub name: String,
    started: String,
}

/// One request's bytes of an upload, written whole before they are verified. No two
/// requests share one: each gets a fresh nonce.
pub(crate) struct Staging {
    id: String,
    nonce: String,
}

impl Staging {
    pub(crate) fn key(&self) -> StorageKey<'_> {
        StorageKey::UploadStaging { id: &self.id, nonce: &self.nonce }
    }
}

/// The upload sessions.
pub(crate) struct Uploads {
    gateway: Gateway,
    max_sessions: usize,
    /// Sessions open (counted here, recounted from storage at startup and whenever the
    /// count says the cap is reached).
    open: AtomicUsize,
    /// Serialises requests on one session.
    locks: Locks,
}

impl Uploads {
    pub fn new(gateway: Gateway, max_sessions: usize) -> Self {
        Self { gateway, max_sessions, open: AtomicUsize::new(0), locks: Locks::new(Duration::ZERO) }
    }

    /// Most sessions open at once.
    pub fn max_sessions(&self) -> usize {
        self.max_sessions
    }

    /// Starts a session for a repository; its id, or `None` when `max_sessions` are open.
    pub async fn start(&self, space: &str, name: &str) -> Result<Option<String>> {
        // The count is this process's: sessions it started may have been completed or
        // cancelled by another process (a replica) on the same store, which frees their
        // places only there. So a full count is checked against the store before refusing.
        if !self.admit() && (self.count().await? >= self.max_sessions || !self.admit()) {
            return Ok(None);
        }
        let id = new_generation();
        let session = UploadSession { space: space.into(), name: name.into(), started: now_rfc3339() };
        if let Err(e) = self.gateway.put_json(StorageKey::UploadSession { id: &id }, &session).await {
            self.closed();
            return Err(e);
        }
        Ok(Some(id))
    }

    /// Takes a place among the open sessions, if one is free.
    fn admit(&self) -> bool {
        let max = self.max_sessions;
        self.open.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| (open < max).then_some(open + 1)).is_ok()
    }

    fn closed(&self) {
        let _ = self.open.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| open.checked_sub(1));
    }

    /// A session's state; `None` if there is none (or it cannot be read as one).
    pub async fn session(&self, id: &str) -> Result<Option<UploadSession>> {
        let Some(stored) = self.gateway.get(StorageKey::UploadSession { id }).await? else { return Ok(None) };
        Ok(serde_json::from_slice(&stored.bytes).ok())
    }

    /// Whether a request has claimed the completion of a session.
    pub async fn is_claimed(&self, id: &str) -> Result<bool> {
        self.gateway.exists(StorageKey::UploadDone { id }).await
    }

    /// Claims the completion of a session (create-if-absent, so across processes too);
    /// answers whether this call got it.
    pub async fn claim(&self, id: &str) -> Result<bool> {
        Ok(matches!(self.gateway.create(StorageKey::UploadDone { id }, Bytes::new()).await?, Created::Created(_)))
    }

    /// The parts of a session, by offset, with their sizes; they must follow each other.
    pub async fn parts(&self, id: &str) -> Result<Vec<(u64, u64)>> {
        let metas = self.gateway.list(StorageKey::Upload { id }).await?;
        let mut parts: Vec<(u64, u64)> =
            metas.iter().filter_map(|m| Some((parse_upload_part(&m.location)?, m.size))).collect();
        parts.sort();
        let mut end = 0;
        for (offset, size) in &parts {
            if *offset != end {
                return Err(RegistryError::internal(format!("upload {id} has a gap at {end}")));
            }
            end += size;
        }
        Ok(parts)
    }

    /// Holds a session for one request; `None` while another request holds it.
    pub async fn hold(&self, id: &str) -> Option<LockGuard> {
        self.locks.acquire(id).await
    }

    /// Streams one request's bytes into a staging object of its own (see
    /// [`Gateway::write_stream`]); answers it and its size.
    pub async fn stage(
        &self,
        id: &str,
        body: ByteStream,
        budget: u64,
        hasher: Option<&mut Hasher>,
    ) -> std::result::Result<(Staging, u64), WriteError> {
        let staging = Staging { id: id.to_string(), nonce: new_generation() };
        let written = self.gateway.write_stream(staging.key(), body, budget, hasher).await?;
        Ok((staging, written))
    }

    /// Removes a staging object that is not kept.
    pub async fn discard(&self, staging: Staging) -> Result<()> {
        self.gateway.delete(staging.key()).await.map(drop)
    }

    /// Makes a staging object the part at `offset` unless another request's chunk is or
    /// goes there; answers whether it did. Of two chunks for one offset, in one process
    /// or several, exactly one lands: the offset is first claimed with create-if-absent
    /// (which every store the registry opens guarantees), and only the claimer moves its
    /// bytes there, since a store's copy-if-absent may not be atomic (see `s3`). A request
    /// killed between its claim and its move leaves the offset claimed: later chunks for
    /// it are refused, and the client starts the upload again.
    pub async fn add_part(&self, staging: &Staging, offset: u64) -> Result<bool> {
        let claim = StorageKey::UploadPartClaim { id: &staging.id, offset };
        let nonce = Bytes::from(staging.nonce.clone());
        if let Created::Exists = self.gateway.create(claim, nonce.clone()).await? {
            // A retried create may find its own claim: the nonce tells it apart.
            let Some(stored) = self.gateway.get(claim).await? else { return Ok(false) };
            if stored.bytes != nonce {
                return Ok(false);
            }
        }
        self.gateway.rename_if_absent(staging.key(), StorageKey::UploadPart { id: &staging.id, offset }).await
    }

    /// The bytes of a session's parts, one after the other.
    pub fn read_parts(&self, id: &str, parts: Vec<(u64, u64)>) -> ByteStream {
        let (gateway, upload) = (self.gateway.clone(), id.to_string());
        futures::stream::iter(parts)
            .then(move |(part_offset, _)| {
                let (gateway, upload) = (gateway.clone(), upload.clone());
                async move {
                    let part = StorageKey::UploadPart { id: &upload, offset: part_offset };
                    match gateway.open(part, None).await {
                        Ok(Some(opened)) => Ok(opened.body.map_err(|e| e.to_string())),
                        Ok(None) => Err(format!("part {part_offset} of upload {upload} is missing")),
                        Err(e) => Err(e.to_string()),
                    }
                }
            })
            .try_flatten()
            .boxed()
    }

    /// Deletes a session's objects; its place among the open sessions is freed once, by
    /// whoever removed its session object.
    pub async fn close(&self, id: &str) -> Result<()> {
        if self.gateway.delete(StorageKey::UploadSession { id }).await? {
            self.closed();
        }
        self.remove(id).await
    }

    /// Deletes whatever objects an upload id has.
    pub async fn remove(&self, id: &str) -> Result<()> {
        self.gateway.delete_prefix(StorageKey::Upload { id }).await
    }

    /// Last activity of every upload id in storage, and whether it is a session (a
    /// one-request upload has only a staging object).
    async fn stored(&self) -> Result<HashMap<String, (SystemTime, bool)>> {
        let metas = self.gateway.list(StorageKey::Uploads).await?;
        let mut uploads: HashMap<String, (SystemTime, bool)> = Default::default();
        for meta in &metas {
            let Some((id, is_session)) = parse_upload_object(&meta.location) else { continue };
            let entry = uploads.entry(id).or_insert((std::time::UNIX_EPOCH, false));
            entry.0 = entry.0.max(meta.last_modified.into());
            entry.1 |= is_session;
        }
        Ok(uploads)
    }

    /// Counts the sessions in storage, for the cap on open ones; called before the server
    /// takes requests, after which starts and ends keep the count, and again by a start
    /// that finds the count at the cap.
    pub async fn count(&self) -> Result<usize> {
        let open = self.stored().await?.values().filter(|(_, is_session)| *is_session).count();
        self.open.store(open, Ordering::SeqCst);
        Ok(open)
    }

    /// Deletes sessions (and stray staging objects) with no activity for longer than
    /// `idle`; answers how many were deleted.
    pub async fn expire(&self, idle: Duration) -> Result<usize> {
        let cutoff = SystemTime::now() - idle;
        let mut deleted = 0;
        for (id, (active, _)) in self.stored().await? {
            if active < cutoff {
                self.close(&id).await?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}
