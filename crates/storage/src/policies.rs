//! Space policies: one JSON object per generation of a space, cached in memory.
//!
//! A cached policy is used while younger than the index freshness (or for as long as the
//! process runs when no other process writes the store), so a policy set on one replica
//! is applied by every other within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chartyard_core::RegistryError;
use chartyard_core::policy::SpacePolicy;

use crate::gateway::Gateway;
use crate::keys::StorageKey;

type Result<T> = std::result::Result<T, RegistryError>;

/// A policy as read, with the generation it belongs to and when it was read.
struct Cached {
    generation: String,
    policy: Arc<SpacePolicy>,
    read: Instant,
}

pub(crate) struct Policies {
    gateway: Gateway,
    /// How long a cached policy is used without reading it again; `None`: for ever.
    freshness: Option<Duration>,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Policies {
    pub fn new(gateway: Gateway, freshness: Option<Duration>) -> Self {
        Self { gateway, freshness, cache: Mutex::default() }
    }

    /// The policy of one generation of a space; the default (no rules) if none is stored.
    pub async fn get(&self, space: &str, generation: &str) -> Result<Arc<SpacePolicy>> {
        {
            let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(cached) = cache.get(space)
                && cached.generation == generation
                && self.freshness.is_none_or(|fresh| cached.read.elapsed() < fresh)
            {
                return Ok(cached.policy.clone());
            }
        }
        let read = Instant::now();
        let policy: SpacePolicy =
            self.gateway.get_json(StorageKey::SpacePolicy { space, generation }).await?.unwrap_or_default();
        let policy = Arc::new(policy);
        self.remember(space, generation, policy.clone(), read);
        Ok(policy)
    }

    /// Stores the policy of one generation of a space.
    pub async fn set(&self, space: &str, generation: &str, policy: SpacePolicy) -> Result<Arc<SpacePolicy>> {
        let read = Instant::now();
        self.gateway.put_json(StorageKey::SpacePolicy { space, generation }, &policy).await?;
        let policy = Arc::new(policy);
        self.remember(space, generation, policy.clone(), read);
        Ok(policy)
    }

    /// Removes the policy of one generation of a space.
    pub async fn delete(&self, space: &str, generation: &str) -> Result<()> {
        self.forget(space);
        self.gateway.delete(StorageKey::SpacePolicy { space, generation }).await?;
        Ok(())
    }

    /// Deletes the policies of generations that are not live (left by a space deletion
    /// that stopped half-way) once older than `cutoff`; answers how many.
    pub async fn collect(
        &self,
        live: &std::collections::HashMap<String, String>,
        cutoff: std::time::SystemTime,
    ) -> Result<usize> {
        let mut deleted = 0;
        for meta in self.gateway.list(StorageKey::AllPolicies).await? {
            let Some((space, generation)) = crate::keys::parse_policy(&meta.location) else { continue };
            if live.get(&space) != Some(&generation)
                && std::time::SystemTime::from(meta.last_modified) < cutoff
                && self.gateway.delete(StorageKey::SpacePolicy { space: &space, generation: &generation }).await?
            {
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    pub fn forget(&self, space: &str) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).remove(space);
    }

    fn remember(&self, space: &str, generation: &str, policy: Arc<SpacePolicy>, read: Instant) {
        let cached = Cached { generation: generation.to_string(), policy, read };
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(space.to_string(), cached);
    }
}
