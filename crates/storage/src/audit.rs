//! The audit log of each space: one small JSON object per recorded request, under the
//! space's generation (so it goes with the space), written create-if-absent and never
//! changed. Keys sort newest first: the name is the time inverted (`u64::MAX` minus the
//! nanoseconds since the Unix epoch, zero-padded) and a random suffix, so a plain listing
//! (or a `start-after` one) pages from the newest entry down. Trimmed to the newest
//! [`RegistryOptions::audit_retention`](crate::RegistryOptions) entries by a serving
//! process's background work and by garbage collection, never while a request waits.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::SystemTime;

use chartyard_core::RegistryError;
use chartyard_core::wire::AuditEntry;
use object_store::ObjectMeta;

use crate::gateway::{Created, Gateway};
use crate::keys::{StorageKey, parse_audit_entry};

type Result<T> = std::result::Result<T, RegistryError>;

/// Keep this many audit entries per space unless configured otherwise.
pub const DEFAULT_AUDIT_RETENTION: usize = 10_000;

/// The name of an entry of `time`: later times sort first; entries of the same
/// nanosecond in random order.
pub(crate) fn entry_name(time: SystemTime) -> String {
    let nanos = time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let random = RandomState::new().hash_one(nanos) as u32;
    format!("{:020}-{random:08x}", u64::MAX - nanos)
}

pub(crate) struct Audit {
    gateway: Gateway,
}

impl Audit {
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway }
    }

    /// Stores one entry of `time` in a generation of a space; never replaces one.
    pub async fn append(&self, space: &str, generation: &str, time: SystemTime, entry: &AuditEntry) -> Result<()> {
        for _ in 0..3 {
            let name = entry_name(time);
            let key = StorageKey::AuditEntry { space, generation, name: &name };
            if let Created::Created(_) = self.gateway.create_json(key, entry).await? {
                return Ok(());
            }
        }
        Err(RegistryError::internal("could not find a free name for an audit entry"))
    }

    /// The entry keys of a generation of a space, newest first.
    async fn keys(&self, space: &str, generation: &str) -> Result<Vec<ObjectMeta>> {
        let mut keys: Vec<ObjectMeta> = self
            .gateway
            .list(StorageKey::SpaceAudit { space, generation })
            .await?
            .into_iter()
            .filter(|meta| parse_audit_entry(&meta.location).is_some())
            .collect();
        keys.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(keys)
    }

    /// The total number of entries, and the entries from `start` (0: the newest) on, at
    /// most `limit`, newest first.
    pub async fn page(
        &self,
        space: &str,
        generation: &str,
        start: usize,
        limit: usize,
    ) -> Result<(usize, Vec<AuditEntry>)> {
        let keys = self.keys(space, generation).await?;
        let mut entries = Vec::new();
        for meta in keys.iter().skip(start).take(limit) {
            let Some((_, _, name)) = parse_audit_entry(&meta.location) else { continue };
            // Trimmed since the listing: no longer there.
            if let Some(entry) =
                self.gateway.get_json(StorageKey::AuditEntry { space, generation, name: &name }).await?
            {
                entries.push(entry);
            }
        }
        Ok((keys.len(), entries))
    }

    /// Removes the entries of deleted generations, and those of each live one past its
    /// newest `keep`. Answers how many went. An entry of a generation not in `live` is
    /// kept while younger than `cutoff`: its space may have been created after `live` was
    /// read.
    pub async fn trim(&self, live: &HashMap<String, String>, keep: usize, cutoff: SystemTime) -> Result<usize> {
        let mut logs: HashMap<(String, String), Vec<(String, SystemTime)>> = HashMap::new();
        for meta in self.gateway.list(StorageKey::AllAudit).await? {
            if let Some((space, generation, name)) = parse_audit_entry(&meta.location) {
                logs.entry((space, generation)).or_default().push((name, SystemTime::from(meta.last_modified)));
            }
        }
        let mut removed = 0;
        for ((space, generation), mut names) in logs {
            names.sort();
            let is_live = live.get(&space) == Some(&generation);
            let keep = if is_live { keep } else { 0 };
            for (name, written) in names.iter().skip(keep) {
                if !is_live && *written >= cutoff {
                    continue;
                }
                let key = StorageKey::AuditEntry { space: &space, generation: &generation, name };
                if self.gateway.delete(key).await? {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Removes the entries of a generation of a space past its newest `keep`; answers how
    /// many went.
    pub async fn trim_space(&self, space: &str, generation: &str, keep: usize) -> Result<usize> {
        let mut removed = 0;
        for meta in self.keys(space, generation).await?.iter().skip(keep) {
            let Some((_, _, name)) = parse_audit_entry(&meta.location) else { continue };
            if self.gateway.delete(StorageKey::AuditEntry { space, generation, name: &name }).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes the whole log of a generation of a space.
    pub async fn delete_generation(&self, space: &str, generation: &str) -> Result<()> {
        self.gateway.delete_prefix(StorageKey::SpaceAudit { space, generation }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn newer_entries_sort_first() {
        let now = SystemTime::now();
        let older = entry_name(now);
        let newer = entry_name(now + Duration::from_nanos(1));
        assert!(newer < older);
        assert_eq!(older.len(), 29);
    }
}
