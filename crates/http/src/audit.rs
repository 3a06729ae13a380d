//! The per-space audit log: [`auth::identify`](crate::auth::identify) hands every write
//! (and every refused attempt at one) that names a space to an [`AuditQueue`] once its
//! answer is ready; a background task stores the entries (see
//! `chartyard_storage::Registry::append_audit`). The request never waits for the store:
//! the queue is bounded, and an entry that does not fit is logged and dropped.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use chartyard_core::wire::AuditEntry;
use chartyard_storage::Registry;
use tokio::sync::{Semaphore, mpsc};

/// Entries waiting to be stored, at most.
pub const AUDIT_QUEUE_CAPACITY: usize = 4096;

/// Entries stored at once.
const AUDIT_WRITERS: usize = 8;

/// An entry, the space it goes to and its time (which orders the log).
type Queued = (String, SystemTime, AuditEntry);

/// Audit entries on their way to the store.
pub struct AuditQueue {
    registry: Arc<Registry>,
    /// Made (and its writer started) by the first entry, so that the queue can be built
    /// outside a runtime.
    sender: OnceLock<mpsc::Sender<Queued>>,
}

impl AuditQueue {
    pub fn new(registry: Arc<Registry>) -> Arc<Self> {
        Arc::new(Self { registry, sender: OnceLock::new() })
    }

    /// Queues an entry of `space` at `time`; drops it (with a warning) if the queue is
    /// full.
    pub fn submit(&self, space: String, time: SystemTime, entry: AuditEntry) {
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(AUDIT_QUEUE_CAPACITY);
            tokio::spawn(store_entries(self.registry.clone(), receiver));
            sender
        });
        if let Err(e) = sender.try_send((space, time, entry)) {
            let (space, _, entry) = match e {
                mpsc::error::TrySendError::Full(queued) | mpsc::error::TrySendError::Closed(queued) => queued,
            };
            metrics::counter!("chartyard_audit_dropped_total").increment(1);
            tracing::warn!(
                target: "chartyard::audit",
                space,
                user = entry.user,
                method = entry.method,
                path = entry.path,
                status = entry.status,
                "the audit queue is full: entry dropped"
            );
        }
    }
}

/// Stores queued entries, a few at once, until the queue is dropped.
async fn store_entries(registry: Arc<Registry>, mut receiver: mpsc::Receiver<Queued>) {
    let writers = Arc::new(Semaphore::new(AUDIT_WRITERS));
    while let Some((space, time, entry)) = receiver.recv().await {
        let Ok(permit) = writers.clone().acquire_owned().await else { return };
        let registry = registry.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = registry.append_audit(&space, time, &entry).await {
                metrics::counter!("chartyard_audit_dropped_total").increment(1);
                tracing::warn!(target: "chartyard::audit", space, error = %e, "storing an audit entry failed");
            }
        });
    }
}
