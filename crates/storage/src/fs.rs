//! The `filesystem` backend: object_store's `LocalFileSystem`, with listings that never
//! follow symbolic links, and the clean-up of staging files that killed writes leave.
//!
//! `LocalFileSystem` lists by walking the directory tree with links followed: a symbolic
//! link planted in the data directory could pull foreign files into listings, and a link
//! loop made every listing under it fail. Here listings read directories themselves and
//! skip links of every kind; reads and writes are `LocalFileSystem`'s own.
//!
//! `LocalFileSystem` writes each object to a staging file beside it (`{key}#{n}`) and
//! renames it into place. A process killed mid-write leaves the staging file behind,
//! invisible to listings; [`remove_stale_staging_files`] removes those older than a
//! grace period, which a write in progress never is (its file's time moves as it writes).

use std::fmt;
use std::fs::{DirEntry, Metadata};
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::{Path, PathPart};
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

/// Objects as files under a root directory.
#[derive(Debug)]
pub struct FileSystemStore {
    inner: Arc<LocalFileSystem>,
    /// The folder `inner` keeps its objects in, as it resolved it.
    root: PathBuf,
}

impl FileSystemStore {
    /// A store over `root` (created if missing), configured by `configure`.
    pub fn open(
        root: &std::path::Path,
        configure: impl FnOnce(LocalFileSystem) -> LocalFileSystem,
    ) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        let root = std::fs::canonicalize(root)?;
        let inner = LocalFileSystem::new_with_prefix(&root).map_err(std::io::Error::other)?;
        Ok(Self { inner: Arc::new(configure(inner)), root })
    }
}

impl fmt::Display for FileSystemStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileSystemStore({})", self.inner)
    }
}

fn generic(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> object_store::Error {
    object_store::Error::Generic { store: "LocalFileSystem", source: source.into() }
}

/// Whether a file name is a staging file of a write (`{name}#{digits}`), as
/// `LocalFileSystem` names them.
pub fn is_staging_file_name(name: &str) -> bool {
    name.rsplit_once('#').is_some_and(|(_, suffix)| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
}

/// The metadata `LocalFileSystem` would report for a file, ETag included, so that cached
/// records keyed by a listing's ETag match what a read of the same file reports.
fn object_meta(location: Path, metadata: &Metadata) -> ObjectMeta {
    let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let micros = modified.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_micros();
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    let size = metadata.len();
    ObjectMeta {
        location,
        last_modified: modified.into(),
        size,
        e_tag: Some(format!("\"{inode:x}-{micros:x}-{size:x}\"")),
        version: None,
    }
}

/// A folder on disk and the object path it stands for.
type Folder = (PathBuf, Path);

/// What one directory holds, links left out: its subdirectories and its objects.
fn read_directory(dir: &std::path::Path, location: &Path) -> Result<(Vec<Folder>, Vec<ObjectMeta>)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
            return Ok(Default::default());
        }
        Err(e) => return Err(generic(format!("listing {}: {e}", dir.display()))),
    };
    let (mut dirs, mut objects) = (Vec::new(), Vec::new());
    for entry in entries {
        let entry = entry.map_err(|e| generic(format!("listing {}: {e}", dir.display())))?;
        let Some((kind, name)) = entry_kind(&entry) else {
            continue;
        };
        let child = location.clone().join(PathPart::from(name.as_str()));
        match kind {
            Kind::Dir => dirs.push((entry.path(), child)),
            Kind::File if !is_staging_file_name(&name) => match entry.metadata() {
                Ok(metadata) => objects.push(object_meta(child, &metadata)),
                Err(e) if e.kind() == ErrorKind::NotFound => {} // deleted since the listing
                Err(e) => return Err(generic(format!("reading {}: {e}", entry.path().display()))),
            },
            Kind::File => {}
        }
    }
    Ok((dirs, objects))
}

enum Kind {
    Dir,
    File,
}

/// A directory or regular file, by the entry itself (a link is neither); with its name
/// when that is valid UTF-8 (object keys are).
fn entry_kind(entry: &DirEntry) -> Option<(Kind, String)> {
    let file_type = entry.file_type().ok()?;
    let name = entry.file_name().into_string().ok()?;
    if file_type.is_dir() {
        Some((Kind::Dir, name))
    } else if file_type.is_file() {
        Some((Kind::File, name))
    } else {
        None
    }
}

/// Every object under a directory, links not followed.
fn walk(dir: PathBuf, location: Path) -> Result<Vec<ObjectMeta>> {
    let mut found = Vec::new();
    let mut pending = vec![(dir, location)];
    while let Some((dir, location)) = pending.pop() {
        let (dirs, objects) = read_directory(&dir, &location)?;
        found.extend(objects);
        pending.extend(dirs);
    }
    Ok(found)
}

