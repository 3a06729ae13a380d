//! The object stores chartyard runs on, named after docker distribution's storage drivers.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;

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
}

/// An opened backend.
pub struct OpenedBackend {
    pub store: Arc<dyn ObjectStore>,
    /// Whether the store can compare-and-swap (`PutMode::Update`).
    pub conditional_updates: bool,
}

impl Backend {
    /// The driver name as written in the configuration.
    pub fn driver_name(&self) -> &'static str {
        match self {
            Self::Filesystem { .. } => "filesystem",
            Self::InMemory => "inmemory",
        }
    }

    pub fn open(&self) -> Result<OpenedBackend, String> {
        match self {
            Self::Filesystem { root, fsync } => {
                std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
                let store = LocalFileSystem::new_with_prefix(root)
                    .map_err(|e| format!("cannot use {}: {e}", root.display()))?
                    // Removing a chart's last record must remove the chart's folder too.
                    .with_automatic_cleanup(true)
                    .with_fsync(*fsync);
                Ok(OpenedBackend { store: Arc::new(store), conditional_updates: false })
            }
            Self::InMemory => Ok(OpenedBackend { store: Arc::new(InMemory::new()), conditional_updates: true }),
        }
    }
}
