//! Every real chart in the shared corpus loads, with the name and version its manifest
//! records. Skipped when the corpus is not beside the repository.

use std::path::PathBuf;

use chartyard_core::archive::{Limits, load, sha256_hex};
use chartyard_core::index;
use chartyard_core::record::VersionRecord;

fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/charts");
    dir.join("manifest.tsv").exists().then_some(dir)
}

#[test]
fn every_corpus_chart_loads_with_its_manifest_name_and_version() {
    let Some(dir) = corpus_dir() else {
        eprintln!("shared chart corpus not found; skipping");
        return;
    };
    let manifest = std::fs::read_to_string(dir.join("manifest.tsv")).unwrap();
    let mut loaded = 0;
    for line in manifest.lines().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, name, version) = (cols[0], cols[1], cols[2]);
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let chart = load(&bytes, &Limits::default()).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!((chart.metadata.name.as_str(), chart.metadata.version.as_str()), (name, version), "{file}");
        // Indexes keep each entry as its YAML fragment only, and parse it back for JSON
        // answers: that must give the entry itself.
        let record = VersionRecord::new(&chart, sha256_hex(&bytes), bytes.len() as u64, "2026-01-01T00:00:00Z".into());
        let entry = index::entry(&record, index::archive_url(name, version));
        let fragment = index::entry_yaml(&entry).unwrap();
        assert_eq!(index::parse_entry_yaml(&fragment).unwrap(), entry, "{file}");
        loaded += 1;
    }
    assert_eq!(loaded, 147);
}
