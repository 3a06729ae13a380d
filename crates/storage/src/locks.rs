//! In-process resource locks (the seed's `resourcelocker: memory`), with its timeout rule:
//! a writer waits at most `locktimeout`, and with no timeout fails at once when busy.
//!
//! Locks serialise read-modify-write operations on one version inside one process.
//! Creating a version needs no lock: the store's create-if-absent is the arbiter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

#[derive(Debug, Default)]
pub struct Locks {
    timeout: Duration,
    table: Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>,
}

/// Held while a resource is being changed; the table entry goes when the last user does.
pub struct LockGuard {
    key: String,
    guard: Option<OwnedMutexGuard<()>>,
    table: Arc<Mutex<HashMap<String, Arc<AsyncMutex<()>>>>>,
}

impl Locks {
    pub fn new(timeout: Duration) -> Self {
        Self { timeout, table: Arc::default() }
    }

    /// Takes the lock on `key`, or `None` if it stayed busy for longer than the timeout.
    pub async fn acquire(&self, key: &str) -> Option<LockGuard> {
        let mutex = {
            let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
            table.entry(key.to_string()).or_default().clone()
        };
        let guard = if self.timeout.is_zero() {
            mutex.try_lock_owned().ok()
        } else {
            tokio::time::timeout(self.timeout, mutex.lock_owned()).await.ok()
        };
        let lock = LockGuard { key: key.to_string(), guard, table: self.table.clone() };
        // Even on failure `lock` is built so that its drop cleans the table entry up.
        if lock.guard.is_some() { Some(lock) } else { None }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.guard.take();
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if table.get(&self.key).is_some_and(|m| Arc::strong_count(m) == 1) {
            table.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn zero_timeout_fails_at_once_and_table_empties() {
        let locks = Locks::new(Duration::ZERO);
        let held = locks.acquire("a").await.unwrap();
        assert!(locks.acquire("a").await.is_none());
        assert!(locks.acquire("b").await.is_some());
        drop(held);
        assert!(locks.acquire("a").await.is_some());
        assert!(locks.table.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn waits_up_to_the_timeout() {
        let locks = Arc::new(Locks::new(Duration::from_millis(500)));
        let held = locks.acquire("a").await.unwrap();
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { locks.acquire("a").await.is_some() })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(held);
        assert!(waiter.await.unwrap());
        let short = Locks::new(Duration::from_millis(20));
        let _held = short.acquire("a").await.unwrap();
        assert!(short.acquire("a").await.is_none());
    }
}
