//! Bad input through the real server: every refused request must get a 4xx with the
//! seed's JSON error body, and leave the server healthy and the
//! stored data exactly as it was: same listings, byte-identical downloads, no new version
//! records, no changed files in the data directory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use crate::common::{
    ChartBuilder, SEED_TEST1, Server, chart_with_noise, client, error, files_under, gzip, json, sha256,
};
use reqwest::Method;
use reqwest::blocking::{Response, multipart};
use serde_json::{Value, json};

// ---- the guarded server ----

/// The good chart uploaded next to the seed's `test-1.0.0` in space `good`.
fn web_chart() -> Vec<u8> {
    ChartBuilder::new("web", "0.1.0").build()
}

/// Everything a refused request must leave unchanged.
#[derive(Debug, PartialEq)]
struct Snapshot {
    /// GET path → JSON answer.
    answers: BTreeMap<String, Value>,
    /// Version records (`*.json` under `charts/`).
    records: usize,
    /// Every file in the data directory → sha256 of its bytes; the audit log aside, which
    /// records the refused requests themselves (after they are answered).
    files: BTreeMap<PathBuf, String>,
}

/// The reads whose answers must not change.
const WATCHED: &[&str] = &[
    "/spaces?limit=1000",
    "/spaces/good/charts?limit=1000",
    "/spaces/good/charts/test/versions",
    "/spaces/good/charts/web/versions",
    "/spaces/good/metadata?limit=1000",
    "/spaces/good/metadata/latest",
    "/spaces/good/charts/test/versions/1.0.0/manifests/metadata",
    "/spaces/good/charts/test/versions/1.0.0/manifests/values",
    "/spaces/good/charts/web/versions/0.1.0/manifests/metadata",
    "/spaces/good/charts/web/versions/0.1.0/manifests/values",
];

fn snapshot(server: &Server) -> Snapshot {
    let answers = WATCHED.iter().map(|path| (path.to_string(), json(server.get(path), 200))).collect();
    let files: BTreeMap<PathBuf, String> = files_under(&server.data.path)
        .into_iter()
        .filter(|path| !path.strip_prefix(&server.data.path).unwrap().starts_with("audit"))
        .map(|path| {
            let hash = sha256(&std::fs::read(&path).unwrap());
            (path.strip_prefix(&server.data.path).unwrap().to_path_buf(), hash)
        })
        .collect();
    let records =
        files.keys().filter(|p| p.starts_with("charts") && p.extension().is_some_and(|e| e == "json")).count();
    Snapshot { answers, records, files }
}

/// A server holding two good charts, and what it looked like before any bad request.
struct Guarded {
    server: Server,
    before: Snapshot,
}

impl Guarded {
    fn start() -> Self {
        Self::start_with(&[])
    }

    fn start_with(args: &[&str]) -> Self {
        let server = Server::start_with(args);
        json(server.upload("good", SEED_TEST1), 201);
        json(server.upload("good", &web_chart()), 201);
        let before = snapshot(&server);
        assert_eq!(before.records, 2, "the record count must see both uploads");
        Self { server, before }
    }

    /// The server answers and nothing it stores has changed.
    #[track_caller]
    fn assert_untouched(&self, case: &str) {
        assert!(self.server.healthy(), "{case}: the server is not healthy");
        assert_eq!(self.server.download("good", "test", "1.0.0"), SEED_TEST1, "{case}: test-1.0.0 changed");
        assert!(self.server.download("good", "web", "0.1.0") == web_chart(), "{case}: web-0.1.0 changed");
        let now = snapshot(&self.server);
        assert_eq!(now.records, self.before.records, "{case}: version records appeared or vanished");
        assert_eq!(now, self.before, "{case}: stored data changed");
    }

    /// Expects a JSON error with `status` whose message mentions `needle`, then checks
    /// that nothing changed.
    #[track_caller]
    fn refused(&self, case: &str, response: Response, status: u16, needle: &str) {
        eprintln!("case: {case}");
        let message = error(response, status);
        assert!(message.contains(needle), "{case}: message {message:?} does not mention {needle:?}");
        self.assert_untouched(case);
    }
}

// ---- requests ----

fn send(server: &Server, method: Method, path: &str) -> reqwest::blocking::RequestBuilder {
    client().request(method, server.api(path))
}

/// A raw body with a content type.
fn send_body(server: &Server, method: Method, path: &str, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
    send(server, method, path).header("content-type", content_type).body(body.into()).send().unwrap()
}

