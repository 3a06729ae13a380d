//! Three chartyard replicas over one S3 bucket (moto): writes through any replica and any
//! API are seen by the others, races between replicas have one winner, OCI upload
//! sessions move between replicas, and neither `kill -9` nor `chartyard gc` loses an
//! acknowledged upload.
//!
//! Tests named `index_across_replicas_*` check that a replica's repository index
//! (`/{space}/index.yaml`) learns of the other replicas' writes. They poll for at most 10 s
//! (a liveness bound, not a timing assertion). The other tests read through direct reads
//! (downloads, OCI manifests and blobs, `/api/v1` version lists), which go to the bucket.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use crate::common::{ChartBuilder, Helm, TempDir, chart_config, client, sha256, write_file};
use crate::support_s3::{Moto, S3Server, chartyard, digest_of, header, run_to_exit, write_config};
use reqwest::blocking::{Body, Response, multipart};
use serde_json::{Value, json};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const HELM_CONFIG: &str = "application/vnd.cncf.helm.config.v1+json";
const HELM_CHART: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

// ---- the replicas ----

/// Three servers on one moto bucket, all killed when dropped (servers before moto).
struct Cluster {
    servers: Vec<S3Server>,
    config: String,
    _dir: TempDir,
    moto: Moto,
}

impl Cluster {
    /// Moto, a bucket named `bucket` and three replicas on it (with `extra` flags); `None`
    /// where moto is not installed (the test skips).
    fn start(bucket: &str, extra: &[&str]) -> Option<Self> {
        let moto = Moto::start()?;
        moto.create_bucket(bucket);
        let dir = TempDir::new(bucket);
        let config = write_config(&dir.path, &moto.endpoint, bucket, "replicas");
        let mut args = vec!["--config", config.as_str()];
        args.extend(extra);
        let servers = (0..3).map(|_| S3Server::start(&args)).collect();
        Some(Self { servers, config, _dir: dir, moto })
    }
}

/// A chart archive `name-version`, told apart from others of the same version by `tag`.
fn archive(name: &str, version: &str, tag: &str) -> Vec<u8> {
    ChartBuilder::new(name, version).with(&format!("{name}/values.yaml"), format!("tag: {tag}\n")).build()
}

fn v1_replace(server: &S3Server, space: &str, chart: &str, version: &str, archive: &[u8]) -> Response {
    let form =
        multipart::Form::new().part("chartfile", multipart::Part::bytes(archive.to_vec()).file_name("chart.tgz"));
    let url = server.url(&format!("/api/v1/spaces/{space}/charts/{chart}/versions/{version}"));
    client().put(url).multipart(form).send().unwrap()
}

fn v1_delete(server: &S3Server, space: &str, chart: &str, version: &str) -> Response {
    let url = server.url(&format!("/api/v1/spaces/{space}/charts/{chart}/versions/{version}"));
    client().delete(url).send().unwrap()
}

/// A ChartMuseum upload (`POST /api/{space}/charts` with the archive as the body).
fn cm_upload(server: &S3Server, space: &str, archive: &[u8]) -> Response {
    client().post(server.url(&format!("/api/{space}/charts"))).body(archive.to_vec()).send().unwrap()
}

