//! `archive::load` and `archive::rewrite` against hand-built archives: every hostile
//! shape an untrusted client can upload must end in `RegistryError::Invalid` naming the
//! cause (never a panic, never unbounded work), and the legitimate layouts Helm produces
//! must load with their subcharts, dependencies and values.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use chartyard_core::RegistryError;
use chartyard_core::archive::{Chart, Limits, load, rewrite};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::json;
use tar::EntryType;

// ---- building archives ----

/// One tar entry, written with its path exactly as given (no sanitising).
struct Entry {
    path: String,
    kind: EntryType,
    data: Vec<u8>,
    link: Option<String>,
}

fn file(path: &str, data: impl Into<Vec<u8>>) -> Entry {
    Entry { data: data.into(), ..special(path, EntryType::Regular) }
}

fn dir(path: &str) -> Entry {
    special(path, EntryType::Directory)
}

fn link(path: &str, kind: EntryType, target: &str) -> Entry {
    Entry { link: Some(target.into()), ..special(path, kind) }
}

/// An entry with no content: a directory, device, FIFO, ...
fn special(path: &str, kind: EntryType) -> Entry {
    Entry { path: path.into(), kind, data: Vec::new(), link: None }
}

/// A plain (uncompressed) tar of the entries. Paths up to 100 bytes go into the header
/// verbatim, so `..`, `/` and `\` survive; longer ones use the GNU long-name extension.
fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        append(&mut builder, entry);
    }
    builder.into_inner().unwrap()
}