impl FileSystemStore {
    fn directory(&self, prefix: Option<&Path>) -> Result<(PathBuf, Path)> {
        match prefix.filter(|p| !p.is_root()) {
            Some(prefix) => Ok((self.inner.path_to_filesystem(prefix)?, prefix.clone())),
            None => Ok((self.root.clone(), Path::default())),
        }
    }

    /// A small file (a chart archive, a record, a manifest) read whole, at once, on this
    /// thread: opening and reading a few cached pages costs less than the two thread
    /// switches of a hop to the blocking pool, which is what limits small downloads.
    /// `None` for anything else (larger files, folders, other errors), left to
    /// `LocalFileSystem`.
    fn read_small(&self, location: &Path, options: &GetOptions) -> Result<Option<GetResult>> {
        const SMALL_FILE: u64 = 16 * 1024;
        let path = self.inner.path_to_filesystem(location)?;
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(object_store::Error::NotFound { path: location.to_string(), source: e.into() });
            }
            Err(_) => return Ok(None),
        };
        let Ok(metadata) = file.metadata() else { return Ok(None) };
        if !metadata.is_file() || metadata.len() > SMALL_FILE {
            return Ok(None);
        }
        let meta = object_meta(location.clone(), &metadata);
        options.check_preconditions(&meta)?;
        let mut bytes = Vec::with_capacity(meta.size as usize);
        if std::io::Read::read_to_end(&mut file, &mut bytes).is_err() || bytes.len() as u64 != meta.size {
            return Ok(None); // changed under us: the full path reads it again
        }
        let bytes = bytes::Bytes::from(bytes);
        Ok(Some(GetResult {
            payload: object_store::GetResultPayload::Stream(futures::stream::once(async move { Ok(bytes) }).boxed()),
            range: 0..meta.size,
            meta,
            attributes: Default::default(),
            extensions: Default::default(),
        }))
    }

    async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        tokio::task::spawn_blocking(work).await.map_err(generic)?
    }
}

#[async_trait]
impl ObjectStore for FileSystemStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let whole = options.range.is_none() && !options.head && options.version.is_none();
        if whole && let Some(read) = self.read_small(location, &options)? {
            return Ok(read);
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let directory = self.directory(prefix);
        futures::stream::once(async move {
            let (dir, location) = directory?;
            Self::blocking(move || walk(dir, location)).await
        })
        .flat_map(|result| match result {
            Ok(found) => futures::stream::iter(found.into_iter().map(Ok)).boxed(),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        })
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let (dir, location) = self.directory(prefix)?;
        let (dirs, objects) = Self::blocking(move || read_directory(&dir, &location)).await?;
        let mut common_prefixes: Vec<Path> = dirs.into_iter().map(|(_, location)| location).collect();
        common_prefixes.sort();
        Ok(ListResult { common_prefixes, objects, extensions: Default::default() })
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}

/// What [`remove_stale_staging_files`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StagingSweep {
    pub files: usize,
    pub bytes: u64,
}