fn multipart_with(server: &Server, method: Method, path: &str, form: multipart::Form) -> Response {
    send(server, method, path).multipart(form).send().unwrap()
}

/// A multipart/form-data body with one file field, as (content type, bytes).
fn multipart_body(field: &str, data: &[u8]) -> (String, Vec<u8>) {
    let boundary = "chartyard-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"chart.tgz\"\r\nContent-Type: application/gzip\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn chart_part(archive: &[u8]) -> multipart::Part {
    multipart::Part::bytes(archive.to_vec()).file_name("chart.tgz")
}

/// Uploads without unwrapping the transport result: a server that died answers nothing.
fn try_upload(server: &Server, space: &str, archive: &[u8]) -> reqwest::Result<Response> {
    let form = multipart::Form::new().part("chartfile", chart_part(archive));
    send(server, Method::POST, &format!("/spaces/{space}/charts")).multipart(form).send()
}

// ---- hostile archives ----

/// A chart `test-1.0.0` (the stored seed chart's coordinates, so a replace would match
/// if the archive were accepted) with one more entry.
fn test_with(path: &str, data: &str) -> Vec<u8> {
    ChartBuilder::new("test", "1.0.0").file(path, data).build()
}

fn test_with_entry(path: &str, kind: tar::EntryType) -> Vec<u8> {
    ChartBuilder::new("test", "1.0.0").entry(path, "", kind).build()
}

fn test_chart_yaml(chart_yaml: &str) -> Vec<u8> {
    ChartBuilder::new("test", "1.0.0").with("test/Chart.yaml", chart_yaml).build()
}

fn test_values(values: &str) -> Vec<u8> {
    ChartBuilder::new("test", "1.0.0").with("test/values.yaml", values).build()
}