fn append<W: Write>(builder: &mut tar::Builder<W>, entry: &Entry) {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry.kind);
    header.set_mode(if entry.kind == EntryType::Directory { 0o755 } else { 0o644 });
    header.set_mtime(1_700_000_000);
    header.set_size(entry.data.len() as u64);
    if let Some(target) = &entry.link {
        header.set_link_name_literal(target).unwrap();
    }
    if entry.path.len() <= 100 {
        let name = &mut header.as_old_mut().name;
        name.fill(0);
        name[..entry.path.len()].copy_from_slice(entry.path.as_bytes());
        header.set_cksum();
        builder.append(&header, entry.data.as_slice()).unwrap();
    } else {
        builder.append_data(&mut header, &entry.path, entry.data.as_slice()).unwrap();
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn tgz(entries: &[Entry]) -> Vec<u8> {
    gzip(&tar_of(entries))
}

fn chart_yaml(name: &str, version: &str) -> String {
    format!("apiVersion: v2\nname: {name}\nversion: {version}\ndescription: chart {name}\n")
}

/// The files of a minimal valid chart in `folder/`.
fn chart_files(folder: &str, name: &str, version: &str) -> Vec<Entry> {
    vec![
        file(&format!("{folder}/Chart.yaml"), chart_yaml(name, version)),
        file(&format!("{folder}/values.yaml"), "replicaCount: 1\n"),
        file(&format!("{folder}/templates/cm.yaml"), "kind: ConfigMap\ndata:\n  n: {{ .Values.replicaCount }}\n"),
    ]
}

/// A valid chart `demo-1.0.0` plus `extra` entries.
fn demo_with(extra: Vec<Entry>) -> Vec<u8> {
    let mut entries = chart_files("demo", "demo", "1.0.0");
    entries.extend(extra);
    tgz(&entries)
}

/// A valid chart whose Chart.yaml is `chart_yaml` and values.yaml is `values`.
fn demo_yaml(chart_yaml: &str, values: &str) -> Vec<u8> {
    tgz(&[file("demo/Chart.yaml", chart_yaml), file("demo/values.yaml", values)])
}

fn small_limits() -> Limits {
    Limits {
        max_decompressed_bytes: 64 * 1024,
        max_file_bytes: 1024 * 1024,
        max_entries: 100,
        max_depth: 2,
        ..Limits::default()
    }
}

/// A highly compressible tgz: chart `demo` plus `files` files of `size` zero bytes each.
/// Streamed through the encoder so the test never holds the expanded bytes.
fn zero_bomb(files: usize, size: usize) -> Vec<u8> {
    let encoder = GzEncoder::new(Vec::new(), Compression::best());
    let mut builder = tar::Builder::new(encoder);
    for entry in chart_files("demo", "demo", "1.0.0") {
        append(&mut builder, &entry);
    }
    for i in 0..files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(size as u64);
        builder
            .append_data(&mut header, format!("demo/files/zeros-{i}"), std::io::repeat(0).take(size as u64))
            .unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

// ---- asserting ----

/// Loads and expects `RegistryError::Invalid` whose message contains `needle`.
#[track_caller]
fn refused(case: &str, archive: &[u8], limits: &Limits, needle: &str) -> String {
    match load(archive, limits) {
        Err(RegistryError::Invalid(message)) => {
            assert!(message.contains(needle), "{case}: message {message:?} does not mention {needle:?}");
            message
        }
        Err(other) => panic!("{case}: expected Invalid, got {other:?}"),
        Ok(chart) => panic!("{case}: loaded {:?}", chart.metadata),
    }
}

#[track_caller]
fn refused_default(case: &str, archive: &[u8], needle: &str) -> String {
    refused(case, archive, &Limits::default(), needle)
}

#[track_caller]
fn loads(case: &str, archive: &[u8]) -> Chart {
    load(archive, &Limits::default()).unwrap_or_else(|e| panic!("{case}: {e:?}"))
}

/// Every entry of a tgz but directories: path → (entry type, bytes).
fn contents(archive: &[u8]) -> BTreeMap<String, (EntryType, Vec<u8>)> {
    let mut tar = tar::Archive::new(GzDecoder::new(archive));
    let mut files = BTreeMap::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let kind = entry.header().entry_type();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if kind != EntryType::Directory {
            files.insert(path, (kind, data));
        }
    }
    files
}

// ---- size bounds ----

#[test]
fn gzip_bomb_over_a_small_budget_is_refused() {
    // 1 MiB of zeros in one file: each file is allowed, the expansion is not.
    let bomb = zero_bomb(1, 1024 * 1024);
    assert!(bomb.len() < 16 * 1024, "the bomb should be small");
    refused("one big file", &bomb, &small_limits(), "decompressed size exceeds");

    // The budget is for the whole archive: 40 files of 2 KiB each are each tiny.
    let spread = zero_bomb(40, 2048);
    refused("many files", &spread, &small_limits(), "decompressed size exceeds");

    // ... and for archives nested in charts/: two 40 KiB subcharts share the 64 KiB.
    let sub = |name: &str| {
        let mut entries = chart_files(name, name, "1.0.0");
        entries.push(file(&format!("{name}/files/pad"), vec![0u8; 40 * 1024]));
        tgz(&entries)
    };
    let nested = demo_with(vec![file("demo/charts/a-1.0.0.tgz", sub("a")), file("demo/charts/b-1.0.0.tgz", sub("b"))]);
    refused("nested archives", &nested, &small_limits(), "decompressed size exceeds");
}

#[test]
fn gzip_bomb_over_the_default_budget_fails_fast() {
    // 24 files of 5 MiB (each at the per-file limit) expand to 120 MiB > 100 MiB.
    let bomb = zero_bomb(24, 5 * 1024 * 1024);
    assert!(bomb.len() < 1024 * 1024, "bomb is {} bytes", bomb.len());
    let started = Instant::now();
    refused_default("default budget", &bomb, "decompressed size exceeds");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[test]
fn file_over_max_file_bytes_is_refused() {
    let limits = Limits { max_file_bytes: 1000, ..Limits::default() };
    let big = demo_with(vec![file("demo/files/big", vec![b'x'; 1001])]);
    refused("1001 bytes", &big, &limits, "larger than 1000 bytes");
    // Exactly at the limit is fine.
    let at_limit = demo_with(vec![file("demo/files/big", vec![b'x'; 1000])]);
    load(&at_limit, &limits).unwrap();

    // With the default limits: one 6 MiB file of zeros (compresses to a few KiB).
    let big = zero_bomb(1, 6 * 1024 * 1024);
    refused_default("6 MiB file", &big, "larger than 5242880 bytes");
}

#[test]
fn too_many_entries_are_refused() {
    let limits = Limits { max_entries: 10, ..Limits::default() };
    let mut entries = chart_files("demo", "demo", "1.0.0");
    for i in 0..8 {
        entries.push(file(&format!("demo/templates/t{i}.yaml"), "x: 1\n"));
    }
    refused("11 files", &tgz(&entries), &limits, "more than 10 entries");

    // Directories are entries too.
    let mut entries = chart_files("demo", "demo", "1.0.0");
    for i in 0..8 {
        entries.push(dir(&format!("demo/d{i}/")));
    }
    refused("11 entries", &tgz(&entries), &limits, "more than 10 entries");

    // The count spans nested archives: 4 + 8 entries.
    let mut sub = chart_files("sub", "sub", "1.0.0");
    for i in 0..5 {
        sub.push(file(&format!("sub/templates/t{i}.yaml"), "x: 1\n"));
    }
    let nested = demo_with(vec![file("demo/charts/sub-1.0.0.tgz", tgz(&sub))]);
    refused("nested", &nested, &limits, "more than 10 entries");

    // With the default limits: 20 001 empty files.
    let mut entries = chart_files("demo", "demo", "1.0.0");
    for i in 0..20_000 {
        entries.push(file(&format!("demo/f/{i}"), ""));
    }
    refused_default("20 003 entries", &tgz(&entries), "more than 20000 entries");
}

// ---- subchart nesting ----

/// A tgz chart `l{level}` holding its subchart `l{level+1}` as charts/*.tgz, `levels`
/// charts in all.
fn nested_archives(level: usize, levels: usize) -> Vec<u8> {
    let name = format!("l{level}");
    let mut entries = chart_files(&name, &name, "1.0.0");
    if level + 1 < levels {
        entries.push(file(&format!("{name}/charts/l{}-1.0.0.tgz", level + 1), nested_archives(level + 1, levels)));
    }
    tgz(&entries)
}

/// One tgz with `levels` charts nested as folders: l0/charts/l1/charts/l2/...
fn nested_folders(levels: usize) -> Vec<u8> {
    let mut entries = Vec::new();
    let mut folder = "l0".to_string();
    for level in 0..levels {
        let name = format!("l{level}");
        entries.push(file(&format!("{folder}/Chart.yaml"), chart_yaml(&name, "1.0.0")));
        folder = format!("{folder}/charts/l{}", level + 1);
    }
    tgz(&entries)
}

fn depth(chart: &Chart) -> usize {
    chart.subcharts.iter().map(|s| 1 + depth(s)).max().unwrap_or(0)
}

#[test]
fn subcharts_nested_as_archives_deeper_than_max_depth_are_refused() {
    // max_depth 2: the top chart and two levels of subcharts.
    let ok = load(&nested_archives(0, 3), &small_limits()).unwrap();
    assert_eq!(depth(&ok), 2);
    refused("3 levels", &nested_archives(0, 4), &small_limits(), "nest deeper than 2");

    // The default limit is 16.
    assert_eq!(depth(&loads("16 levels", &nested_archives(0, 17))), 16);
    refused_default("17 levels", &nested_archives(0, 18), "nest deeper than 16");
}

#[test]
fn subcharts_nested_as_folders_deeper_than_max_depth_are_refused() {
    // The same bound must hold when the subcharts are folders in one archive, or
    // charts/a/charts/a/... recurses without limit.
    let ok = load(&nested_folders(3), &small_limits()).unwrap();
    assert_eq!(depth(&ok), 2);
    refused("3 levels", &nested_folders(4), &small_limits(), "nest deeper than 2");
    refused_default("17 levels", &nested_folders(18), "nest deeper than 16");
}

#[test]
fn deeply_nested_subchart_folders_do_not_overflow_the_stack() {
    // 1 000 folder levels are a ~70 KiB upload; refusing them must not need a stack
    // frame per level first.
    isolated("deeply_nested_subchart_folders_do_not_overflow_the_stack", || {
        refused_default("1000 levels", &nested_folders(1000), "nest deeper than 16");
    });
}

// ---- entry kinds and paths ----

#[test]
fn links_and_special_entries_are_refused() {
    let cases = [
        link("demo/templates/passwd", EntryType::Symlink, "/etc/passwd"),
        link("demo/values.yaml", EntryType::Symlink, "../../secret"),
        link("demo/templates/hard", EntryType::Link, "/etc/shadow"),
        link("demo/templates/hard2", EntryType::Link, "demo/Chart.yaml"),
    ];
    for entry in cases {
        let case = format!("{:?} {}", entry.kind, entry.path);
        refused_default(&case, &demo_with(vec![entry]), "is a link");
    }
    for kind in [EntryType::Char, EntryType::Block, EntryType::Fifo] {
        let archive = demo_with(vec![special("demo/templates/dev", kind)]);
        refused_default(&format!("{kind:?}"), &archive, "charts may only hold regular files");
    }
}

#[test]
fn absolute_paths_are_refused() {
    for path in ["/etc/passwd", "/demo/templates/x.yaml", "//x", "\\etc\\passwd"] {
        refused_default(path, &demo_with(vec![file(path, "x")]), "absolute path");
    }
    // A chart made only of absolute paths.
    let mut entries = chart_files("/demo", "demo", "1.0.0");
    entries.truncate(1);
    refused_default("absolute chart", &tgz(&entries), "absolute path");
}

#[test]
fn parent_directory_paths_are_refused_wherever_they_appear() {
    let paths = [
        "..",
        "../x",
        "../demo/Chart.yaml",
        "demo/..",
        "demo/../../x",
        "demo/templates/../../../etc/passwd",
        "demo/templates/..",
        "./../x",
        "demo/./../x",
        "..\\x",
        "demo\\..\\..\\x",
        "demo/templates\\..\\..\\x",
    ];
    for path in paths {
        refused_default(path, &demo_with(vec![file(path, "x: 1\n")]), "references a parent directory");
    }
}

#[test]
fn windows_drive_letters_are_refused() {
    // Helm refuses a drive path inside the chart folder (after its first segment).
    let paths = ["demo/C:/Windows/evil.yaml", "demo/c:evil.yaml", "demo\\C:\\Windows\\evil.yaml", "demo/Z:"];
    for path in paths {
        refused_default(path, &demo_with(vec![file(path, "x: 1\n")]), "has a drive letter");
    }
}

#[test]
fn windows_absolute_paths_at_the_archive_root_are_refused() {
    // `C:\demo\Chart.yaml` is as absolute on Windows as `/demo/Chart.yaml` is on Unix,
    // and the module promises absolute paths are refused outright.
    let archive = tgz(&[file("C:\\Chart.yaml", chart_yaml("demo", "1.0.0")), file("C:\\values.yaml", "a: 1\n")]);
    refused_default("C:\\Chart.yaml", &archive, "drive letter");
}

#[test]
fn backslash_separators_are_normalised() {
    // Helm turns `\` into `/` before anything else; so does chartyard, so a chart packed
    // on Windows loads, and `\` can not be used to sneak `..` or `/` past the checks
    // (see the two tests above).
    let archive =
        tgz(&[file("demo\\Chart.yaml", chart_yaml("demo", "1.0.0")), file("demo\\values.yaml", "fromWindows: true\n")]);
    let chart = loads("backslashes", &archive);
    assert_eq!(chart.values["fromWindows"], true);
}

// ---- layout ----

#[test]
fn chart_yaml_at_the_archive_root_is_refused() {
    let archive = tgz(&[file("Chart.yaml", chart_yaml("demo", "1.0.0")), file("values.yaml", "a: 1\n")]);
    refused_default("root Chart.yaml", &archive, "not inside a chart folder");
}

#[test]
fn other_files_at_the_archive_root_are_refused() {
    // Helm refuses any file outside the chart folder ("chart illegally contains content
    // outside the base directory"), so a registry that stores such an archive serves a
    // chart `helm install` can not load.
    for path in ["README.md", "values.yaml", "evil.sh"] {
        let archive = demo_with(vec![file(path, "x: 1\n")]);
        refused_default(path, &archive, path);
    }
}

#[test]
fn missing_chart_yaml_is_refused() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("values only", tgz(&[file("demo/values.yaml", "a: 1\n")])),
        ("Chart.yaml one level too deep", tgz(&[file("demo/sub/Chart.yaml", chart_yaml("demo", "1.0.0"))])),
        ("chart.yaml in lower case", tgz(&[file("demo/chart.yaml", chart_yaml("demo", "1.0.0"))])),
        ("only directories", tgz(&[dir("demo/"), dir("demo/templates/"), dir("demo/charts/")])),
        ("empty tar", gzip(&tar_of(&[]))),
    ];
    for (case, archive) in cases {
        refused_default(case, &archive, "Chart.yaml file is missing");
    }
}