/// The versions of a chart through `/api/v1` (which lists the bucket); none for an
/// unknown chart.
fn v1_versions(server: &S3Server, space: &str, chart: &str) -> BTreeSet<String> {
    let response = server.get(&format!("/api/v1/spaces/{space}/charts/{chart}/versions?limit=100000"));
    if response.status() == 404 {
        return BTreeSet::new();
    }
    assert_eq!(response.status(), 200);
    let body: Value = response.json().unwrap();
    body["items"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
}

/// `{version: digest}` of a chart in a replica's `/{space}/index.yaml`.
fn index_digests(server: &S3Server, space: &str, chart: &str) -> BTreeMap<String, String> {
    let response = server.get(&format!("/{space}/index.yaml"));
    assert_eq!(response.status(), 200, "{space}/index.yaml");
    let index: Value = chartyard_core::yaml::from_yaml(&response.bytes().unwrap(), "index").unwrap();
    let entries = index["entries"][chart].as_array().cloned().unwrap_or_default();
    entries
        .iter()
        .map(|e| (e["version"].as_str().unwrap().to_string(), e["digest"].as_str().unwrap().to_string()))
        .collect()
}

/// Polls `check` until it passes; fails after 10 s (a liveness bound, not a timing
/// assertion) with its last complaint.
fn eventually(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match check() {
            Ok(()) => return,
            Err(complaint) => {
                assert!(Instant::now() < deadline, "{what}: still not so after 10 s: {complaint}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// `{version: digest}` of a chart in a replica's ChartMuseum API (`/api/{space}/charts/{chart}`).
fn cm_digests(server: &S3Server, space: &str, chart: &str) -> BTreeMap<String, String> {
    let response = server.get(&format!("/api/{space}/charts/{chart}"));
    if response.status() == 404 {
        return BTreeMap::new();
    }
    assert_eq!(response.status(), 200, "/api/{space}/charts/{chart}");
    let entries: Value = response.json().unwrap();
    let entries = entries.as_array().unwrap();
    entries
        .iter()
        .map(|e| (e["version"].as_str().unwrap().to_string(), e["digest"].as_str().unwrap().to_string()))
        .collect()
}

/// Waits until `server`'s repository index lists exactly `expected` (`{version: digest}`)
/// for a chart, in `index.yaml` and through the ChartMuseum API.
fn index_becomes(server: &S3Server, space: &str, chart: &str, expected: &BTreeMap<String, String>) {
    eventually(&format!("{} index of {space}/{chart}", server.base), || {
        let found = index_digests(server, space, chart);
        if &found != expected {
            return Err(format!("index.yaml lists {found:?}, expected {expected:?}"));
        }
        let found = cm_digests(server, space, chart);
        if &found != expected {
            return Err(format!("/api/{space}/charts/{chart} lists {found:?}, expected {expected:?}"));
        }
        Ok(())
    });
}

/// Runs `work(0..n)` on `n` threads released at once; answers the results in order.
fn together<T: Send>(n: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|k| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(k)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Asserts that every replica serves `expected` for a version (byte-exact download), once
/// its index has followed the change log: a replica serves downloads from its index, which
/// may be one freshness window (250 ms) behind another replica's replace.
fn downloads_everywhere(cluster: &Cluster, space: &str, chart: &str, version: &str, expected: &[u8]) {
    for server in &cluster.servers {
        eventually(&format!("{} download of {space}/{chart}/{version}", server.base), || {
            let response = server.download(space, chart, version);
            if response.status() != 200 {
                return Err(format!("status {}", response.status()));
            }
            match response.bytes().unwrap().as_ref() == expected {
                true => Ok(()),
                false => Err("other bytes".into()),
            }
        });
    }
}

// ---- OCI helpers ----

/// A request body that sends all its bytes but the last, then waits until the other
/// bodies sharing its barrier got as far: racing requests then reach the store together.
struct GatedBody {
    data: Vec<u8>,
    sent: usize,
    gate: Option<Arc<Barrier>>,
}

impl GatedBody {
    fn new(data: Vec<u8>, gate: Arc<Barrier>) -> Self {
        Self { data, sent: 0, gate: Some(gate) }
    }
}

impl Read for GatedBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let last = self.data.len() - 1;
        if self.sent == last
            && let Some(gate) = self.gate.take()
        {
            gate.wait();
        }
        let end = if self.sent < last { last } else { self.data.len() };
        let n = buf.len().min(end - self.sent);
        buf[..n].copy_from_slice(&self.data[self.sent..self.sent + n]);
        self.sent += n;
        Ok(n)
    }
}

fn descriptor(media_type: &str, data: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest_of(data), "size": data.len()})
}

/// Pushes a blob in one request (`POST ?digest=`).
fn push_blob(server: &S3Server, repo: &str, data: &[u8]) {
    let response = client()
        .post(server.url(&format!("{repo}/blobs/uploads/?digest={}", digest_of(data))))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "push blob: {}", response.text().unwrap());
}

/// Pushes a chart's config and archive blobs to `space/name` on `server`, as `helm push`
/// does; answers the manifest to PUT under the version's tag.
fn chart_manifest(server: &S3Server, space: &str, name: &str, version: &str, archive: &[u8]) -> Vec<u8> {
    let repo = format!("/v2/{space}/{name}");
    let config = chart_config(name, version);
    push_blob(server, &repo, &config);
    push_blob(server, &repo, archive);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(HELM_CONFIG, &config),
        "layers": [descriptor(HELM_CHART, archive)],
    });
    serde_json::to_vec_pretty(&manifest).unwrap()
}