/// Chart `test-1.0.0` plus `files` files of `size` zeros, streamed into the encoder.
fn zero_bomb(files: usize, size: u64) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut builder = tar::Builder::new(encoder);
    let chart = "apiVersion: v2\nname: test\nversion: 1.0.0\n";
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(chart.len() as u64);
    builder.append_data(&mut header, "test/Chart.yaml", chart.as_bytes()).unwrap();
    for i in 0..files {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(size);
        let zeros = std::io::repeat(0).take(size);
        builder.append_data(&mut header, format!("test/files/zeros-{i}"), zeros).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Chart `l{level}` holding `l{level+1}` as charts/*.tgz, `levels` charts in all.
fn nested_archives(level: usize, levels: usize) -> Vec<u8> {
    let name = if level == 0 { "test".to_string() } else { format!("l{level}") };
    let mut chart = ChartBuilder::new(&name, "1.0.0");
    if level + 1 < levels {
        chart = chart.file(&format!("{name}/charts/l{}-1.0.0.tgz", level + 1), nested_archives(level + 1, levels));
    }
    chart.build()
}

/// `depth` levels of block mappings.
fn nested_block_maps(depth: usize) -> String {
    let mut yaml = String::new();
    for level in 0..depth {
        yaml.push_str(&" ".repeat(level));
        yaml.push_str("k:\n");
    }
    yaml
}

fn billion_laughs() -> String {
    let mut yaml = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..=9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        yaml.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    yaml.push_str("boom: *a9\n");
    yaml
}

/// Every hostile archive kind, with a word its refusal must mention. Archives that crash
/// the server are not here but in their own tests below, so that one crash does not
/// hide every later case.
fn hostile_archives() -> Vec<(String, Vec<u8>, &'static str)> {
    use tar::EntryType;
    let good = ChartBuilder::new("test", "1.0.0").build();
    let mut cases: Vec<(String, Vec<u8>, &'static str)> = vec![
        ("gzip bomb: 24 x 5 MiB of zeros".into(), zero_bomb(24, 5 * 1024 * 1024), "decompressed size exceeds"),
        ("one 6 MiB file".into(), zero_bomb(1, 6 * 1024 * 1024), "larger than"),
        ("subcharts nested 17 deep".into(), nested_archives(0, 18), "nest deeper than 16"),
        ("symlink".into(), test_with_entry("test/templates/passwd", EntryType::Symlink), "is a link"),
        ("hardlink".into(), test_with_entry("test/templates/passwd", EntryType::Link), "is a link"),
        ("fifo".into(), test_with_entry("test/templates/pipe", EntryType::Fifo), "regular files"),
        (
            "Chart.yaml at the root".into(),
            ChartBuilder::empty().file("Chart.yaml", "apiVersion: v2\nname: test\nversion: 1.0.0\n").build(),
            "not inside a chart folder",
        ),
        (
            "no Chart.yaml".into(),
            ChartBuilder::empty().file("test/values.yaml", "a: 1\n").build(),
            "Chart.yaml file is missing",
        ),
        (
            "only directories".into(),
            ChartBuilder::empty()
                .entry("test/", "", EntryType::Directory)
                .entry("test/templates/", "", EntryType::Directory)
                .build(),
            "Chart.yaml file is missing",
        ),
        (
            "invalid Chart.yaml".into(),
            test_chart_yaml("apiVersion: v2\nname: [test\nversion: 1.0.0\n"),
            "Chart.yaml is not valid YAML",
        ),
        ("billion laughs in values.yaml".into(), test_values(&billion_laughs()), "values.yaml is not valid YAML"),
        (
            "values nested 100 000 deep in flow sequences".into(),
            test_values(&format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000))),
            "values.yaml is not valid YAML",
        ),
        ("values.yaml is a list".into(), test_values("- a\n- b\n"), "values.yaml is not a table"),
        ("no name".into(), test_chart_yaml("apiVersion: v2\nversion: 1.0.0\n"), "name is required"),
        ("no version".into(), test_chart_yaml("apiVersion: v2\nname: test\n"), "version is required"),
        ("apiVersion v3".into(), test_chart_yaml("apiVersion: v3\nname: test\nversion: 1.0.0\n"), "is not v1 or v2"),
        ("not gzip".into(), b"this is not a chart archive".to_vec(), "not a gzipped tar archive"),
        ("uncompressed tar".into(), ChartBuilder::new("test", "1.0.0").tar(), "not a gzipped tar archive"),
        ("gzip of text".into(), gzip(b"plain text"), "not a gzipped tar archive"),
        ("truncated gzip".into(), good[..good.len() / 2].to_vec(), "not a gzipped tar archive"),
        ("empty".into(), Vec::new(), "not a gzipped tar archive"),
    ];
    for path in ["/etc/passwd", "/test/templates/x.yaml", "\\etc\\passwd"] {
        cases.push((format!("absolute path {path}"), test_with(path, "x"), "absolute path"));
    }
    for path in
        ["../x", "test/../../x", "test/templates/../../../etc/passwd", "test/templates/..", "..\\x", "test\\..\\..\\x"]
    {
        cases.push((format!("parent path {path}"), test_with(path, "x"), "references a parent directory"));
    }
    for path in ["test/C:/Windows/x.yaml", "test\\C:\\Windows\\x.yaml", "test/c:x"] {
        cases.push((format!("drive letter {path}"), test_with(path, "x"), "has a drive letter"));
    }
    for version in ["1.0", "v1.0.0", "latest", "01.0.0"] {
        cases.push((
            format!("version {version}"),
            test_chart_yaml(&format!("apiVersion: v2\nname: test\nversion: \"{version}\"\n")),
            "is not SemVer 2",
        ));
    }
    for name in ["../x", "a/b", "_x", "-x"] {
        cases.push((
            format!("name {name}"),
            test_chart_yaml(&format!("apiVersion: v2\nname: \"{name}\"\nversion: 1.0.0\n")),
            "must match",
        ));
    }
    // 20 001 entries (directories and files both count).
    let mut many = ChartBuilder::new("test", "1.0.0");
    for i in 0..20_000 {
        many = many.file(&format!("test/f/{i}"), "");
    }
    cases.push(("20 003 entries".into(), many.build(), "more than 20000 entries"));
    cases
}

#[test]
fn hostile_archives_are_refused_on_upload() {
    let guarded = Guarded::start();
    for (case, archive, needle) in hostile_archives() {
        let response = guarded.server.upload("good", &archive);
        guarded.refused(&format!("POST {case}"), response, 400, needle);
        // Into a new space too: refusing must not leave the space behind.
        let response = guarded.server.upload("fresh", &archive);
        guarded.refused(&format!("POST into new space, {case}"), response, 400, needle);
    }
    error(guarded.server.get("/spaces/fresh/charts"), 404);
}

#[test]
fn hostile_archives_are_refused_on_replace() {
    let guarded = Guarded::start();
    for (case, archive, needle) in hostile_archives() {
        let response = guarded.server.replace("good", "test", "1.0.0", &archive);
        guarded.refused(&format!("PUT {case}"), response, 400, needle);
    }
}

#[test]
fn deeply_nested_values_do_not_crash_the_server() {
    // The YAML budget allows 100 levels, but parsing runs on a tokio worker thread
    // (2 MiB stack): every document must be answered and the server must live on.
    // Within the budget the chart may load (201, then deleted again) or be refused;
    // past it, it must be refused.
    let guarded = Guarded::start();
    let server = &guarded.server;
    let cases: [(&str, String, &[u16]); 3] = [
        ("block maps 90 deep", nested_block_maps(90), &[201, 400]),
        ("flow maps 100 000 deep", format!("a: {}1{}\n", "{a: ".repeat(100_000), "}".repeat(100_000)), &[400]),
        ("block maps 2 000 deep", nested_block_maps(2000), &[400]),
    ];
    for (case, values, expected) in cases {
        let archive = ChartBuilder::new("deep", "1.0.0").with("deep/values.yaml", values).build();
        let response = try_upload(server, "good", &archive);
        assert!(server.healthy(), "{case}: the server died (answer: {response:?})");
        let response = response.unwrap();
        let status = response.status().as_u16();
        assert!(expected.contains(&status), "{case}: status {status}");
        if status == 201 {
            let deleted = server.delete("/spaces/good/charts/deep/versions/1.0.0");
            assert_eq!(deleted.status(), 204, "{case}");
        } else {
            let message = error(response, 400);
            assert!(message.contains("values.yaml"), "{case}: {message}");
        }
        assert_eq!(server.download("good", "test", "1.0.0"), SEED_TEST1, "{case}");
        assert_eq!(
            json(server.get("/spaces/good/charts?limit=1000"), 200),
            guarded.before.answers["/spaces/good/charts?limit=1000"],
            "{case}"
        );
    }
}

#[test]
fn deeply_nested_subchart_folders_do_not_crash_the_server() {
    // test/charts/l1/charts/l2/... 1 000 levels deep: a ~70 KiB upload far over the
    // subchart depth limit of 16, which must be refused like the same nesting in .tgz
    // files. Paths this long need the GNU long-name extension, so the tar is built here.
    let guarded = Guarded::start();
    let mut builder = tar::Builder::new(Vec::new());
    let mut folder = "test".to_string();
    for level in 0..1000 {
        let name = if level == 0 { "test".to_string() } else { format!("l{level}") };
        let yaml = format!("apiVersion: v2\nname: {name}\nversion: 1.0.0\n");
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(yaml.len() as u64);
        builder.append_data(&mut header, format!("{folder}/Chart.yaml"), yaml.as_bytes()).unwrap();
        folder = format!("{folder}/charts/l{}", level + 1);
    }
    let archive = gzip(&builder.into_inner().unwrap());
    let response = try_upload(&guarded.server, "good", &archive);
    assert!(guarded.server.healthy(), "the server died (answer: {response:?})");
    guarded.refused("1 000 nested subchart folders", response.unwrap(), 400, "nest deeper than 16");
}

// ---- requests without a usable chart ----

#[test]
fn uploads_without_a_chart_are_refused() {
    let guarded = Guarded::start();
    let server = &guarded.server;
    let upload = "/spaces/good/charts";
    let replace = "/spaces/good/charts/test/versions/1.0.0";

    for (method, path) in [(Method::POST, upload), (Method::PUT, replace)] {
        let case = |what: &str| format!("{method} {what}");
        let form = multipart::Form::new().text("name", "test").part("file", chart_part(SEED_TEST1));
        guarded.refused(
            &case("multipart without chartfile"),
            multipart_with(server, method.clone(), path, form),
            400,
            "chartfile",
        );
        let form = multipart::Form::new();
        guarded.refused(&case("empty multipart"), multipart_with(server, method.clone(), path, form), 400, "multipart");
        let form = multipart::Form::new().part("chartfile", chart_part(b""));
        guarded.refused(
            &case("empty chartfile"),
            multipart_with(server, method.clone(), path, form),
            400,
            "not a gzipped tar archive",
        );
        guarded.refused(
            &case("multipart without boundary"),
            send_body(server, method.clone(), path, "multipart/form-data", SEED_TEST1),
            400,
            "multipart",
        );
        guarded.refused(
            &case("multipart with a garbage body"),
            send_body(
                server,
                method.clone(),
                path,
                "multipart/form-data; boundary=XYZ",
                "this is not multipart at all",
            ),
            400,
            "",
        );
    }

    // A non-multipart body to the upload route is an orchestration config: anything that is
    // not a valid config is a 400, in the JSON error shape, nothing stored.
    for (content_type, body) in [
        ("text/plain", b"hello".to_vec()),
        ("application/gzip", SEED_TEST1.to_vec()),
        ("application/json", br#"{"name":"x"}"#.to_vec()),
    ] {
        guarded.refused(
            &format!("POST {content_type}"),
            send_body(server, Method::POST, upload, content_type, body),
            400,
            "orchestration config is invalid",
        );
    }
    guarded.refused(
        "POST without a body",
        send(server, Method::POST, upload).send().unwrap(),
        400,
        "orchestration config is invalid",
    );
    // Replace has no such alternative: a non-multipart body is a bad request.
    guarded.refused(
        "PUT application/gzip",
        send_body(server, Method::PUT, replace, "application/gzip", SEED_TEST1),
        400,
        "multipart",
    );
}

#[test]
fn bodies_over_the_upload_limit_are_refused_with_413() {
    let guarded = Guarded::start_with(&["--max-upload-size", "65536"]);
    let server = &guarded.server;
    // The multipart bodies are sent as one buffer: the server answers 413 as soon as it
    // has read 64 KiB, and reqwest's streamed multipart bodies then fail to send the
    // rest and report that instead of the answer.
    let upload = |space: &str, archive: &[u8]| {
        let (content_type, body) = multipart_body("chartfile", archive);
        send_body(server, Method::POST, &format!("/spaces/{space}/charts"), &content_type, body)
    };
    let big = chart_with_noise("big", "1.0.0", 100 * 1024);
    guarded.refused("POST 100 KiB", upload("good", &big), 413, "");
    guarded.refused("POST 100 KiB into a new space", upload("fresh", &big), 413, "");
    let (content_type, body) = multipart_body("chartfile", &chart_with_noise("test", "1.0.0", 100 * 1024));
    let path = "/spaces/good/charts/test/versions/1.0.0";
    guarded.refused("PUT 100 KiB", send_body(server, Method::PUT, path, &content_type, body), 413, "");
    let big_json = json!({ "padding": "x".repeat(100 * 1024) });
    guarded.refused(
        "PUT 100 KiB of values",
        server.put_json("/spaces/good/charts/test/versions/1.0.0/manifests/values", &big_json),
        413,
        "",
    );
    let mut metadata = json(server.get("/spaces/good/charts/test/versions/1.0.0/manifests/metadata"), 200);
    metadata["description"] = json!("x".repeat(100 * 1024));
    guarded.refused(
        "PUT 100 KiB of metadata",
        server.put_json("/spaces/good/charts/test/versions/1.0.0/manifests/metadata", &metadata),
        413,
        "",
    );
    error(server.get("/spaces/fresh/charts"), 404);
}

// ---- names, versions and paging in paths ----

/// Every route with a space in it, as (method, path, body) for space `s`, chart `c`
/// and version `v`. DELETEs only ever name invalid or missing things.
fn routes(s: &str, c: &str, v: &str) -> Vec<(Method, String, Option<Value>)> {
    let version = format!("/spaces/{s}/charts/{c}/versions/{v}");
    let metadata = json!({"apiVersion": "v1", "name": c, "version": v, "description": "x"});
    vec![
        (Method::GET, format!("/spaces/{s}/charts"), None),
        (Method::DELETE, format!("/spaces/{s}"), None),
        (Method::GET, format!("/spaces/{s}/metadata"), None),
        (Method::GET, format!("/spaces/{s}/metadata/latest"), None),
        (Method::GET, format!("/spaces/{s}/charts/{c}/versions"), None),
        (Method::DELETE, format!("/spaces/{s}/charts/{c}"), None),
        (Method::GET, format!("/spaces/{s}/charts/{c}/metadata"), None),
        (Method::GET, format!("/spaces/{s}/charts/{c}/metadata/latest"), None),
        (Method::GET, version.clone(), None),
        (Method::DELETE, version.clone(), None),
        (Method::GET, format!("{version}/manifests/metadata"), None),
        (Method::PUT, format!("{version}/manifests/metadata"), Some(metadata)),
        (Method::GET, format!("{version}/manifests/values"), None),
        (Method::PUT, format!("{version}/manifests/values"), Some(json!({"a": 1}))),
    ]
}

/// The routes of [`routes`] that name chart `c`.
fn chart_routes(s: &str, c: &str, v: &str) -> Vec<(Method, String, Option<Value>)> {
    let prefix = format!("/spaces/{s}/charts/{c}");
    routes(s, c, v).into_iter().filter(|(_, path, _)| path.starts_with(&prefix)).collect()
}

fn call(server: &Server, method: &Method, path: &str, body: &Option<Value>) -> Response {
    let request = send(server, method.clone(), path);
    match body {
        Some(body) => request.json(body).send().unwrap(),
        None => request.send().unwrap(),
    }
}

#[test]
fn invalid_names_are_refused_on_every_route() {
    let guarded = Guarded::start();
    let server = &guarded.server;
    let long = "a".repeat(254);
    let bad_names = ["_bad", "-x", long.as_str(), "..%2F", "..%2Fgood", "a%2Fb", "a.b", "%C3%A4"];
    for bad in bad_names {
        // a bad space with a real chart and version, then a bad chart in the good space
        for (method, path, body) in routes(bad, "test", "1.0.0").into_iter().chain(chart_routes("good", bad, "1.0.0")) {
            let case = format!("{method} {path}");
            let response = call(server, &method, &path, &body);
            guarded.refused(&case, response, 400, "is invalid");
        }
        guarded.refused(&format!("create space {bad}"), server.create_space(bad), 400, "is invalid");
        guarded.refused(&format!("upload into {bad}"), server.upload(bad, &web_chart()), 400, "is invalid");
        guarded.refused(
            &format!("replace in space {bad}"),
            server.replace(bad, "test", "1.0.0", SEED_TEST1),
            400,
            "is invalid",
        );
        guarded.refused(&format!("replace chart {bad}"), server.replace("good", bad, "1.0.0", SEED_TEST1), 400, "");
    }
}

#[test]
fn invalid_versions_in_paths_are_refused() {
    let guarded = Guarded::start();
    let server = &guarded.server;
    for bad in ["1.0", "v1.0.0", "latest", "01.0.0", "1.0.0-", "1.0.0.0"] {
        for (method, path, body) in
            routes("good", "test", bad).into_iter().filter(|(_, path, _)| path.contains("/versions/"))
        {
            let case = format!("{method} {path}");
            let response = call(server, &method, &path, &body);
            guarded.refused(&case, response, 400, "is not SemVer 2");
        }
        guarded.refused(&format!("replace version {bad}"), server.replace("good", "test", bad, SEED_TEST1), 400, "");
    }
}

#[test]
fn malformed_values_bodies_are_refused() {
    let guarded = Guarded::start();
    let server = &guarded.server;
    let path = "/spaces/good/charts/test/versions/1.0.0/manifests/values";
    let bodies: [(&str, &[u8]); 8] = [
        ("malformed JSON", br#"{"replicaCount": "#),
        ("trailing garbage", br#"{"a": 1} x"#),
        ("an array", b"[1, 2, 3]"),
        ("a string", br#""replicaCount: 4""#),
        ("a number", b"4"),
        ("null", b"null"),
        ("empty", b""),
        ("YAML", b"replicaCount: 4\n"),
    ];
    for (case, body) in bodies {
        let response = send_body(server, Method::PUT, path, "application/json", body);
        guarded.refused(&format!("values: {case}"), response, 400, "");
    }
}

#[test]
fn malformed_metadata_bodies_are_refused() {
    let guarded = Guarded::start();
    let server = &guarded.server;
    for (chart, version) in [("test", "1.0.0"), ("web", "0.1.0")] {
        let path = format!("/spaces/good/charts/{chart}/versions/{version}/manifests/metadata");
        let raw: [(&str, &[u8]); 5] = [
            ("malformed JSON", br#"{"name": "#),
            ("an array", br#"[{"name": "test"}]"#),
            ("a string", br#""test""#),
            ("null", b"null"),
            ("empty", b""),
        ];
        for (case, body) in raw {
            let response = send_body(server, Method::PUT, &path, "application/json", body);
            guarded.refused(&format!("{chart} metadata: {case}"), response, 400, "");
        }

        let current = json(server.get(&path), 200);
        let changed = |field: &str, value: Value| {
            let mut metadata = current.clone();
            metadata[field] = value;
            metadata
        };
        let cases = [
            ("changed name", changed("name", json!("other")), "value of name"),
            ("changed version", changed("version", json!("9.9.9")), "value of version"),
            ("no name", changed("name", json!("")), "value of name"),
            ("type weird", changed("type", json!("weird")), "not application or library"),
            ("apiVersion v3", changed("apiVersion", json!("v3")), "is not v1 or v2"),
            ("name is a number", changed("name", json!(5)), "chart metadata"),
            ("keywords is a string", changed("keywords", json!("k")), "chart metadata"),
        ];
        for (case, body, needle) in cases {
            let response = server.put_json(&path, &body);
            guarded.refused(&format!("{chart} metadata: {case}"), response, 400, needle);
        }
    }
}

#[test]
fn missing_resources_are_404() {
    let guarded = Guarded::start();
    let server = &guarded.server;
    let mut cases = Vec::new();
    // a missing space (every route), a missing chart and a missing version in `good`
    cases.extend(routes("nope", "test", "1.0.0"));
    cases.extend(chart_routes("good", "nope", "1.0.0"));
    cases.extend(routes("good", "test", "9.9.9").into_iter().filter(|(_, path, _)| path.contains("/versions/")));
    for (method, path, body) in cases {
        let case = format!("{method} {path}");
        guarded.refused(&case, call(server, &method, &path, &body), 404, "");
    }
    // Replacing a version that does not exist stores nothing.
    let archive = ChartBuilder::new("test", "9.9.9").build();
    guarded.refused("replace a missing version", server.replace("good", "test", "9.9.9", &archive), 404, "");
    let archive = ChartBuilder::new("test", "1.0.0").build();
    guarded.refused("replace in a missing space", server.replace("nope", "test", "1.0.0", &archive), 404, "");
}

#[test]
fn bad_paging_is_refused() {
    let guarded = Guarded::start();
    let lists = [
        "/spaces",
        "/spaces/good/charts",
        "/spaces/good/charts/test/versions",
        "/spaces/good/metadata",
        "/spaces/good/metadata/latest",
        "/spaces/good/charts/test/metadata",
    ];
    for list in lists {
        for query in ["start=abc", "limit=1.5", "start=1&limit=x", "start=%20"] {
            let path = format!("{list}?{query}");
            guarded.refused(&path, guarded.server.get(&path), 400, "should be number");
        }
    }
}

#[test]
fn unknown_routes_and_wrong_methods_are_json_errors() {
    let guarded = Guarded::start();
    let server = &guarded.server;
    for path in [
        "/api/v1/nope",
        "/api/v1/spaces/good/nope",
        "/api/v1/spaces/good/charts/test/versions/1.0.0/manifests/nope",
        "/api/v2/spaces",
        "/nope",
    ] {
        let response = client().get(server.url(path)).send().unwrap();
        guarded.refused(&format!("GET {path}"), response, 404, "");
    }
    let wrong = [
        (Method::PATCH, "/spaces"),
        (Method::PUT, "/spaces"),
        (Method::PUT, "/spaces/good"),
        (Method::GET, "/spaces/good"),
        (Method::DELETE, "/spaces/good/charts"),
        (Method::PUT, "/spaces/good/charts/test"),
        (Method::POST, "/spaces/good/charts/test/versions"),
        (Method::POST, "/spaces/good/charts/test/versions/1.0.0"),
        (Method::DELETE, "/spaces/good/charts/test/versions/1.0.0/manifests/values"),
        (Method::POST, "/spaces/good/charts/test/versions/1.0.0/manifests/metadata"),
        (Method::POST, "/spaces/good/metadata"),
        (Method::DELETE, "/spaces/good/charts/test/metadata/latest"),
    ];
    for (method, path) in wrong {
        let case = format!("{method} {path}");
        guarded.refused(&case, send(server, method, path).send().unwrap(), 405, "");
    }
}

// ---- bounded answers and names that fit the store ----

/// Chart `test-1.0.0` plus one entry whose GNU long name is `name` (written verbatim).
fn with_long_name(name: &[u8]) -> Vec<u8> {
    let mut tar = ChartBuilder::new("test", "1.0.0").tar();
    tar.truncate(tar.len() - 1024); // the end-of-archive blocks
    let mut builder = tar::Builder::new(Vec::new());
    let mut long = tar::Header::new_gnu();
    long.set_entry_type(tar::EntryType::GNULongName);
    long.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    long.set_mode(0o644);
    long.set_size(name.len() as u64);
    long.set_cksum();
    builder.append(&long, name).unwrap();
    let mut file = tar::Header::new_gnu();
    file.as_gnu_mut().unwrap().name[..1].copy_from_slice(b"x");
    file.set_mode(0o644);
    file.set_size(1);
    file.set_cksum();
    builder.append(&file, &b"x"[..]).unwrap();
    tar.extend(builder.into_inner().unwrap());
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut encoder = encoder;
    std::io::Write::write_all(&mut encoder, &tar).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn errors_about_huge_paths_are_short() {
    // A 50 MiB path in a small archive once came back whole in the 400 body; every
    // message is now bounded where it is built (and again at the HTTP edge).
    let guarded = Guarded::start();
    let server = &guarded.server;
    let huge = [b"test/".to_vec(), vec![b'a'; 50 << 20], b"/../x".to_vec()].concat();
    let long = [b"test/".to_vec(), vec![b'b'; 1000 << 10], b"/../x".to_vec()].concat();
    let cases = [
        ("50 MiB path", with_long_name(&huge), "larger than 1048576 bytes"),
        ("1000 KiB path", with_long_name(&long), "references a parent directory"),
    ];
    for (case, archive, needle) in cases {
        assert!(archive.len() < 128 * 1024, "{case}: {} bytes", archive.len());
        let response = server.upload("good", &archive);
        let message = error(response, 400);
        assert!(message.contains(needle), "{case}: {message}");
        assert!(message.len() < 1024, "{case}: a {} byte message", message.len());
        guarded.assert_untouched(case);

        let response = client().post(server.url("/api/good/charts")).body(archive.clone()).send().unwrap();
        assert_eq!(response.status(), 400, "{case}");
        let body = response.text().unwrap();
        assert!(body.len() < 1024 && body.contains(needle), "{case}: a {} byte body", body.len());
        guarded.assert_untouched(case);
    }
}

#[test]
fn overlong_versions_and_names_are_refused_before_anything_is_written() {
    // `{version}.json` and `spaces/{space}.json` are file names; past 255 bytes the write
    // failed with a 500 after the space had been created.
    let guarded = Guarded::start();
    let server = &guarded.server;
    let version = format!("1.0.0-{}", "a".repeat(300));
    let archive = test_chart_yaml(&format!("apiVersion: v2\nname: test\nversion: {version}\n"));
    guarded.refused("upload into a new space", server.upload("fresh", &archive), 400, "longer than 128 bytes");
    guarded.refused("replace", server.replace("good", "test", "1.0.0", &archive), 400, "longer than 128 bytes");

    let response = client().post(server.url("/api/fresh/charts")).body(archive.clone()).send().unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().unwrap();
    assert!(body["error"].as_str().unwrap().contains("longer than 128 bytes"), "{body}");
    guarded.assert_untouched("ChartMuseum upload");

    // Versions in paths, and OCI tags (a tag is a version), share the limit.
    let path = format!("/spaces/good/charts/test/versions/{version}");
    guarded.refused("GET a long version", server.get(&path), 400, "longer than 128 bytes");
    let manifest = json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": format!("sha256:{}", "0".repeat(64)), "size": 2},
        "layers": []
    });
    let response = client()
        .put(server.url(&format!("/v2/fresh/test/manifests/{}", version.replace('+', "_"))))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.to_string())
        .send()
        .unwrap();
    assert_eq!(response.status(), 400, "{}", response.text().unwrap());
    guarded.assert_untouched("OCI tag");

    // A 251-byte space name: spaces/{space}.json would be 256 bytes.
    let space = "s".repeat(251);
    guarded.refused("long space name", server.upload(&space, &web_chart()), 400, "at most 128 characters");
    guarded.refused("create a long space", server.create_space(&space), 400, "at most 128 characters");
    error(server.get("/spaces/fresh/charts"), 404);
}

#[test]
fn yaml_expanding_past_the_archive_budget_is_refused() {
    // 64 subcharts whose values.yaml each alias one 6.6 KB scalar 99 times: every document
    // is within the parser's budgets, together they expand to 42 MB from 150 KB.
    let guarded = Guarded::start();
    let mut values = format!("big: &big \"{}\"\ncopies:\n", "v".repeat(6600));
    for _ in 0..99 {
        values.push_str("- *big\n");
    }
    let mut chart = ChartBuilder::new("test", "1.0.0");
    for i in 0..64 {
        let name = format!("s{i}");
        chart = chart
            .file(&format!("test/charts/{name}/Chart.yaml"), format!("apiVersion: v2\nname: {name}\nversion: 1.0.0\n"))
            .file(&format!("test/charts/{name}/values.yaml"), values.clone());
    }
    let archive = chart.build();
    assert!(archive.len() < 300 * 1024, "{} bytes", archive.len());
    guarded.refused("upload", guarded.server.upload("good", &archive), 400, "values.yaml is too large");
    guarded.refused("replace", guarded.server.replace("good", "test", "1.0.0", &archive), 400, "is too large");
}