#[test]
fn subchart_without_chart_yaml_is_refused() {
    let archive = demo_with(vec![file("demo/charts/db/values.yaml", "a: 1\n")]);
    let message = refused_default("folder", &archive, "Chart.yaml file is missing");
    assert!(message.contains("charts/db"), "{message}");
}

// ---- not a gzipped tar ----

#[test]
fn bytes_that_are_not_a_gzipped_tar_are_refused() {
    let plain_tar = tar_of(&chart_files("demo", "demo", "1.0.0"));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text", b"hello, this is not a chart".to_vec()),
        ("uncompressed tar", plain_tar),
        ("zip", b"PK\x03\x04\x14\x00\x00\x00\x08\x00".to_vec()),
        ("png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()),
        ("gzip of text", gzip(b"just some text, not a tar")),
        ("gzip magic only", b"\x1f\x8b".to_vec()),
        ("one zero byte", vec![0]),
    ];
    for (case, archive) in cases {
        refused_default(case, &archive, "not a gzipped tar archive");
    }
}

#[test]
fn empty_input_is_refused() {
    refused_default("empty", b"", "not a gzipped tar archive");
}

#[test]
fn truncated_gzip_is_refused() {
    let archive =
        demo_with(vec![file("demo/files/data", (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>())]);
    for cut in [5, 10, 30, archive.len() / 3, archive.len() / 2, archive.len() - 100] {
        let message = match load(&archive[..cut], &Limits::default()) {
            Err(RegistryError::Invalid(message)) => message,
            other => panic!("cut at {cut}: expected Invalid, got {other:?}"),
        };
        assert!(
            message.contains("not a gzipped tar archive") || message.contains("reading "),
            "cut at {cut}: {message}"
        );
        assert!(
            message.to_lowercase().contains("eof")
                || message.contains("end of file")
                || message.contains("unexpected")
                || message.contains("incomplete")
                || message.contains("failed to"),
            "cut at {cut}: the message should say the data ended: {message}"
        );
    }
}

#[test]
fn gzip_with_a_missing_or_corrupt_trailer_is_refused() {
    // The gzip trailer (CRC-32 and size) is what proves the stream is complete and
    // intact; an archive without it is truncated, one with a wrong CRC is corrupt, and
    // `gzip -t` / `tar xzf` refuse both.
    let archive = demo_with(Vec::new());
    refused_default("without trailer", &archive[..archive.len() - 8], "not a gzipped tar archive");
    let mut corrupt = archive.clone();
    let n = corrupt.len();
    corrupt[n - 8] ^= 0xff; // CRC-32
    refused_default("bad CRC", &corrupt, "not a gzipped tar archive");
}

#[test]
fn concatenated_gzip_members_are_read_as_helm_reads_them() {
    // Go's gzip reader (and so Helm) reads every member of a multi-member gzip file. If
    // the registry reads only the first, it validates and records one chart while Helm
    // installs another: here member 2 replaces Chart.yaml.
    let first = tar_of(&chart_files("demo", "first", "1.0.0"));
    let first = &first[..first.len() - 1024]; // drop the end-of-archive blocks
    let second = tar_of(&[file("demo/Chart.yaml", chart_yaml("second", "6.6.6"))]);
    let mut archive = gzip(first);
    archive.extend(gzip(&second));
    match load(&archive, &Limits::default()) {
        Err(RegistryError::Invalid(_)) => {}
        Err(other) => panic!("expected Invalid, got {other:?}"),
        Ok(chart) => assert_eq!(
            (chart.metadata.name.as_str(), chart.metadata.version.as_str()),
            ("second", "6.6.6"),
            "loaded a different chart than Helm would"
        ),
    }
}

// ---- Chart.yaml and values.yaml content ----

#[test]
fn invalid_chart_yaml_is_refused() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unclosed flow", b"apiVersion: v2\nname: [demo\nversion: 1.0.0\n".to_vec()),
        ("tab indentation", b"apiVersion: v2\nname: demo\n\tversion: 1.0.0\n".to_vec()),
        ("a list", b"- apiVersion: v2\n- name: demo\n".to_vec()),
        ("a scalar", b"just text\n".to_vec()),
        ("name is a map", b"apiVersion: v2\nname: {a: 1}\nversion: 1.0.0\n".to_vec()),
        ("two documents", b"apiVersion: v2\nname: demo\nversion: 1.0.0\n---\nname: other\n".to_vec()),
        ("not UTF-8", b"apiVersion: v2\nname: d\xffmo\nversion: 1.0.0\n".to_vec()),
    ];
    for (case, yaml) in cases {
        let archive = tgz(&[file("demo/Chart.yaml", yaml)]);
        refused_default(case, &archive, "Chart.yaml is not valid YAML");
    }
    // An empty Chart.yaml has no name.
    let archive = tgz(&[file("demo/Chart.yaml", "")]);
    refused_default("empty", &archive, "Chart.yaml: name is required");
}

/// A "billion laughs" document: 9 levels of 10 aliases each, 10^9 nodes expanded.
fn billion_laughs(key: &str) -> String {
    let mut yaml =
        String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..=9 {
        let prev = format!("*a{}", i - 1);
        yaml.push_str(&format!("a{i}: &a{i} [{}]\n", [prev.as_str(); 10].join(",")));
    }
    yaml.push_str(&format!("{key}: *a9\n"));
    yaml
}

