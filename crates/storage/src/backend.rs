//! The object stores chartyard runs on, named after docker distribution's storage drivers.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::memory::InMemory;

use crate::fs::{FileSystemStore, StagingSweep, remove_stale_staging_files};
use crate::s3::S3Options;

/// A storage backend and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `filesystem`: objects are files under `root`.
    Filesystem {
        root: PathBuf,
        /// Flush files and directories to disk before a write counts as done.
        fsync: bool,
    },
    /// `inmemory`: nothing survives the process; for tests and trials.
    InMemory,
    /// `s3`: objects in an S3 bucket (AWS or a compatible server), under a key prefix.
    S3(S3Options),
}

/// An opened backend.
pub struct OpenedBackend {
    pub store: Arc<dyn ObjectStore>,
    /// Whether the store can compare-and-swap (`PutMode::Update`).
    pub conditional_updates: bool,
    /// Whether deleting an absent object fails with `NotFound` (object_store's InMemory,
    /// like S3 itself, succeeds instead; our S3 store reports it).
    pub deletes_report_missing: bool,
    /// Whether other processes may write to the store while one serves it (S3); a
    /// filesystem root has one server, an in-memory store one process.
    pub shared: bool,
}

impl Backend {
    /// The driver name as written in the configuration.
    pub fn driver_name(&self) -> &'static str {
        match self {
            Self::Filesystem { .. } => "filesystem",
            Self::InMemory => "inmemory",
            Self::S3(_) => "s3",
        }
    }

    /// Removes what writes killed midway left behind outside the object namespace (the
    /// filesystem's staging files), once older than `grace`: a write in progress keeps
    /// its file fresh. Nothing to do for other backends.
    pub fn remove_abandoned_writes(&self, grace: std::time::Duration) -> Result<StagingSweep, String> {
        match self {
            Self::Filesystem { root, .. } => {
                let cutoff = std::time::SystemTime::now() - grace;
                remove_stale_staging_files(root, cutoff)
                    .map_err(|e| format!("removing staging files under {}: {e}", root.display()))
            }
            Self::InMemory | Self::S3(_) => Ok(StagingSweep::default()),
        }
    }

    /// Opens the store. For `s3` this first probes the bucket's conditional writes, and
    /// fails (with one line naming what failed) where they cannot be relied on.
    /// Claims the store for one serving process, where the store needs it: the filesystem
    /// has no compare-and-swap, so two servers on one root could overwrite each other's
    /// version changes. The claim is an exclusive lock on `{root}/.serve.lock`, held while
    /// the returned file is open and released by the OS whenever the process ends (a
    /// `kill -9` too). Maintenance (`chartyard gc`) needs no claim.
    pub fn claim_for_serving(&self) -> Result<Option<std::fs::File>, String> {
        let Self::Filesystem { root, .. } = self else { return Ok(None) };
        std::fs::create_dir_all(root).map_err(|e| format!("cannot use {}: {e}", root.display()))?;
        let path = root.join(".serve.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("cannot use {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(format!(
                "another chartyard server is using {}; the filesystem driver serves from one process \
                 (run replicas over the s3 driver)",
                root.display()
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
        }
    }

    pub fn open(&self) -> Result<OpenedBackend, String> {
        match self {
            Self::Filesystem { root, fsync } => {
                let store = FileSystemStore::open(root, |local| {
                    // Removing a chart's last record must remove the chart's folder too.
                    local.with_automatic_cleanup(true).with_fsync(*fsync)
                })
                .map_err(|e| format!("cannot use {}: {e}", root.display()))?;
                Ok(OpenedBackend {
                    store: Arc::new(store),
                    conditional_updates: false,
                    deletes_report_missing: true,
                    shared: false,
                })
            }
            Self::InMemory => Ok(OpenedBackend {
                store: Arc::new(InMemory::new()),
                conditional_updates: true,
                deletes_report_missing: false,
                shared: false,
            }),
            Self::S3(options) => crate::s3::open(options),
        }
    }
}
