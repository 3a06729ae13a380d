//! Every object key chartyard writes, built in one place.
//!
//! ```text
//! spaces/{space}.json                      space marker: the space exists iff this does
//! charts/{space}/{chart}/{version}.json    version record: the version exists iff this does
//! blobs/sha256/{hex[0..2]}/{hex}           chart archive bytes, content-addressed, shared
//! ```
//!
//! Names and versions are validated before they reach this module, so they are always
//! safe key segments (`[A-Za-z0-9_-]` names, SemVer versions).

use object_store::path::Path;

/// One object (or prefix of objects) in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKey<'a> {
    /// Prefix of all space markers.
    Spaces,
    /// The marker object of a space.
    SpaceMarker { space: &'a str },
    /// Prefix of every version record in a space.
    SpaceCharts { space: &'a str },
    /// Prefix of every version record of a chart.
    ChartVersions { space: &'a str, chart: &'a str },
    /// The record of one chart version.
    VersionRecord {
        space: &'a str,
        chart: &'a str,
        version: &'a str,
    },
    /// Prefix of all version records.
    AllCharts,
    /// Prefix of all blobs.
    Blobs,
    /// An archive, by sha256 hex digest.
    Blob { digest: &'a str },
}

pub const RECORD_SUFFIX: &str = ".json";

impl StorageKey<'_> {
    pub fn path(&self) -> Path {
        match self {
            Self::Spaces => Path::from("spaces"),
            Self::SpaceMarker { space } => Path::from(format!("spaces/{space}{RECORD_SUFFIX}")),
            Self::AllCharts => Path::from("charts"),
            Self::SpaceCharts { space } => Path::from(format!("charts/{space}")),
            Self::ChartVersions { space, chart } => Path::from(format!("charts/{space}/{chart}")),
            Self::VersionRecord {
                space,
                chart,
                version,
            } => Path::from(format!("charts/{space}/{chart}/{version}{RECORD_SUFFIX}")),
            Self::Blobs => Path::from("blobs/sha256"),
            Self::Blob { digest } => Path::from(format!(
                "blobs/sha256/{}/{digest}",
                &digest[..2.min(digest.len())]
            )),
        }
    }
}

/// Splits a version record key back into `(space, chart, version)`; `None` for anything
/// else found under `charts/` (such as a filesystem store's staging files).
pub fn parse_record_path(path: &Path) -> Option<(String, String, String)> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, space, chart, file] if root.as_ref() == "charts" => {
            let version = file.as_ref().strip_suffix(RECORD_SUFFIX)?;
            chartyard_core::names::parse_version(version).ok()?;
            Some((
                space.as_ref().to_string(),
                chart.as_ref().to_string(),
                version.to_string(),
            ))
        }
        _ => None,
    }
}

/// The space a marker key names.
pub fn parse_space_marker(path: &Path) -> Option<String> {
    let parts: Vec<_> = path.parts().collect();
    match parts.as_slice() {
        [root, file] if root.as_ref() == "spaces" => {
            let space = file.as_ref().strip_suffix(RECORD_SUFFIX)?;
            chartyard_core::names::is_valid_name(space).then(|| space.to_string())
        }
        _ => None,
    }
}

/// The digest a blob key names.
pub fn parse_blob_path(path: &Path) -> Option<String> {
    path.filename()
        .filter(|f| f.len() == 64 && f.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let record = StorageKey::VersionRecord {
            space: "s",
            chart: "c",
            version: "1.0.0-rc.1+b.5",
        }
        .path();
        assert_eq!(record.as_ref(), "charts/s/c/1.0.0-rc.1+b.5.json");
        assert_eq!(
            parse_record_path(&record),
            Some(("s".into(), "c".into(), "1.0.0-rc.1+b.5".into()))
        );
        assert_eq!(
            StorageKey::SpaceMarker { space: "s" }.path().as_ref(),
            "spaces/s.json"
        );
        let digest = "ab".repeat(32);
        let blob = StorageKey::Blob { digest: &digest }.path();
        assert_eq!(blob.as_ref(), format!("blobs/sha256/ab/{digest}"));
        assert_eq!(parse_blob_path(&blob), Some(digest));
        assert_eq!(
            parse_record_path(&Path::from("charts/s/c/1.0.0.json#3")),
            None
        );
    }
}