#[test]
fn yaml_alias_bombs_are_refused_fast() {
    let started = Instant::now();
    let archive = demo_yaml(&chart_yaml("demo", "1.0.0"), &billion_laughs("boom"));
    refused_default("values.yaml", &archive, "values.yaml is not valid YAML");

    // The same bomb in Chart.yaml: unknown keys are skipped, but not for free.
    let chart = format!("{}{}", chart_yaml("demo", "1.0.0"), billion_laughs("x-bomb"));
    let archive = tgz(&[file("demo/Chart.yaml", chart)]);
    refused_default("Chart.yaml", &archive, "Chart.yaml is not valid YAML");

    // And in a v1 chart's requirements.yaml.
    let archive = tgz(&[
        file("demo/Chart.yaml", "apiVersion: v1\nname: demo\nversion: 1.0.0\n"),
        file("demo/requirements.yaml", billion_laughs("dependencies")),
    ]);
    refused_default("requirements.yaml", &archive, "requirements.yaml is not valid YAML");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

/// Set in the child process [`isolated`] starts.
const CHILD: &str = "CHARTYARD_HOSTILE_ARCHIVES_CHILD";

/// Runs `body` in a child process (this test binary, re-run with only `test`), on a
/// 2 MiB stack: the stack of a tokio worker thread, where the server loads archives.
/// A stack overflow aborts the whole process, so only this way does it fail one test
/// instead of taking every other test in the binary down with it.
fn isolated(test: &str, body: impl FnOnce() + Send + 'static) {
    if std::env::var_os(CHILD).is_some() {
        let worker = std::thread::Builder::new().stack_size(2 * 1024 * 1024);
        worker.spawn(body).unwrap().join().unwrap();
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{test} failed in its child process ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `depth` levels of block mappings: `k:\n k:\n  k: ...`.
fn nested_block_maps(depth: usize) -> String {
    let mut yaml = String::new();
    for level in 0..depth {
        yaml.push_str(&" ".repeat(level));
        yaml.push_str("k:\n");
    }
    yaml.push_str(&" ".repeat(depth));
    yaml.push_str("leaf\n");
    yaml
}

#[test]
fn deeply_nested_yaml_is_refused() {
    isolated("deeply_nested_yaml_is_refused", || {
        let started = Instant::now();
        let depth = 100_000;
        let flow = format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
        let archive = demo_yaml(&chart_yaml("demo", "1.0.0"), &flow);
        eprintln!("case: flow sequences");
        refused_default("flow sequences", &archive, "values.yaml is not valid YAML");

        let flow_maps = format!("a: {}1{}\n", "{a: ".repeat(depth), "}".repeat(depth));
        let archive = demo_yaml(&chart_yaml("demo", "1.0.0"), &flow_maps);
        eprintln!("case: flow maps");
        refused_default("flow maps", &archive, "values.yaml is not valid YAML");

        let archive = demo_yaml(&chart_yaml("demo", "1.0.0"), &nested_block_maps(2000));
        eprintln!("case: block maps");
        refused_default("block maps", &archive, "values.yaml is not valid YAML");

        // Deep nesting in Chart.yaml too.
        let chart = format!("{}sources: {}{}\n", chart_yaml("demo", "1.0.0"), "[".repeat(depth), "]".repeat(depth));
        let archive = tgz(&[file("demo/Chart.yaml", chart)]);
        eprintln!("case: Chart.yaml");
        refused_default("Chart.yaml", &archive, "Chart.yaml is not valid YAML");
        assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    });
}

#[test]
fn yaml_nested_within_the_depth_budget_does_not_overflow_the_stack() {
    // The YAML budget allows 100 levels; every depth up to it must be answered (loaded
    // or refused), not crash the thread that parses it.
    isolated("yaml_nested_within_the_depth_budget_does_not_overflow_the_stack", || {
        for depth in [30, 60, 90, 99] {
            eprintln!("loading values.yaml nested {depth} levels deep");
            let archive = demo_yaml(&chart_yaml("demo", "1.0.0"), &nested_block_maps(depth));
            match load(&archive, &Limits::default()) {
                Ok(_) | Err(RegistryError::Invalid(_)) => {}
                Err(other) => panic!("depth {depth}: {other:?}"),
            }
        }
    });
}

#[test]
fn values_yaml_that_is_not_a_table_is_refused() {
    for (case, values) in
        [("a list", "- a\n- b\n"), ("a string", "hello\n"), ("a number", "42\n"), ("a bool", "true\n")]
    {
        let archive = demo_yaml(&chart_yaml("demo", "1.0.0"), values);
        refused_default(case, &archive, "values.yaml is not a table");
    }
    let archive = demo_yaml(&chart_yaml("demo", "1.0.0"), "a: [unclosed\n");
    refused_default("invalid", &archive, "values.yaml is not valid YAML");
}

#[test]
fn missing_name_or_version_is_refused() {
    let cases = [
        ("no name", "apiVersion: v2\nversion: 1.0.0\n", "name is required"),
        ("empty name", "apiVersion: v2\nname: \"\"\nversion: 1.0.0\n", "name is required"),
        ("no version", "apiVersion: v2\nname: demo\n", "version is required"),
        ("empty version", "apiVersion: v2\nname: demo\nversion: \"\"\n", "version is required"),
    ];
    for (case, yaml, needle) in cases {
        refused_default(case, &tgz(&[file("demo/Chart.yaml", yaml)]), needle);
    }
}

#[test]
fn non_semver_versions_are_refused() {
    let versions = ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "latest", "1", "1.0.0.0", "1.0.0 ", "1.0.0+", "-1.0.0"];
    for version in versions {
        let yaml = format!("apiVersion: v2\nname: demo\nversion: {version:?}\n");
        refused_default(version, &tgz(&[file("demo/Chart.yaml", yaml)]), "is not SemVer 2");
    }
}

#[test]
fn bad_chart_names_are_refused() {
    let long = "a".repeat(254);
    let names = ["../x", "a/b", "_x", "-x", "a.b", "a b", "ä", ".", "..", "x\\y", long.as_str()];
    for name in names {
        let yaml = format!("apiVersion: v2\nname: {name:?}\nversion: 1.0.0\n");
        refused_default(name, &tgz(&[file("demo/Chart.yaml", yaml)]), "must match");
    }
}

#[test]
fn other_metadata_rules_are_enforced() {
    let cases = [
        ("apiVersion v3", "apiVersion: v3\nname: demo\nversion: 1.0.0\n", "is not v1 or v2"),
        ("apiVersion V2", "apiVersion: V2\nname: demo\nversion: 1.0.0\n", "is not v1 or v2"),
        ("unknown type", "apiVersion: v2\nname: demo\nversion: 1.0.0\ntype: weird\n", "is not application or library"),
        ("type in v1", "apiVersion: v1\nname: demo\nversion: 1.0.0\ntype: library\n", "only allowed in apiVersion v2"),
        (
            "dependency without name",
            "apiVersion: v2\nname: demo\nversion: 1.0.0\ndependencies:\n- version: 1.0.0\n",
            "a dependency has no name",
        ),
    ];
    for (case, yaml, needle) in cases {
        refused_default(case, &tgz(&[file("demo/Chart.yaml", yaml)]), needle);
    }
}

#[test]
fn hostile_subcharts_are_refused_with_their_path() {
    // What is refused at the top is refused inside charts/ too, and the message says where.
    let bad_sub = tgz(&[
        file("db/Chart.yaml", chart_yaml("db", "1.0.0")),
        link("db/templates/x", EntryType::Symlink, "/etc/passwd"),
    ]);
    let message = refused_default(
        "link in nested archive",
        &demo_with(vec![file("demo/charts/db-1.0.0.tgz", bad_sub)]),
        "is a link",
    );
    assert!(message.contains("charts/db-1.0.0.tgz"), "{message}");

    let message = refused_default(
        "bad version in folder subchart",
        &demo_with(vec![file("demo/charts/db/Chart.yaml", chart_yaml("db", "1.0"))]),
        "is not SemVer 2",
    );
    assert!(message.contains("charts/db"), "{message}");

    refused_default(
        "not a tgz in charts/",
        &demo_with(vec![file("demo/charts/db-1.0.0.tgz", "not gzip")]),
        "not a gzipped tar archive",
    );
}

// ---- what must load ----

#[test]
fn seed_layout_with_dot_folder_loads() {
    // The seed's test charts were packed from inside the chart folder: ./Chart.yaml.
    let archive = tgz(&[
        dir("./"),
        file("./Chart.yaml", "apiVersion: v1\ndescription: A chart for e2e testing\nname: test\nversion: 1.0.0\n"),
        dir("./templates/"),
        file("./values.yaml", "replicaCount: 3\ncpu:\n  requests: 1000m\n"),
        file("./templates/deployment.yaml", "kind: Deployment\n"),
    ]);
    let chart = loads("seed layout", &archive);
    assert_eq!(chart.metadata.name, "test");
    assert_eq!(chart.metadata.version, "1.0.0");
    assert_eq!(chart.metadata.api_version, "v1");
    assert_eq!(serde_json::Value::Object(chart.values), json!({"replicaCount": 3, "cpu": {"requests": "1000m"}}));
    assert!(chart.subcharts.is_empty());
}

#[test]
fn utf8_byte_order_marks_are_ignored() {
    // Helm strips a UTF-8 BOM from every file; charts saved by Windows editors have one.
    let archive = demo_yaml(&format!("\u{feff}{}", chart_yaml("demo", "1.0.0")), "\u{feff}bom: true\n");
    let chart = loads("BOM", &archive);
    assert_eq!(chart.metadata.name, "demo");
    assert_eq!(chart.values["bom"], true);
}

#[test]
fn chart_without_api_version_is_v1() {
    let chart = loads("no apiVersion", &tgz(&[file("demo/Chart.yaml", "name: demo\nversion: 1.0.0\n")]));
    assert_eq!(chart.metadata.api_version, "v1");
    assert!(chart.values.is_empty(), "no values.yaml means no values");
}

#[test]
fn subcharts_load_recursively_from_folders_and_archives() {
    // cache-1.0.0.tgz itself holds a folder subchart, so recursion goes through both.
    let cache = tgz(&[
        file("cache/Chart.yaml", chart_yaml("cache", "2.0.0")),
        file("cache/values.yaml", "size: 1Gi\n"),
        file("cache/charts/metrics/Chart.yaml", chart_yaml("metrics", "0.1.0")),
    ]);
    let archive = demo_with(vec![
        file("demo/charts/db/Chart.yaml", chart_yaml("db", "3.0.0-rc.1")),
        file("demo/charts/db/values.yaml", "port: 5432\n"),
        file("demo/charts/db/templates/svc.yaml", "kind: Service\n"),
        file("demo/charts/cache-2.0.0.tgz", cache),
        // Helm ignores these: hidden and underscore folders, and provenance files.
        file("demo/charts/_helpers/Chart.yaml", chart_yaml("ignored", "1.0.0")),
        file("demo/charts/.git/Chart.yaml", chart_yaml("ignored", "1.0.0")),
        file("demo/charts/cache-2.0.0.tgz.prov", "a signature"),
    ]);
    let chart = loads("subcharts", &archive);
    let names: Vec<&str> = chart.subcharts.iter().map(|s| s.metadata.name.as_str()).collect();
    assert_eq!(names, ["cache", "db"], "sorted by folder or file name");
    let (cache, db) = (&chart.subcharts[0], &chart.subcharts[1]);
    assert_eq!(cache.metadata.version, "2.0.0");
    assert_eq!(cache.values["size"], "1Gi");
    assert_eq!(cache.subcharts.len(), 1);
    assert_eq!(cache.subcharts[0].metadata.name, "metrics");
    assert_eq!(db.metadata.version, "3.0.0-rc.1");
    assert_eq!(db.values["port"], 5432);

    let tree = serde_json::to_value(chart.metadata_tree()).unwrap();
    assert_eq!(tree["name"], "demo");
    assert_eq!(tree["dependencies"][0]["name"], "cache");
    assert_eq!(tree["dependencies"][0]["dependencies"][0]["name"], "metrics");
    assert_eq!(tree["dependencies"][0]["dependencies"][0]["version"], "0.1.0");
    assert_eq!(tree["dependencies"][1]["name"], "db");
    assert_eq!(tree["dependencies"][1]["version"], "3.0.0-rc.1");
    assert_eq!(tree["dependencies"].as_array().unwrap().len(), 2);
}

#[test]
fn v1_requirements_fill_dependencies() {
    let archive = tgz(&[
        file("demo/Chart.yaml", "apiVersion: v1\nname: demo\nversion: 1.0.0\n"),
        file(
            "demo/requirements.yaml",
            "dependencies:\n- name: mariadb\n  version: 7.x.x\n  repository: https://charts.example.com\n  condition: mariadb.enabled\n- name: redis\n  version: ~10.0.0\n  repository: \"@stable\"\n  alias: cache\n",
        ),
    ]);
    let chart = loads("v1", &archive);
    let deps = &chart.metadata.dependencies;
    assert_eq!(deps.len(), 2);
    assert_eq!((deps[0].name.as_str(), deps[0].version.as_str()), ("mariadb", "7.x.x"));
    assert_eq!(deps[0].repository, "https://charts.example.com");
    assert_eq!(deps[0].condition, "mariadb.enabled");
    assert_eq!((deps[1].name.as_str(), deps[1].alias.as_str()), ("redis", "cache"));

    // An empty requirements.yaml means no dependencies; a broken one is refused.
    let empty = tgz(&[
        file("demo/Chart.yaml", "apiVersion: v1\nname: demo\nversion: 1.0.0\n"),
        file("demo/requirements.yaml", ""),
    ]);
    assert!(loads("empty requirements", &empty).metadata.dependencies.is_empty());
    let broken = tgz(&[
        file("demo/Chart.yaml", "apiVersion: v1\nname: demo\nversion: 1.0.0\n"),
        file("demo/requirements.yaml", "dependencies:\n- version: 1.0.0\n"),
    ]);
    refused_default("dependency without name", &broken, "a dependency has no name");
}

#[test]
fn prerelease_and_build_versions_load() {
    for version in ["1.2.3-rc.1+build.5", "0.0.1-alpha", "1.0.0+20240101", "10.20.30-a.b-c.1"] {
        let chart = loads(version, &tgz(&chart_files("demo", "demo", version)));
        assert_eq!(chart.metadata.version, version);
    }
}

// ---- rewrite ----

#[test]
fn rewrite_replaces_values_and_keeps_every_other_file() {
    // Seed layout in, `helm package` layout (test/...) out.
    let original = tgz(&[
        dir("./"),
        file("./Chart.yaml", "apiVersion: v1\nname: test\nversion: 1.0.0\n"),
        file("./values.yaml", "replicaCount: 3\n"),
        dir("./templates/"),
        file("./templates/deployment.yaml", "kind: Deployment\n{{ .Values.replicaCount }}\n"),
        file("./charts/db/Chart.yaml", chart_yaml("db", "1.0.0")),
        file("./charts/cache-1.0.0.tgz", tgz(&chart_files("cache", "cache", "1.0.0"))),
        file("./files/binary", (0..=255u8).collect::<Vec<_>>()),
    ]);
    let new_values = b"replicaCount: 4\nnew: true\n".to_vec();
    let rewritten = rewrite(&original, "test", &[("values.yaml", new_values.clone())], &Limits::default()).unwrap();

    let before = contents(&original);
    let after = contents(&rewritten);
    for path in after.keys() {
        assert!(path.starts_with("test/"), "{path} is outside test/");
    }
    let expected: BTreeMap<String, Vec<u8>> = before
        .into_iter()
        .map(|(path, (_, data))| {
            let path = path.strip_prefix("./").unwrap().to_string();
            let data = if path == "values.yaml" { new_values.clone() } else { data };
            (format!("test/{path}"), data)
        })
        .collect();
    let actual: BTreeMap<String, Vec<u8>> = after.into_iter().map(|(p, (_, d))| (p, d)).collect();
    assert_eq!(actual, expected, "only values.yaml changed, byte for byte");

    let chart = loads("rewritten", &rewritten);
    assert_eq!(serde_json::Value::Object(chart.values), json!({"replicaCount": 4, "new": true}));
    assert_eq!(chart.metadata.name, "test");
    assert_eq!(chart.subcharts.len(), 2);
}

#[test]
fn rewrite_adds_a_missing_file() {
    let original = tgz(&[file("demo/Chart.yaml", chart_yaml("demo", "1.0.0"))]);
    let rewritten = rewrite(&original, "demo", &[("values.yaml", b"a: 1\n".to_vec())], &Limits::default()).unwrap();
    let files = contents(&rewritten);
    assert_eq!(files.keys().collect::<Vec<_>>(), ["demo/Chart.yaml", "demo/values.yaml"]);
    assert_eq!(loads("added", &rewritten).values["a"], 1);
}

#[test]
fn rewrite_keeps_every_file_that_load_accepts() {
    // `load` takes contiguous-file entries (type '7') as regular files; a rewrite that
    // silently drops them loses templates when only values.yaml was meant to change.
    let mut contiguous = file("demo/templates/contiguous.yaml", "kind: Secret\n");
    contiguous.kind = EntryType::Continuous;
    let original = demo_with(vec![contiguous]);
    loads("original", &original);
    let rewritten = rewrite(&original, "demo", &[("values.yaml", b"a: 2\n".to_vec())], &Limits::default()).unwrap();
    let files = contents(&rewritten);
    assert_eq!(
        files.get("demo/templates/contiguous.yaml").map(|(_, d)| d.as_slice()),
        Some(&b"kind: Secret\n"[..]),
        "files: {:?}",
        files.keys().collect::<Vec<_>>()
    );
}

#[test]
fn rewrite_changes_every_copy_of_a_duplicated_file() {
    // When an archive holds values.yaml twice, load (like Helm) takes the last one; the
    // rewrite must change what load will read, not just the first copy.
    let original = demo_with(vec![file("demo/values.yaml", "copy: second\n")]);
    assert_eq!(loads("original", &original).values["copy"], "second");
    let rewritten =
        rewrite(&original, "demo", &[("values.yaml", b"copy: new\n".to_vec())], &Limits::default()).unwrap();
    assert_eq!(loads("rewritten", &rewritten).values["copy"], "new");
}

#[test]
fn rewrite_moves_long_ustar_paths_into_the_new_folder() {
    // `helm package` (Go's archive/tar) writes paths over 100 bytes in USTAR form, split
    // into the header's prefix and name fields. Rewriting under a shorter folder must not
    // keep the old prefix in front of the new path.
    let folder = "a-folder-name-that-is-long-enough-to-push-paths-over-one-hundred-bytes-xxxxxxxxxxxxxx";
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in [
        (format!("{folder}/Chart.yaml"), chart_yaml("demo", "1.0.0")),
        (format!("{folder}/values.yaml"), "a: 1\n".to_string()),
        (format!("{folder}/templates/configmap.yaml"), "kind: ConfigMap\n".to_string()),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_path(&path).unwrap();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, data.as_bytes()).unwrap();
    }
    let original = gzip(&builder.into_inner().unwrap());
    assert_eq!(loads("original", &original).values["a"], 1);

    let rewritten = rewrite(&original, "demo", &[("values.yaml", b"a: 2\n".to_vec())], &Limits::default()).unwrap();
    let files = contents(&rewritten);
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["demo/Chart.yaml", "demo/templates/configmap.yaml", "demo/values.yaml"]
    );
    assert_eq!(loads("rewritten", &rewritten).values["a"], 2);
}