/// Removes staging files (`{key}#{n}`) under `root` last written before `cutoff`, and
/// the folders that leaves empty; links are not followed.
pub fn remove_stale_staging_files(root: &std::path::Path, cutoff: SystemTime) -> std::io::Result<StagingSweep> {
    let mut sweep = StagingSweep::default();
    let mut pending = vec![root.to_path_buf()];
    let mut emptied = Vec::new();
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            match entry_kind(&entry) {
                Some((Kind::Dir, _)) => pending.push(entry.path()),
                Some((Kind::File, name)) if is_staging_file_name(&name) => {
                    let Ok(metadata) = entry.metadata() else { continue };
                    if metadata.modified()? >= cutoff {
                        continue;
                    }
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => {
                            sweep.files += 1;
                            sweep.bytes += metadata.len();
                            emptied.push(dir.clone());
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                _ => {}
            }
        }
    }
    // As the store does after deletes: folders left empty go, up to the root. Removing a
    // folder that is not empty fails, which leaves it, so a racing writer keeps its own.
    for mut dir in emptied {
        while dir != root && dir.starts_with(root) && std::fs::remove_dir(&dir).is_ok() {
            if !dir.pop() {
                break;
            }
        }
    }
    Ok(sweep)
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;

    fn temp_dir(label: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("chartyard-fs-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn listings_match_local_file_system_and_skip_links() {
        let root = temp_dir("links");
        let local = LocalFileSystem::new_with_prefix(&root).unwrap();
        let store = FileSystemStore::open(&root, |local| local).unwrap();
        for key in ["a/b/one.json", "a/b/two.json", "a/three+x.json", "top.json"] {
            store.put(&Path::from(key), PutPayload::from_static(b"{}")).await.unwrap();
        }
        let sorted = |mut metas: Vec<ObjectMeta>| {
            metas.sort_by(|x, y| x.location.cmp(&y.location));
            metas
        };
        // Without links, exactly what LocalFileSystem lists, ETags included.
        let ours = sorted(store.list(None).collect::<Vec<_>>().await.into_iter().map(Result::unwrap).collect());
        let theirs = sorted(local.list(None).collect::<Vec<_>>().await.into_iter().map(Result::unwrap).collect());
        assert_eq!(ours, theirs);
        assert_eq!(store.head(&Path::from("a/b/one.json")).await.unwrap().e_tag, ours[0].e_tag);

        // A loop, links to a folder and a file, a staging file: none of them is listed.
        std::os::unix::fs::symlink("..", root.join("a/b/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("alias")).unwrap();
        std::os::unix::fs::symlink(root.join("top.json"), root.join("linked.json")).unwrap();
        std::fs::write(root.join("a/b/one.json#7"), b"partial").unwrap();
        let listed: Vec<String> =
            sorted(store.list(None).collect::<Vec<_>>().await.into_iter().map(Result::unwrap).collect())
                .into_iter()
                .map(|m| m.location.to_string())
                .collect();
        assert_eq!(listed, ["a/b/one.json", "a/b/two.json", "a/three+x.json", "top.json"]);
        assert!(local.list(None).collect::<Vec<_>>().await.iter().any(Result::is_err), "LocalFileSystem fails");
        let level = store.list_with_delimiter(Some(&Path::from("a"))).await.unwrap();
        assert_eq!(level.common_prefixes, [Path::from("a/b")]);
        assert_eq!(level.objects.iter().map(|m| m.location.to_string()).collect::<Vec<_>>(), ["a/three+x.json"]);
        let level = store.list_with_delimiter(None).await.unwrap();
        assert_eq!(level.common_prefixes, [Path::from("a")]);
        assert!(store.list_with_delimiter(Some(&Path::from("missing"))).await.unwrap().objects.is_empty());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[tokio::test]
    async fn small_files_are_read_whole_as_local_file_system_reads_them() {
        let root = temp_dir("small");
        let local = LocalFileSystem::new_with_prefix(&root).unwrap();
        let store = FileSystemStore::open(&root, |local| local).unwrap();
        let (small, large) = (vec![7u8; 2500], vec![9u8; 100_000]);
        store.put(&Path::from("s/small"), PutPayload::from(small.clone())).await.unwrap();
        store.put(&Path::from("s/large"), PutPayload::from(large.clone())).await.unwrap();
        for (key, bytes) in [("s/small", &small), ("s/large", &large)] {
            let (ours, theirs) =
                (store.get(&Path::from(key)).await.unwrap(), local.get(&Path::from(key)).await.unwrap());
            assert_eq!((&ours.meta, &ours.range), (&theirs.meta, &theirs.range), "{key}");
            assert_eq!(&ours.bytes().await.unwrap().to_vec(), bytes, "{key}");
        }
        let missing = store.get(&Path::from("s/missing")).await;
        assert!(matches!(missing, Err(object_store::Error::NotFound { .. })), "{missing:?}");
        let folder = store.get(&Path::from("s")).await;
        assert!(folder.is_err(), "a folder is no object");
        let stale = GetOptions { if_match: Some("\"stale\"".into()), ..Default::default() };
        let refused = store.get_opts(&Path::from("s/small"), stale).await;
        assert!(matches!(refused, Err(object_store::Error::Precondition { .. })), "{refused:?}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn staging_files_older_than_the_cutoff_go_with_their_empty_folders() {
        let root = temp_dir("staging");
        std::fs::create_dir_all(root.join("x/y")).unwrap();
        std::fs::create_dir_all(root.join("z")).unwrap();
        std::fs::write(root.join("x/y/blob#1"), b"12345").unwrap();
        std::fs::write(root.join("z/keep.json"), b"{}").unwrap();
        std::fs::write(root.join("z/keep.json#2"), b"fresh").unwrap();
        std::fs::write(root.join("z/name#with-text"), b"not staging").unwrap();
        let hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        let old = std::fs::File::options().write(true).open(root.join("x/y/blob#1")).unwrap();
        old.set_modified(hour_ago - std::time::Duration::from_secs(60)).unwrap();
        let sweep = remove_stale_staging_files(&root, hour_ago).unwrap();
        assert_eq!(sweep, StagingSweep { files: 1, bytes: 5 });
        assert!(!root.join("x").exists(), "emptied folders are removed");
        assert!(root.join("z/keep.json#2").exists() && root.join("z/name#with-text").exists());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn staging_names() {
        assert!(is_staging_file_name("1.0.0.json#1") && is_staging_file_name("abc#123"));
        assert!(!is_staging_file_name("abc#") && !is_staging_file_name("abc#1x") && !is_staging_file_name("abc"));
    }
}
