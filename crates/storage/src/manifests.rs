//! What OCI repositories hold besides chart versions: the manifests known in each (their
//! bytes are blobs) and the tags of artifacts that are not chart versions. A repository
//! is `oci/{space}/{generation}/{name}/`; its whole tree (with the blob links of
//! `blobs`) is listed for garbage collection and dropped with its space here.

use chartyard_core::RegistryError;
use chartyard_core::oci::{self, BlobDigest};
use serde::{Deserialize, Serialize};

use crate::gateway::Gateway;
use crate::keys::{
    RepositoryPath, StorageKey, parse_repository_manifest, parse_repository_name, parse_repository_object,
    parse_repository_tag,
};

type Result<T> = std::result::Result<T, RegistryError>;

/// A manifest known in a repository.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RepositoryManifest {
    pub media_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TagLink {
    digest: String,
}

/// One OCI repository of one generation of a space.
#[derive(Clone, Copy)]
pub(crate) struct Repository<'a> {
    pub space: &'a str,
    pub generation: &'a str,
    pub name: &'a str,
}

/// The repositories' manifests and tags.
pub(crate) struct Manifests {
    gateway: Gateway,
}

impl Manifests {
    pub fn new(gateway: Gateway) -> Self {
        Self { gateway }
    }

    fn manifest_key<'a>(repository: Repository<'a>, digest: BlobDigest<'a>) -> StorageKey<'a> {
        let Repository { space, generation, name } = repository;
        StorageKey::RepositoryManifest { space, generation, name, digest }
    }

    fn tag_key<'a>(repository: Repository<'a>, tag: &'a str) -> StorageKey<'a> {
        let Repository { space, generation, name } = repository;
        StorageKey::RepositoryTag { space, generation, name, tag }
    }

    /// A manifest known in a repository; `None` if it is not.
    pub async fn get(&self, repository: Repository<'_>, digest: BlobDigest<'_>) -> Result<Option<RepositoryManifest>> {
        self.gateway.get_json(Self::manifest_key(repository, digest)).await
    }

    pub async fn exists(&self, repository: Repository<'_>, digest: BlobDigest<'_>) -> Result<bool> {
        self.gateway.exists(Self::manifest_key(repository, digest)).await
    }

    pub async fn put(
        &self,
        repository: Repository<'_>,
        digest: BlobDigest<'_>,
        manifest: &RepositoryManifest,
    ) -> Result<()> {
        self.gateway.put_json(Self::manifest_key(repository, digest), manifest).await
    }

    /// Forgets a manifest in a repository; answers whether it was known.
    pub async fn delete(&self, repository: Repository<'_>, digest: BlobDigest<'_>) -> Result<bool> {
        self.gateway.delete(Self::manifest_key(repository, digest)).await
    }

    /// The manifests known in a repository: digest and link.
    pub async fn list(&self, repository: Repository<'_>) -> Result<Vec<(String, RepositoryManifest)>> {
        let Repository { space, generation, name } = repository;
        let listed = self.gateway.list(StorageKey::RepositoryManifests { space, generation, name }).await?;
        let mut manifests = Vec::new();
        for meta in listed {
            let Some(digest) = parse_repository_manifest(&meta.location) else { continue };
            let Ok(parsed) = oci::parse_digest(&digest) else { continue };
            if let Some(link) = self.get(repository, parsed).await? {
                manifests.push((digest, link));
            }
        }
        Ok(manifests)
    }

    /// Whether a repository knows any manifest.
    pub async fn any(&self, repository: Repository<'_>) -> bool {
        let Repository { space, generation, name } = repository;
        self.gateway.any_under(StorageKey::RepositoryManifests { space, generation, name }).await
    }

    /// The names of a space's repositories that know a manifest.
    pub async fn names(&self, space: &str, generation: &str) -> Result<Vec<String>> {
        let listing = self.gateway.list_dirs(StorageKey::RepositoryNames { space, generation }).await?;
        let mut names = Vec::new();
        for repository in listing.common_prefixes {
            let Some(name) = parse_repository_name(&repository) else { continue };
            if self.any(Repository { space, generation, name: &name }).await {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// The digest a tag points at; `None` if there is no such tag.
    pub async fn tag(&self, repository: Repository<'_>, tag: &str) -> Result<Option<String>> {
        let link: Option<TagLink> = self.gateway.get_json(Self::tag_key(repository, tag)).await?;
        Ok(link.map(|link| link.digest))
    }

    pub async fn tag_exists(&self, repository: Repository<'_>, tag: &str) -> Result<bool> {
        self.gateway.exists(Self::tag_key(repository, tag)).await
    }

    pub async fn put_tag(&self, repository: Repository<'_>, tag: &str, digest: &str) -> Result<()> {
        self.gateway.put_json(Self::tag_key(repository, tag), &TagLink { digest: digest.to_string() }).await
    }

    /// Deletes a tag; answers whether it was there.
    pub async fn delete_tag(&self, repository: Repository<'_>, tag: &str) -> Result<bool> {
        self.gateway.delete(Self::tag_key(repository, tag)).await
    }

    /// The tags of a repository (not its chart versions).
    pub async fn tags(&self, repository: Repository<'_>) -> Result<Vec<String>> {
        let Repository { space, generation, name } = repository;
        let listed = self.gateway.list(StorageKey::RepositoryTags { space, generation, name }).await?;
        Ok(listed.iter().filter_map(|m| parse_repository_tag(&m.location)).collect())
    }

    /// Deletes every tag pointing at `digest`; answers whether there was one.
    pub async fn delete_tags_of(&self, repository: Repository<'_>, digest: &str) -> Result<bool> {
        let mut found = false;
        for tag in self.tags(repository).await? {
            let key = Self::tag_key(repository, &tag);
            let link: Option<TagLink> = match self.gateway.get(key).await {
                Ok(Some(object)) => serde_json::from_slice(&object.bytes).ok(),
                Ok(None) | Err(_) => None,
            };
            if link.is_some_and(|l| l.digest == digest) {
                found |= self.gateway.delete(key).await?;
            }
        }
        Ok(found)
    }

    /// The manifests and blob links of every repository, for garbage collection.
    pub async fn held(&self) -> Result<Vec<RepositoryPath>> {
        let metas = self.gateway.list(StorageKey::AllRepositories).await?;
        Ok(metas.iter().filter_map(|meta| parse_repository_object(&meta.location)).collect())
    }

    /// Deletes every repository of one generation of a space.
    pub async fn delete_generation(&self, space: &str, generation: &str) -> Result<()> {
        self.gateway.delete_prefix(StorageKey::SpaceRepositories { space, generation }).await
    }
}