#[test]
fn rewrite_refuses_hostile_archives() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("parent path", demo_with(vec![file("demo/../x", "x")]), "parent directory"),
        ("absolute path", demo_with(vec![file("/etc/x", "x")]), "absolute path"),
        ("root Chart.yaml", tgz(&[file("Chart.yaml", chart_yaml("demo", "1.0.0"))]), "not inside a chart folder"),
        ("not gzip", b"nope".to_vec(), ""),
        ("bomb", zero_bomb(1, 1024 * 1024), "decompressed size exceeds"),
    ];
    for (case, archive, needle) in cases {
        match rewrite(&archive, "demo", &[("values.yaml", b"a: 1\n".to_vec())], &small_limits()) {
            Err(RegistryError::Invalid(message)) => {
                assert!(message.contains(needle), "{case}: {message}")
            }
            other => panic!("{case}: expected Invalid, got {:?}", other.map(|b| b.len())),
        }
    }
}

// ---- reading tar as Go's archive/tar (and so Helm) reads it ----
//
// These archives are written block by block, so they can hold what no tar library
// writes. Each case is one where a reader that differs from Go's would validate and
// index a different chart than the one Helm installs.

/// A ustar header block: `name` verbatim, octal fields, a valid checksum.
fn raw_header(name: &[u8], typeflag: u8, size: u64) -> [u8; 512] {
    let mut block = [0u8; 512];
    block[..name.len()].copy_from_slice(name);
    octal(&mut block[100..108], 0o644);
    octal(&mut block[108..116], 0);
    octal(&mut block[116..124], 0);
    octal(&mut block[124..136], size);
    octal(&mut block[136..148], 1_700_000_000);
    block[156] = typeflag;
    block[257..263].copy_from_slice(b"ustar\0");
    block[263..265].copy_from_slice(b"00");
    set_checksum(&mut block);
    block
}

fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(text.as_bytes());
}

fn set_checksum(block: &mut [u8; 512]) {
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|b| *b as u32).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// A header and its data, padded to whole blocks.
fn raw_entry(header: [u8; 512], data: &[u8]) -> Vec<u8> {
    let mut out = header.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn raw_file(name: &str, data: &str) -> Vec<u8> {
    raw_entry(raw_header(name.as_bytes(), b'0', data.len() as u64), data.as_bytes())
}

/// One pax record, `"%d %s=%s\n"`, whose length counts its own digits.
fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut length = rest + 1;
    while rest + length.to_string().len() != length {
        length = rest + length.to_string().len();
    }
    let mut record = format!("{length} ").into_bytes();
    record.extend_from_slice(key);
    record.push(b'=');
    record.extend_from_slice(value);
    record.push(b'\n');
    record
}

/// A pax extended header ('x') holding `body`.
fn pax_entry(body: &[u8]) -> Vec<u8> {
    raw_entry(raw_header(b"PaxHeaders/entry", b'x', body.len() as u64), body)
}

/// A GNU long name ('L') or long link name ('K') entry holding `name` verbatim.
fn long_name_entry(kind: u8, name: &[u8]) -> Vec<u8> {
    raw_entry(raw_header(b"././@LongLink", kind, name.len() as u64), name)
}

/// A gzipped tar of the parts, ended by two zero blocks.
fn raw_tgz(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut tar = parts.concat();
    tar.extend_from_slice(&[0u8; 1024]);
    gzip(&tar)
}

/// A valid chart as raw parts, followed by `extra`.
fn raw_demo(extra: Vec<Vec<u8>>) -> Vec<u8> {
    let mut parts =
        vec![raw_file("demo/Chart.yaml", &chart_yaml("demo", "1.0.0")), raw_file("demo/values.yaml", "a: 1\n")];
    parts.extend(extra);
    raw_tgz(&parts)
}

#[test]
fn raw_archives_with_pax_and_gnu_names_load_as_go_reads_them() {
    // The builders above are right: pax paths and GNU long names (ended by NULs, as GNU
    // tar writes them) name the entries that follow them.
    let archive = raw_tgz(&[
        long_name_entry(b'L', b"demo/Chart.yaml\0"),
        raw_file("ignored-name", &chart_yaml("demo", "1.0.0")),
        pax_entry(&[pax_record(b"path", b"demo/values.yaml"), pax_record(b"mtime", b"1700000000.5")].concat()),
        raw_file("ignored-too", "fromPax: true\n"),
        long_name_entry(b'L', b"demo/templates/a-long-name.yaml\0\0\0"),
        raw_file("x", "kind: ConfigMap\n"),
    ]);
    let chart = loads("pax and GNU names", &archive);
    assert_eq!(chart.values["fromPax"], true);
    assert_eq!(chart.metadata.name, "demo");

    // An empty pax value keeps the header's own field, as Go's mergePAX does.
    let archive = raw_demo(vec![pax_entry(&pax_record(b"path", b"")), raw_file("demo/templates/t.yaml", "x")]);
    loads("empty pax path", &archive);
}