fn put_manifest(server: &S3Server, space: &str, name: &str, tag: &str, manifest: &[u8]) -> Response {
    client()
        .put(server.url(&format!("/v2/{space}/{name}/manifests/{tag}")))
        .header("content-type", OCI_MANIFEST)
        .body(manifest.to_vec())
        .send()
        .unwrap()
}

/// The manifest `GET /v2/{space}/{name}/manifests/{tag}` answers on `server`.
fn get_manifest(server: &S3Server, space: &str, name: &str, tag: &str) -> Value {
    let response = client()
        .get(server.url(&format!("/v2/{space}/{name}/manifests/{tag}")))
        .header("accept", OCI_MANIFEST)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{} manifest {space}/{name}:{tag}", server.base);
    response.json().unwrap()
}

fn patch_chunk(server: &S3Server, location: &str, start: usize, chunk: &[u8]) -> Response {
    client()
        .patch(server.url(location))
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{start}-{}", start + chunk.len() - 1))
        .body(chunk.to_vec())
        .send()
        .unwrap()
}

fn with_digest(location: &str, digest: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

fn start_session(server: &S3Server, repo: &str) -> String {
    let response = client().post(server.url(&format!("{repo}/blobs/uploads/"))).send().unwrap();
    assert_eq!(response.status(), 202, "{} POST upload: {}", server.base, response.text().unwrap());
    header(&response, "location")
}

// ---- tests ----

/// 60 uploads at once, spread over the replicas: each is stored once, and every replica
/// lists and serves all of them.
#[test]
fn concurrent_uploads_over_replicas_download_from_every_replica() {
    let Some(cluster) = Cluster::start("spread", &[]) else { return };
    let archives: Vec<Vec<u8>> = (0..60).map(|n| archive("many", &format!("1.0.{n}"), &n.to_string())).collect();
    let statuses = together(60, |n| cluster.servers[n % 3].upload("team", &archives[n]).status().as_u16());
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");

    let expected: BTreeSet<String> = (0..60).map(|n| format!("1.0.{n}")).collect();
    for server in &cluster.servers {
        assert_eq!(v1_versions(server, "team", "many"), expected, "{}", server.base);
    }
    for (n, bytes) in archives.iter().enumerate() {
        downloads_everywhere(&cluster, "team", "many", &format!("1.0.{n}"), bytes);
    }
}

/// The same 60 uploads, with every replica's index of the space already loaded: each
/// index comes to list all of them with their digests.
#[test]
fn index_across_replicas_lists_concurrent_uploads() {
    let Some(cluster) = Cluster::start("spread-index", &[]) else { return };
    let first = archive("many", "0.1.0", "first");
    assert_eq!(cluster.servers[0].upload("team", &first).status(), 201);
    let mut expected = BTreeMap::from([("0.1.0".to_string(), sha256(&first))]);
    for server in &cluster.servers {
        index_becomes(server, "team", "many", &expected);
    }

    let archives: Vec<Vec<u8>> = (0..60).map(|n| archive("many", &format!("1.0.{n}"), &n.to_string())).collect();
    let statuses = together(60, |n| cluster.servers[n % 3].upload("team", &archives[n]).status().as_u16());
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    expected.extend(archives.iter().enumerate().map(|(n, a)| (format!("1.0.{n}"), sha256(a))));
    for server in &cluster.servers {
        index_becomes(server, "team", "many", &expected);
    }
}

/// One version created at once through different APIs on different replicas: exactly
/// one succeeds, and every replica serves the winner's archive, through `/api/v1` and
/// as an OCI manifest naming it.
#[test]
fn same_version_races_across_replicas_and_apis_have_one_winner() {
    let Some(cluster) = Cluster::start("races", &[]) else { return };
    // Contenders: 0 = /api/v1 on replica 0, 1 = ChartMuseum on replica 1, 2 = OCI on replica 2.
    let mixes: [&[usize]; 4] = [&[0, 1], &[0, 2], &[1, 2], &[0, 1, 2]];
    let mut winners_seen = BTreeSet::new();
    for (m, mix) in mixes.iter().enumerate() {
        for round in 0..3 {
            let version = format!("{m}.{round}.0");
            let archives: Vec<Vec<u8>> =
                mix.iter().map(|api| archive("race", &version, &format!("api-{api}-round-{round}"))).collect();
            // The OCI contender's blobs go up first; the race is its manifest PUT.
            let manifests: Vec<Option<Vec<u8>>> = mix
                .iter()
                .zip(&archives)
                .map(|(api, bytes)| {
                    (*api == 2).then(|| chart_manifest(&cluster.servers[2], "race", "race", &version, bytes))
                })
                .collect();
            let statuses = together(mix.len(), |k| {
                let server = &cluster.servers[mix[k]];
                // A manifest PUT reads its blobs back before it stores the version, so it
                // is slower than the others; later rounds give it a head start, so that
                // each API gets to win some (the outcome is checked, not the order).
                if mix[k] != 2 {
                    std::thread::sleep(Duration::from_millis(20 * round as u64));
                }
                let response = match mix[k] {
                    0 => server.upload("race", &archives[k]),
                    1 => cm_upload(server, "race", &archives[k]),
                    _ => put_manifest(server, "race", "race", &version, manifests[k].as_ref().unwrap()),
                };
                response.status().as_u16()
            });
            for (k, status) in statuses.iter().enumerate() {
                let losing = if mix[k] == 2 { [403, 409] } else { [409, 409] };
                assert!(*status == 201 || losing.contains(status), "{version} api {}: {statuses:?}", mix[k]);
            }
            let winners: Vec<usize> = (0..mix.len()).filter(|k| statuses[*k] == 201).collect();
            assert_eq!(winners.len(), 1, "{version} {mix:?}: {statuses:?}");
            let winner = &archives[winners[0]];
            winners_seen.insert(mix[winners[0]]);
            downloads_everywhere(&cluster, "race", "race", &version, winner);
            for server in &cluster.servers {
                let manifest = get_manifest(server, "race", "race", &version);
                assert_eq!(manifest["layers"][0]["digest"], digest_of(winner), "{} {version}", server.base);
            }
        }
    }
    let versions = v1_versions(&cluster.servers[1], "race", "race");
    assert_eq!(versions.len(), 12, "{versions:?}");
    eprintln!("winning APIs seen: {winners_seen:?}");
}

/// A replace and a delete on one replica reach the others' downloads and `/api/v1`
/// listings, also where those replicas had read the version before.
#[test]
fn deletes_and_replaces_on_one_replica_reach_the_others() {
    let Some(cluster) = Cluster::start("changes", &[]) else { return };
    let [a, b, c] = [&cluster.servers[0], &cluster.servers[1], &cluster.servers[2]];
    let one = archive("app", "1.0.0", "first");
    let two = archive("app", "2.0.0", "first");
    assert_eq!(a.upload("team", &one).status(), 201);
    assert_eq!(a.upload("team", &two).status(), 201);
    downloads_everywhere(&cluster, "team", "app", "1.0.0", &one);
    downloads_everywhere(&cluster, "team", "app", "2.0.0", &two);

    let replaced = archive("app", "1.0.0", "replaced");
    assert_eq!(v1_replace(a, "team", "app", "1.0.0", &replaced).status(), 200);
    downloads_everywhere(&cluster, "team", "app", "1.0.0", &replaced);
    for server in [b, c] {
        let manifest = get_manifest(server, "team", "app", "1.0.0");
        assert_eq!(manifest["layers"][0]["digest"], digest_of(&replaced), "{}", server.base);
    }

    assert_eq!(v1_delete(a, "team", "app", "2.0.0").status(), 204);
    for server in [b, c] {
        // Listings read the store; downloads the index, within its freshness window.
        eventually(&format!("{} download of a deleted version", server.base), || {
            match server.download("team", "app", "2.0.0").status().as_u16() {
                404 => Ok(()),
                status => Err(format!("status {status}")),
            }
        });
        assert_eq!(v1_versions(server, "team", "app"), BTreeSet::from(["1.0.0".to_string()]), "{}", server.base);
        assert_eq!(v1_delete(server, "team", "app", "2.0.0").status(), 404, "{}", server.base);
    }
}

/// The same changes as seen by the other replicas' indexes, loaded before the changes.
#[test]
fn index_across_replicas_follows_deletes_and_replaces() {
    let Some(cluster) = Cluster::start("changes-index", &[]) else { return };
    let a = &cluster.servers[0];
    let one = archive("app", "1.0.0", "first");
    let two = archive("app", "2.0.0", "first");
    assert_eq!(a.upload("team", &one).status(), 201);
    assert_eq!(a.upload("team", &two).status(), 201);
    let mut expected = BTreeMap::from([("1.0.0".to_string(), sha256(&one)), ("2.0.0".to_string(), sha256(&two))]);
    for server in &cluster.servers {
        index_becomes(server, "team", "app", &expected);
    }

    let replaced = archive("app", "1.0.0", "replaced");
    assert_eq!(v1_replace(a, "team", "app", "1.0.0", &replaced).status(), 200);
    expected.insert("1.0.0".to_string(), sha256(&replaced));
    for server in &cluster.servers {
        index_becomes(server, "team", "app", &expected);
    }

    assert_eq!(v1_delete(a, "team", "app", "2.0.0").status(), 204);
    expected.remove("2.0.0");
    for server in &cluster.servers {
        index_becomes(server, "team", "app", &expected);
    }
}

/// `helm push` to one replica; `helm pull` over OCI from the others gets the same bytes.
#[test]
fn helm_push_on_one_replica_pulls_from_the_others() {
    let Some(cluster) = Cluster::start("helm-oci", &[]) else { return };
    let mut ran = 0;
    for major in [3, 4] {
        let Some(helm) = Helm::new(major, "replica-helm").map(Helm::plain_http) else { continue };
        let space = format!("helm{major}");
        let work = TempDir::new("replica-helm-work");
        let chart = archive("web", "1.2.3", &format!("helm{major}"));
        let pushed = write_file(&work.path, "web-1.2.3.tgz", &chart);
        let a = &cluster.servers[0];
        helm.run(&["push", &pushed, &format!("oci://{}/{space}", a.base.trim_start_matches("http://"))]);
        for server in &cluster.servers[1..] {
            let out = TempDir::new("replica-helm-pull");
            let reference = format!("oci://{}/{space}/web", server.base.trim_start_matches("http://"));
            helm.run(&["pull", &reference, "--version", "1.2.3", "-d", out.path.to_str().unwrap()]);
            assert_eq!(std::fs::read(out.path.join("web-1.2.3.tgz")).unwrap(), chart, "{}", server.base);
        }
        downloads_everywhere(&cluster, &space, "web", "1.2.3", &chart);
        ran += 1;
    }
    eprintln!("checked with {ran} helm version(s)");
}

/// `helm push` to one replica; another replica's Helm repository (added before the push)
/// serves it to `helm repo update` and `helm pull repo/chart`.
#[test]
fn index_across_replicas_serves_a_helm_push_to_helm_repo() {
    let Some(cluster) = Cluster::start("helm-repo", &[]) else { return };
    let Some(helm) = Helm::new(3, "replica-repo").map(Helm::plain_http) else { return };
    let work = TempDir::new("replica-repo-work");
    let [a, b] = [&cluster.servers[0], &cluster.servers[1]];
    let registry = format!("oci://{}/team", a.base.trim_start_matches("http://"));
    let first = archive("web", "1.0.0", "first");
    helm.run(&["push", &write_file(&work.path, "web-1.0.0.tgz", &first), &registry]);
    // The repository is added on b while it holds 1.0.0 only.
    eventually("b's index lists 1.0.0", || {
        let found = index_digests(b, "team", "web");
        if found.contains_key("1.0.0") { Ok(()) } else { Err(format!("{found:?}")) }
    });
    helm.run(&["repo", "add", "team", &b.url("/team")]);

    let second = archive("web", "2.0.0", "second");
    helm.run(&["push", &write_file(&work.path, "web-2.0.0.tgz", &second), &registry]);
    let expected = BTreeMap::from([("1.0.0".to_string(), sha256(&first)), ("2.0.0".to_string(), sha256(&second))]);
    index_becomes(b, "team", "web", &expected);
    helm.run(&["repo", "update"]);
    let out = TempDir::new("replica-repo-pull");
    helm.run(&["pull", "team/web", "-d", out.path.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.path.join("web-2.0.0.tgz")).unwrap(), second, "latest is 2.0.0");
    helm.run(&["pull", "team/web", "--version", "1.0.0", "-d", out.path.to_str().unwrap()]);
    assert_eq!(std::fs::read(out.path.join("web-1.0.0.tgz")).unwrap(), first);
}

/// An OCI upload session started on one replica, continued on a second and completed on
/// the third; two replicas writing one offset at once give one 202 and one 416.
#[test]
fn an_oci_upload_session_moves_across_replicas() {
    let Some(cluster) = Cluster::start("sessions", &[]) else { return };
    let [a, b, c] = [&cluster.servers[0], &cluster.servers[1], &cluster.servers[2]];
    let repo = "/v2/team/artifact";
    let blob: Vec<u8> = (0..300_000u32).map(|n| (n * 7 % 251) as u8).collect();
    let (first, rest) = blob.split_at(100_000);
    let (second, third) = rest.split_at(10_000);

    let location = start_session(a, repo);
    let response = patch_chunk(b, &location, 0, first);
    assert_eq!(response.status(), 202, "PATCH on b: {}", response.text().unwrap());
    assert_eq!(header(&response, "range"), "0-99999");
    let location = header(&response, "location");
    // c sees the session's progress.
    let response = client().get(c.url(&location)).send().unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(header(&response, "range"), "0-99999");

    // The same offset from two replicas at once, with different bytes: one lands, the
    // other gets 416. Forty rounds, each pair of replicas in turn, since a lost race
    // shows only when both requests reach the store together.
    let mut expected = first.to_vec();
    let mut location = location;
    for round in 0..40usize {
        let racers = [&cluster.servers[round % 3], &cluster.servers[(round + 1) % 3]];
        let candidates: Vec<Vec<u8>> =
            (0..2).map(|k| second.iter().map(|byte| byte ^ (round * 2 + k + 1) as u8).collect()).collect();
        let offset = expected.len();
        let gate = Arc::new(Barrier::new(2));
        let answers = together(2, |k| {
            let response = client()
                .patch(racers[k].url(&location))
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{offset}-{}", offset + candidates[k].len() - 1))
                .body(Body::sized(GatedBody::new(candidates[k].clone(), gate.clone()), candidates[k].len() as u64))
                .send()
                .unwrap();
            let status = response.status().as_u16();
            (status, response.headers().get("location").map(|l| l.to_str().unwrap().to_string()))
        });
        let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
        statuses.sort();
        assert_eq!(statuses, [202, 416], "round {round}: {answers:?}");
        let landed = answers.iter().position(|(s, _)| *s == 202).unwrap();
        location = answers[landed].1.clone().unwrap();
        expected.extend_from_slice(&candidates[landed]);
        // Every replica sees the winner's chunk in place.
        for server in &cluster.servers {
            let response = client().get(server.url(&location)).send().unwrap();
            assert_eq!(header(&response, "range"), format!("0-{}", expected.len() - 1), "{}", server.base);
        }
    }
    expected.extend_from_slice(third);

    // The last chunk and the digest go to c.
    let digest = digest_of(&expected);
    let response = client()
        .put(c.url(&with_digest(&location, &digest)))
        .header("content-type", "application/octet-stream")
        .body(third.to_vec())
        .send()
        .unwrap();
    assert_eq!(response.status(), 201, "PUT on c: {}", response.text().unwrap());
    for server in &cluster.servers {
        let body = server.bytes(&format!("{repo}/blobs/{digest}"));
        assert!(body == expected, "{} serves other bytes for the blob", server.base);
    }
    // The completed session is gone on every replica.
    for server in &cluster.servers {
        let status = client().get(server.url(&location)).send().unwrap().status();
        assert_eq!(status, 404, "{}", server.base);
    }
    let leftovers: Vec<String> =
        cluster.moto.keys("sessions").into_iter().filter(|k| k.contains("/uploads/")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Sessions started on one replica and completed on another free their place on the
/// first: the cap on open sessions counts what is open in the bucket, not what one
/// process has started.
#[test]
fn upload_sessions_completed_on_another_replica_free_their_place() {
    let Some(cluster) = Cluster::start("session-cap", &["--max-upload-sessions", "2"]) else { return };
    let [a, b] = [&cluster.servers[0], &cluster.servers[1]];
    let repo = "/v2/team/capped";
    for n in 0..6u8 {
        let location = start_session(a, repo);
        let data = vec![n; 1000];
        let response = client()
            .put(b.url(&with_digest(&location, &digest_of(&data))))
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .unwrap();
        assert_eq!(response.status(), 201, "session {n}: {}", response.text().unwrap());
    }
    // Two open sessions (started on b) fill the cap, on a too; cancelling one frees a place.
    let open = [start_session(b, repo), start_session(b, repo)];
    let refused = client().post(a.url(&format!("{repo}/blobs/uploads/"))).send().unwrap();
    assert_eq!(refused.status(), 429, "{}", refused.text().unwrap());
    assert_eq!(client().delete(a.url(&open[0])).send().unwrap().status(), 204);
    start_session(a, repo);
}

/// A replica killed (SIGKILL) amid uploads: every upload it acknowledged is on every
/// replica, and every version listed anywhere is whole (its download hashes to its
/// digest in the index of the restarted replica, which reads the bucket afresh).
#[test]
fn a_replica_killed_mid_upload_loses_nothing_acknowledged() {
    let Some(mut cluster) = Cluster::start("killed", &[]) else { return };
    let acknowledged = Mutex::new(BTreeMap::new());
    let attempted = Mutex::new(BTreeMap::new());
    let count = AtomicUsize::new(0);
    let base = cluster.servers[0].base.clone();
    std::thread::scope(|scope| {
        for worker in 0..6 {
            let (acknowledged, attempted, count, base) = (&acknowledged, &attempted, &count, &base);
            scope.spawn(move || {
                for n in 0.. {
                    let version = format!("{worker}.{n}.0");
                    let bytes = archive("doomed", &version, "killed");
                    attempted.lock().unwrap().insert(version.clone(), bytes.clone());
                    let form = multipart::Form::new()
                        .part("chartfile", multipart::Part::bytes(bytes.clone()).file_name("chart.tgz"));
                    let sent = client().post(format!("{base}/api/v1/spaces/team/charts")).multipart(form).send();
                    match sent.map(|r| r.status().as_u16()) {
                        Ok(201) => {
                            acknowledged.lock().unwrap().insert(version, bytes);
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(status) => panic!("upload {version}: {status}"),
                        Err(_) => return, // the server is gone
                    }
                }
            });
        }
        // (Bounded, in case the uploads fail: the workers' panics then tell why.)
        let deadline = Instant::now() + Duration::from_secs(60);
        while count.load(Ordering::SeqCst) < 30 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        cluster.servers[0].kill();
    });
    cluster.servers[0].restart();
    let acknowledged = acknowledged.into_inner().unwrap();
    let attempted = attempted.into_inner().unwrap();
    assert!(acknowledged.len() >= 30);

    let index = index_digests(&cluster.servers[0], "team", "doomed");
    for server in &cluster.servers {
        let listed = v1_versions(server, "team", "doomed");
        let missing: Vec<&String> = acknowledged.keys().filter(|v| !listed.contains(*v)).collect();
        assert!(missing.is_empty(), "{} lacks acknowledged {missing:?}", server.base);
        assert_eq!(listed, index.keys().cloned().collect::<BTreeSet<_>>(), "{}", server.base);
        for version in &listed {
            let response = server.download("team", "doomed", version);
            assert_eq!(response.status(), 200, "{} {version}", server.base);
            let body = response.bytes().unwrap();
            assert_eq!(sha256(&body), index[version], "{} {version} is not whole", server.base);
            assert!(body.as_ref() == attempted[version].as_slice(), "{} {version}", server.base);
        }
    }
    let cut = attempted.len() - acknowledged.len();
    eprintln!("{} acknowledged, {} cut off by the kill, {} listed", acknowledged.len(), cut, index.len());
}

/// `chartyard gc` on the bucket while every replica keeps uploading: nothing acknowledged
/// is lost; afterwards (uploads stopped) a gc without grace period removes what was
/// deleted and still keeps every live version.
#[test]
fn gc_while_replicas_upload_loses_nothing_acknowledged() {
    let Some(cluster) = Cluster::start("collected", &[]) else { return };
    let gc = |grace: &str| {
        let output = run_to_exit(chartyard(&["gc", "--config", &cluster.config, "--grace-seconds", grace]));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "gc: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    };
    // Garbage for gc to find: versions deleted before it runs.
    let dead: Vec<Vec<u8>> = (0..5).map(|n| archive("dead", &format!("1.0.{n}"), "dead")).collect();
    for (n, bytes) in dead.iter().enumerate() {
        assert_eq!(cluster.servers[n % 3].upload("team", bytes).status(), 201);
        assert_eq!(v1_delete(&cluster.servers[(n + 1) % 3], "team", "dead", &format!("1.0.{n}")).status(), 204);
    }

    let acknowledged = Mutex::new(BTreeMap::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for (r, server) in cluster.servers.iter().enumerate() {
            let (acknowledged, stop) = (&acknowledged, &stop);
            scope.spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) && n < 40 {
                    let version = format!("{r}.{n}.0");
                    let bytes = archive("live", &version, "live");
                    let status = server.upload("team", &bytes).status();
                    assert_eq!(status, 201, "{version}");
                    acknowledged.lock().unwrap().insert(version, bytes);
                    n += 1;
                }
            });
        }
        for _ in 0..3 {
            gc("5");
        }
        stop.store(true, Ordering::SeqCst);
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(!acknowledged.is_empty());
    let check = || {
        for (version, bytes) in &acknowledged {
            downloads_everywhere(&cluster, "team", "live", version, bytes);
        }
    };
    check();

    gc("0");
    check();
    let keys = cluster.moto.keys("collected");
    for bytes in &dead {
        let hex = sha256(bytes);
        assert!(!keys.iter().any(|k| k.ends_with(&hex)), "the deleted version's archive is still there");
    }
    eprintln!("{} uploads acknowledged during gc", acknowledged.len());
}

/// The paths and statuses of a space's audit log through one replica, newest first.
fn audit_of(server: &S3Server, space: &str) -> Vec<(String, String, u64)> {
    let response = server.get(&format!("/api/v1/spaces/{space}/audit?limit=1000"));
    assert_eq!(response.status(), 200, "{}", server.base);
    let body: Value = response.json().unwrap();
    let text = |entry: &Value, key: &str| entry[key].as_str().unwrap_or_default().to_string();
    let entries = body["items"].as_array().unwrap();
    entries.iter().map(|e| (text(e, "method"), text(e, "path"), e["status"].as_u64().unwrap())).collect()
}

#[test]
fn audit_entries_of_every_replica_are_listed_by_every_replica_and_trimmed_by_gc() {
    let Some(cluster) = Cluster::start("audited", &[]) else { return };
    let [a, b, c] = [&cluster.servers[0], &cluster.servers[1], &cluster.servers[2]];
    let version = "/api/v1/spaces/team/charts/app/versions/1.0.0";
    assert_eq!(a.upload("team", &archive("app", "1.0.0", "first")).status(), 201);
    eventually("the upload's entry", || match audit_of(a, "team").len() {
        1 => Ok(()),
        n => Err(format!("{n} entries")),
    });
    assert_eq!(v1_replace(b, "team", "app", "1.0.0", &archive("app", "1.0.0", "second")).status(), 200);
    eventually("the replacement's entry", || match audit_of(b, "team").len() {
        2 => Ok(()),
        n => Err(format!("{n} entries")),
    });
    assert_eq!(v1_delete(c, "team", "app", "1.0.0").status(), 204);
    let expected = vec![
        ("DELETE".to_string(), version.to_string(), 204),
        ("PUT".to_string(), version.to_string(), 200),
        ("POST".to_string(), "/api/v1/spaces/team/charts".to_string(), 201),
    ];
    for server in [a, b, c] {
        eventually(&format!("{} lists every replica's entries", server.base), || {
            let seen = audit_of(server, "team");
            if seen == expected { Ok(()) } else { Err(format!("{seen:?}")) }
        });
    }

    // gc keeps the newest `auditretention` of each space.
    let args = ["gc", "--config", &cluster.config, "--grace-seconds", "3600", "--audit-retention", "2"];
    let output = run_to_exit(chartyard(&args));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "gc: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("deleted audit entries: 1"), "{stdout}");
    assert_eq!(audit_of(c, "team"), expected[..2].to_vec());

    // Deleting the space deletes its log: made again, it has none.
    assert_eq!(client().delete(a.url("/api/v1/spaces/team")).send().unwrap().status(), 204);
    assert_eq!(client().post(b.url("/api/v1/spaces?space=team")).send().unwrap().status(), 201);
    eventually("the new space's log", || match audit_of(c, "team").as_slice() {
        // Only its creation.
        [(method, path, 201)] if method == "POST" && path == "/api/v1/spaces" => Ok(()),
        seen => Err(format!("{seen:?}")),
    });
}
