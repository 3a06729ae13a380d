//! Space markers: a space exists iff its marker does, and the marker names the
//! generation its records and repositories live under.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::time::SystemTime;

use chartyard_core::RegistryError;
use serde::{Deserialize, Serialize};

use crate::gateway::{Created, Gateway};
use crate::keys::{StorageKey, parse_space_marker};

type Result<T> = std::result::Result<T, RegistryError>;

/// The content of a space marker.
#[derive(Debug, Serialize, Deserialize)]
struct SpaceMarker {
    created: String,
    /// Names this incarnation of the space; its records live under it.
    generation: String,
}

pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(SystemTime::now()).to_string()
}

/// A fresh generation id: the time, and randomness from the standard library's
/// randomly keyed hasher, so that replicas creating spaces at once do not collide.
pub(crate) fn new_generation() -> String {
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let random = RandomState::new().hash_one(nanos);
    format!("{:012x}{:08x}", (nanos / 1000) as u64 & 0xffff_ffff_ffff, random as u32)
}

/// The space markers. Names reach it checked.
pub(crate) struct Spaces {
    gateway: Gateway,
}

impl Spaces {
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway }
    }

    /// All spaces, sorted by name.
    pub async fn list(&self) -> Result<Vec<String>> {
        let listing = self.gateway.list_dirs(StorageKey::Spaces).await?;
        let mut spaces: Vec<String> = listing.objects.iter().filter_map(|o| parse_space_marker(&o.location)).collect();
        spaces.sort();
        Ok(spaces)
    }

    /// The current generation of a space, `None` if the space does not exist.
    pub async fn generation(&self, space: &str) -> Result<Option<String>> {
        let marker: Option<SpaceMarker> = self.gateway.get_json(StorageKey::SpaceMarker { space }).await?;
        Ok(marker.map(|marker| marker.generation))
    }

    /// The current generation of every space.
    pub async fn generations(&self) -> Result<HashMap<String, String>> {
        let mut generations = HashMap::new();
        for space in self.list().await? {
            if let Some(generation) = self.generation(&space).await? {
                generations.insert(space, generation);
            }
        }
        Ok(generations)
    }

    /// Writes a new marker unless one exists; the new generation if this call created it.
    pub async fn create(&self, space: &str) -> Result<Option<String>> {
        let marker = SpaceMarker { created: now_rfc3339(), generation: new_generation() };
        match self.gateway.create_json(StorageKey::SpaceMarker { space }, &marker).await? {
            Created::Created(_) => Ok(Some(marker.generation)),
            // Generations are unique: a marker naming ours is our own retried write.
            Created::Exists if self.generation(space).await?.as_deref() == Some(&marker.generation) => {
                Ok(Some(marker.generation))
            }
            Created::Exists => Ok(None),
        }
    }

    /// Removes a space's marker if it still names `generation`; answers whether it did.
    /// (A marker changes only by removal then creation, so one naming `generation` now is
    /// the one to remove.)
    pub async fn delete_if(&self, space: &str, generation: &str) -> Result<bool> {
        if self.generation(space).await?.as_deref() != Some(generation) {
            return Ok(false);
        }
        self.delete(space).await
    }

    /// Removes a space's marker; answers whether it was there.
    pub async fn delete(&self, space: &str) -> Result<bool> {
        self.gateway.delete(StorageKey::SpaceMarker { space }).await
    }
}