#[test]
fn names_with_nul_bytes_are_refused() {
    // Go cuts a GNU long name at its first NUL and refuses NUL in pax paths, so Helm
    // reads `demo/values.yaml` where a lenient reader sees another file name.
    let evil = raw_file("ignored", "evil: true\n");
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("GNU long name of values.yaml", vec![long_name_entry(b'L', b"demo/values.yaml\0.txt"), evil.clone()]),
        (
            "GNU long name of Chart.yaml",
            vec![long_name_entry(b'L', b"demo/Chart.yaml\0x"), raw_file("ignored", &chart_yaml("other", "6.6.6"))],
        ),
        ("GNU long link name", vec![long_name_entry(b'K', b"target\0x"), evil.clone()]),
        ("pax path", vec![pax_entry(&pax_record(b"path", b"demo/values.yaml\0.txt")), evil.clone()]),
        ("pax linkpath", vec![pax_entry(&pax_record(b"linkpath", b"a\0b")), evil.clone()]),
    ];
    for (case, parts) in cases {
        refused_default(case, &raw_demo(parts), "NUL");
    }
}

#[test]
fn malformed_pax_records_are_refused() {
    let path = |value: &[u8]| pax_record(b"path", value);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("length past the end", b"99 path=demo/values.yaml\n".to_vec()),
        ("length too short", b"5 path=demo/values.yaml\n".to_vec()),
        ("length not a number", b"x7 path=demo/values.yaml\n".to_vec()),
        ("no length", b"path=demo/values.yaml\n".to_vec()),
        ("record not ended by its length", [&path(b"demo/values.yaml")[..], b"12 path=x"].concat()),
        ("length not ending at a newline", b"24 path=demo/values.yamlX".to_vec()),
        ("no '='", pax_record(b"pathdemo/values.yaml", b"").split(|b| *b == b'=').collect::<Vec<_>>().concat()),
        ("empty key", pax_record(b"", b"x")),
        ("key not UTF-8", pax_record(b"p\xffth", b"demo/values.yaml")),
        ("key twice", [path(b"demo/templates/a.yaml"), path(b"demo/values.yaml")].concat()),
        ("size not a number", pax_record(b"size", b"twelve")),
        ("negative size", pax_record(b"size", b"-1")),
        ("mtime not a time", pax_record(b"mtime", b"yesterday")),
        ("uid not a number", pax_record(b"uid", b"root")),
        ("GNU sparse file", pax_record(b"GNU.sparse.major", b"1")),
    ];
    for (case, body) in cases {
        let archive = raw_demo(vec![pax_entry(&body), raw_file("demo/templates/t.yaml", "evil: true\n")]);
        refused_default(case, &archive, "not a valid tar archive");
    }
}

#[test]
fn extension_headers_that_describe_no_single_entry_are_refused() {
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("pax header at the end", vec![pax_entry(&pax_record(b"path", b"demo/values.yaml"))]),
        ("long name at the end", vec![long_name_entry(b'L', b"demo/values.yaml")]),
        (
            "two long names",
            vec![
                long_name_entry(b'L', b"demo/templates/a.yaml"),
                long_name_entry(b'L', b"demo/values.yaml"),
                raw_file("x", "evil: true\n"),
            ],
        ),
        (
            "two pax headers",
            vec![
                pax_entry(&pax_record(b"path", b"demo/templates/a.yaml")),
                pax_entry(&pax_record(b"path", b"demo/values.yaml")),
                raw_file("x", "evil: true\n"),
            ],
        ),
        ("an empty long name", vec![long_name_entry(b'L', b"\0"), raw_file("demo/templates/t.yaml", "x")]),
        ("an oversized long name", vec![long_name_entry(b'L', &vec![b'a'; 1024 * 1024 + 1]), raw_file("x", "x")]),
    ];
    for (case, parts) in cases {
        refused_default(case, &raw_demo(parts), "not a valid tar archive");
    }
}

#[test]
fn entries_go_reads_without_data_must_have_none() {
    // Go reads no data for a directory whatever its size says, so what follows its header
    // is the next header: here, a values.yaml that a reader skipping `size` bytes misses.
    let hidden = raw_file("demo/values.yaml", "evil: true\n");
    let directory = raw_entry(raw_header(b"demo/templates/", b'5', hidden.len() as u64), &hidden);
    let archive = raw_demo(vec![directory]);
    refused_default("directory with a size", &archive, "is a directory with a size");

    // An old-style ('\0') entry named with a trailing '/' is a directory to Go too.
    let old_style = raw_entry(raw_header(b"demo/templates/", 0, hidden.len() as u64), &hidden);
    refused_default("old-style directory with a size", &raw_demo(vec![old_style]), "is a directory with a size");
    let empty = raw_entry(raw_header(b"demo/templates/", 0, 0), b"");
    loads("old-style directory", &raw_demo(vec![empty]));
}

#[test]
fn regular_entries_with_a_directory_mode_are_refused() {
    // Helm skips any entry whose mode says directory (`FileInfo().IsDir()`).
    let mut header = raw_header(b"demo/values.yaml", b'0', 11);
    octal(&mut header[100..108], 0o040644);
    set_checksum(&mut header);
    let archive =
        raw_tgz(&[raw_file("demo/Chart.yaml", &chart_yaml("demo", "1.0.0")), raw_entry(header, b"evil: true\n")]);
    refused_default("directory mode", &archive, "special mode");
}

#[test]
fn a_zero_block_followed_by_entries_is_refused() {
    // Go fails on a zero block followed by a header (ErrHeader); a reader that stops at
    // the first zero block validates a chart without the entries after it.
    let mut tar = [raw_file("demo/Chart.yaml", &chart_yaml("demo", "1.0.0")), vec![0u8; 512]].concat();
    tar.extend(raw_file("demo/values.yaml", "evil: true\n"));
    tar.extend_from_slice(&[0u8; 1024]);
    refused_default("zero block", &gzip(&tar), "a zero block is followed by a header");
}

#[test]
fn header_fields_that_do_not_parse_are_refused() {
    let mut bad_size = raw_header(b"demo/values.yaml", b'0', 0);
    bad_size[124..136].copy_from_slice(b"0000000001x\0");
    set_checksum(&mut bad_size);
    refused_default("size", &raw_demo(vec![raw_entry(bad_size, b"")]), "size is not a number");

    let mut bad_sum = raw_header(b"demo/templates/t.yaml", b'0', 0);
    bad_sum[0] = b'x';
    refused_default("checksum", &raw_demo(vec![raw_entry(bad_sum, b"")]), "checksum mismatch");

    // In a GNU header, Go reads the access and change time fields as a USTAR prefix when
    // they are not numbers (for archives of old Go versions): Helm would install this
    // entry as demo/x/values.yaml, a reader ignoring the fallback as values.yaml.
    let mut gnu = raw_header(b"x/values.yaml", b'0', 11);
    gnu[257..263].copy_from_slice(b"ustar ");
    gnu[263..265].copy_from_slice(b" \0");
    gnu[345..349].copy_from_slice(b"demo");
    set_checksum(&mut gnu);
    let archive =
        raw_tgz(&[raw_file("demo/Chart.yaml", &chart_yaml("demo", "1.0.0")), raw_entry(gnu, b"evil: true\n")]);
    refused_default("GNU times", &archive, "access time is not a number");
}

#[test]
fn long_paths_are_refused_with_short_messages() {
    // A GNU long name over Go's 1 MiB limit is refused before it is read.
    let huge = [vec![b'a'; 50 * 1024 * 1024], b"/../x".to_vec()].concat();
    let archive = raw_demo(vec![long_name_entry(b'L', &huge), raw_file("x", "x")]);
    assert!(archive.len() < 200 * 1024, "{} bytes", archive.len());
    let message = refused_default("50 MiB long name", &archive, "larger than 1048576 bytes");
    assert!(message.len() < 512, "{} bytes", message.len());

    // Under that limit the path is read and refused, and the message quotes a bounded
    // part of it.
    let long = format!("demo/{}/../../x", "b".repeat(1000 * 1024));
    let archive = raw_demo(vec![long_name_entry(b'L', long.as_bytes()), raw_file("x", "x")]);
    let message = refused_default("1000 KiB path", &archive, "references a parent directory");
    assert!(message.len() < 512, "{} bytes: {message}", message.len());
    assert!(message.contains(&format!("({} bytes)", long.len())), "{message}");
}

// ---- reading files as Helm's loader reads them ----

#[test]
fn copies_of_files_helm_merges_are_refused() {
    // Helm unmarshals every Chart.yaml (then every requirements.yaml) of an archive into
    // one metadata object, so two copies merge field by field: the registry would index
    // the last copy while Helm installs a mix. values.yaml and other files are taken
    // last-wins by Helm and by chartyard alike (see the rewrite tests).
    let chart = demo_with(vec![file("demo/Chart.yaml", "apiVersion: v2\nname: demo\nversion: 1.0.0\n")]);
    refused_default("two Chart.yaml", &chart, "Chart.yaml appears twice");
    let requirements = demo_with(vec![
        file("demo/requirements.yaml", "dependencies: []\n"),
        file("demo/requirements.yaml", "dependencies: []\n"),
    ]);
    refused_default("two requirements.yaml", &requirements, "requirements.yaml appears twice");
    let sub = demo_with(vec![
        file("demo/charts/db/Chart.yaml", chart_yaml("db", "1.0.0")),
        file("demo/charts/db/Chart.yaml", chart_yaml("db", "2.0.0")),
    ]);
    refused_default("two subchart Chart.yaml", &sub, "charts/db/Chart.yaml appears twice");
}

#[test]
fn requirements_yaml_is_read_as_helm_reads_it() {
    // Helm unmarshals requirements.yaml into the chart's metadata whatever its apiVersion:
    // any field in it would override Chart.yaml, so only `dependencies` is accepted, and
    // its dependencies are the chart's, in v2 charts too.
    let archive = tgz(&[
        file("demo/Chart.yaml", chart_yaml("demo", "1.0.0")),
        file("demo/requirements.yaml", "appVersion: evil\ndependencies: []\n"),
    ]);
    refused_default("other keys", &archive, "requirements.yaml is not valid YAML");
    let archive = tgz(&[
        file("demo/Chart.yaml", format!("{}dependencies:\n- name: a\n", chart_yaml("demo", "1.0.0"))),
        file("demo/requirements.yaml", "dependencies:\n- name: b\n  version: 1.x\n"),
    ]);
    let deps = loads("v2 with requirements", &archive).metadata.dependencies;
    assert_eq!(deps.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["b"]);
    let archive = tgz(&[
        file("demo/Chart.yaml", format!("{}dependencies:\n- name: a\n", chart_yaml("demo", "1.0.0"))),
        file("demo/requirements.yaml", "dependencies: null\n"),
    ]);
    assert!(loads("null dependencies", &archive).metadata.dependencies.is_empty());
}

#[test]
fn files_in_charts_are_subcharts_as_helm_sees_them() {
    // Helm loads every name under charts/ (but `.`/`_` names and .prov files) as a
    // subchart: a stray file is a subchart without Chart.yaml, and `helm install` fails.
    let archive = demo_with(vec![file("demo/charts/README.md", "not a chart")]);
    let message = refused_default("stray file", &archive, "Chart.yaml file is missing");
    assert!(message.contains("charts/README.md"), "{message}");
    let archive = demo_with(vec![file("demo/charts/db.tgz/Chart.yaml", chart_yaml("db", "1.0.0"))]);
    refused_default("folder named like an archive", &archive, "folder named like a chart archive");
}

#[test]
fn keys_that_differ_from_chart_yaml_fields_only_by_case_are_refused() {
    // Helm's JSON decoding matches keys ignoring case: this chart is `other-6.6.6` to
    // Helm, while an exact-match reader sees demo-1.0.0 with unknown keys.
    let chart = format!("{}NAME: other\nVersion: 6.6.6\n", chart_yaml("demo", "1.0.0"));
    refused_default("Chart.yaml", &tgz(&[file("demo/Chart.yaml", chart)]), "differs from name only by case");
    let archive = tgz(&[
        file("demo/Chart.yaml", "apiVersion: v1\nname: demo\nversion: 1.0.0\n"),
        file("demo/requirements.yaml", "dependencies:\n- name: db\n  Version: 1.0.0\n"),
    ]);
    refused_default("requirements.yaml", &archive, "differs from version only by case");
}

// ---- one YAML budget per archive ----

/// values.yaml holding one `size`-byte scalar aliased 99 times: a few KiB of YAML, within
/// every per-document parser budget, that expands to 100 times `size`.
fn aliased_values(size: usize) -> String {
    let mut yaml = format!("big: &big \"{}\"\ncopies:\n", "v".repeat(size));
    for _ in 0..99 {
        yaml.push_str("- *big\n");
    }
    yaml
}

#[test]
fn subcharts_share_one_yaml_budget() {
    // 64 subcharts whose values.yaml each expand to 660 KiB: 42 MiB of values from a
    // small archive. Each document alone is fine; together they are over the archive's
    // budget, however they are split.
    let mut entries = chart_files("demo", "demo", "1.0.0");
    for i in 0..64 {
        let name = format!("s{i}");
        entries.push(file(&format!("demo/charts/{name}/Chart.yaml"), chart_yaml(&name, "1.0.0")));
        entries.push(file(&format!("demo/charts/{name}/values.yaml"), aliased_values(6600)));
    }
    let archive = tgz(&entries);
    assert!(archive.len() < 200 * 1024, "{} bytes", archive.len());
    let message = refused_default("64 subcharts", &archive, "values.yaml is too large");
    assert!(message.contains("subchart charts/s"), "{message}");

    // A few of them fit.
    let mut entries = chart_files("demo", "demo", "1.0.0");
    for i in 0..8 {
        let name = format!("s{i}");
        entries.push(file(&format!("demo/charts/{name}/Chart.yaml"), chart_yaml(&name, "1.0.0")));
        entries.push(file(&format!("demo/charts/{name}/values.yaml"), aliased_values(6600)));
    }
    assert_eq!(loads("8 subcharts", &tgz(&entries)).subcharts.len(), 8);

    // Aliases count at their expanded size: one document over a small budget.
    let limits = Limits { max_yaml_bytes: 256 * 1024, ..Limits::default() };
    let archive = demo_yaml(&chart_yaml("demo", "1.0.0"), &aliased_values(6600));
    refused("one document", &archive, &limits, "values.yaml is too large");
}

#[test]
fn coalesced_values_are_bounded_at_upload() {
    // A `global` table is copied into every subchart's values: 512 KiB of globals and 40
    // subcharts coalesce to 20 MiB, over the YAML budget, from a small archive.
    let mut entries = vec![
        file("demo/Chart.yaml", chart_yaml("demo", "1.0.0")),
        file("demo/values.yaml", format!("global:\n  blob: \"{}\"\n", "g".repeat(512 * 1024))),
    ];
    for i in 0..40 {
        let name = format!("s{i}");
        entries.push(file(&format!("demo/charts/{name}/Chart.yaml"), chart_yaml(&name, "1.0.0")));
    }
    refused_default("globals copied 40 times", &tgz(&entries), "values are too large");
}
