//! Load generator for the bench scripts: uploads distinct small chart versions through the
//! `/api/v1` API, or downloads a set of URLs, with a given concurrency, and prints one JSON
//! line of results.
//!
//! ```text
//! loadgen upload      BASE_URLS SPACE CHART FIRST_PATCH COUNT CONCURRENCY [WRITE_DIR]
//! loadgen download    URL_PREFIX URL_SUFFIX FIRST_PATCH COUNT CONCURRENCY ROUNDS CHART
//! loadgen oci-push    BASE_URL REPOSITORY BLOB_BYTES COUNT CONCURRENCY   (POST + monolithic PUT)
//! loadgen oci-pull    BASE_URL REPOSITORY BLOB_BYTES COUNT CONCURRENCY   (GET of the same blobs)
//! loadgen propagation BASE_A BASE_B SPACE COUNT [TIMEOUT_MS]
//! ```
//! Version `i` is `1.0.{i}`; `download` fetches `{URL_PREFIX}{CHART}-1.0.{i}{URL_SUFFIX}`
//! style URLs built from the template (`{v}` in the prefix is replaced by the version).
//! `upload` takes one base URL or several separated by commas, and sends upload `i` to
//! URL `i mod n` (round robin over replicas).
//!
//! `propagation` measures how long a write on one replica takes to show on another:
//! `COUNT` times, it uploads version `1.0.{i}` of chart `propagation` to `BASE_A`, then
//! polls `BASE_B/{SPACE}/index.yaml` every 10 ms with `If-None-Match` of the last ETag
//! until the index lists that version; the time is counted from the upload's answer.
//! A sample that has not propagated after `TIMEOUT_MS` (default 2000) counts as a
//! timeout; after 3 timeouts in a row the remaining samples are skipped.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

fn chart_archive(chart: &str, version: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let template = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: {{ .Values.replicaCount }}\n".to_string();
    // About 4 KiB of incompressible text, so the archive is the size of a typical small chart.
    let mut seed = version.bytes().fold(0x9e37_79b9_7f4a_7c15_u64, |h, b| h.rotate_left(5) ^ b as u64);
    let readme: String = (0..512)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            format!("{:016x}", seed)[..8].to_string()
        })
        .collect();
    let files = [
        (
            "Chart.yaml",
            format!(
                "apiVersion: v2\nname: {chart}\nversion: {version}\ndescription: load test chart\nappVersion: \"1.0\"\n"
            ),
        ),
        ("values.yaml", "replicaCount: 1\nimage:\n  repository: nginx\n  tag: stable\n".to_string()),
        ("templates/deployment.yaml", template),
        ("README.md", readme),
    ];
    for (name, body) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(body.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, format!("{chart}/{name}"), body.as_bytes()).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

/// Blob `i` of a given size: distinct, incompressible, the same in every run.
fn blob(i: usize, size: usize) -> (Vec<u8>, String) {
    use sha2::Digest;
    let mut state = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ size as u64;
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let digest = format!("sha256:{:x}", sha2::Sha256::digest(&bytes));
    (bytes, digest)
}

struct Outcome {
    latency: Duration,
    ok: bool,
    bytes: usize,
}

fn report(kind: &str, outcomes: &mut [Outcome], elapsed: Duration) {
    outcomes.sort_by_key(|o| o.latency);
    let n = outcomes.len();
    let pct = |p: f64| outcomes[((n as f64 * p) as usize).min(n - 1)].latency.as_secs_f64() * 1000.0;
    let errors = outcomes.iter().filter(|o| !o.ok).count();
    let bytes: usize = outcomes.iter().map(|o| o.bytes).sum();
    println!(
        "{{\"kind\":\"{kind}\",\"requests\":{n},\"errors\":{errors},\"seconds\":{:.3},\"per_second\":{:.1},\"mib_per_second\":{:.2},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        bytes as f64 / elapsed.as_secs_f64() / 1048576.0,
        pct(0.50),
        pct(0.99)
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `LOADGEN_AUTHORIZATION`: an Authorization header every request carries.
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(value) = std::env::var("LOADGEN_AUTHORIZATION") {
        headers.insert(reqwest::header::AUTHORIZATION, value.parse().expect("a header value"));
    }
    let client = reqwest::Client::builder().pool_max_idle_per_host(512).default_headers(headers).build().unwrap();
    let number = |i: usize| args[i].parse::<usize>().expect("a number");
    match args.get(1).map(String::as_str) {
        Some("upload") => {
            let (bases, space, chart) = (args[2].clone(), args[3].clone(), args[4].clone());
            let (first, count, concurrency) = (number(5), number(6), number(7));
            let write_dir = args.get(8).cloned();
            let archives: Vec<(String, Vec<u8>)> = (first..first + count)
                .map(|i| {
                    let version = format!("1.0.{i}");
                    let archive = chart_archive(&chart, &version);
                    if let Some(dir) = &write_dir {
                        std::fs::write(format!("{dir}/{chart}-{version}.tgz"), &archive).unwrap();
                    }
                    (version, archive)
                })
                .collect();
            let urls: Arc<Vec<String>> =
                Arc::new(bases.split(',').map(|base| format!("{base}/api/v1/spaces/{space}/charts")).collect());
            let started = Instant::now();
            let mut outcomes: Vec<Outcome> = stream::iter(archives.into_iter().enumerate())
                .map(|(i, (_, archive))| {
                    let (client, urls) = (client.clone(), urls.clone());
                    async move {
                        let len = archive.len();
                        let part = reqwest::multipart::Part::bytes(archive).file_name("chart.tgz");
                        let form = reqwest::multipart::Form::new().part("chartfile", part);
                        let t = Instant::now();
                        let ok = client
                            .post(&urls[i % urls.len()])
                            .multipart(form)
                            .send()
                            .await
                            .is_ok_and(|r| r.status() == 201);
                        Outcome { latency: t.elapsed(), ok, bytes: len }
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            report("upload", &mut outcomes, started.elapsed());
        }
        Some("download") => {
            let (prefix, suffix) = (args[2].clone(), args[3].clone());
            let (first, count, concurrency, rounds) = (number(4), number(5), number(6), number(7));
            let chart = args[8].clone();
            let urls: Vec<String> = (0..rounds)
                .flat_map(|_| first..first + count)
                .map(|i| {
                    let version = format!("1.0.{i}");
                    format!("{}{suffix}", prefix.replace("{v}", &version).replace("{c}", &chart))
                })
                .collect();
            let started = Instant::now();
            let mut outcomes: Vec<Outcome> = stream::iter(urls)
                .map(|url| {
                    let client = client.clone();
                    async move {
                        let t = Instant::now();
                        let body = match client.get(&url).send().await {
                            Ok(r) if r.status() == 200 => r.bytes().await.ok(),
                            _ => None,
                        };
                        Outcome { latency: t.elapsed(), ok: body.is_some(), bytes: body.map_or(0, |b| b.len()) }
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            report("download", &mut outcomes, started.elapsed());
        }
        Some(kind @ ("oci-push" | "oci-pull")) => {
            let (base, repository) = (args[2].clone(), args[3].clone());
            let (size, count, concurrency) = (number(4), number(5), number(6));
            let blobs: Vec<(Vec<u8>, String)> = (0..count).map(|i| blob(i, size)).collect();
            let started = Instant::now();
            let push = kind == "oci-push";
            let mut outcomes: Vec<Outcome> = stream::iter(blobs)
                .map(|(bytes, digest)| {
                    let (client, base, repository) = (client.clone(), base.clone(), repository.clone());
                    async move {
                        let t = Instant::now();
                        let len = bytes.len();
                        let ok = if push {
                            push_blob(&client, &base, &repository, bytes, &digest).await
                        } else {
                            let url = format!("{base}/v2/{repository}/blobs/{digest}");
                            match client.get(&url).send().await {
                                Ok(r) if r.status() == 200 => r.bytes().await.is_ok_and(|b| b.len() == len),
                                _ => false,
                            }
                        };
                        Outcome { latency: t.elapsed(), ok, bytes: len }
                    }
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
            report(kind, &mut outcomes, started.elapsed());
        }
        Some("propagation") => {
            let (a, b, space) = (args[2].clone(), args[3].clone(), args[4].clone());
            let count = number(5);
            let timeout = Duration::from_millis(args.get(6).map_or(2000, |t| t.parse().expect("a number")));
            propagation(&client, &a, &b, &space, count, timeout).await;
        }
        _ => {
            eprintln!("usage: see the doc comment of examples/loadgen.rs");
            std::process::exit(2);
        }
    }
}

/// `POST /blobs/uploads/` then a monolithic `PUT <Location>&digest=`, as helm and most
/// clients push.
async fn push_blob(client: &reqwest::Client, base: &str, repository: &str, bytes: Vec<u8>, digest: &str) -> bool {
    let Ok(started) = client.post(format!("{base}/v2/{repository}/blobs/uploads/")).send().await else { return false };
    let Some(location) = started.headers().get("location").and_then(|l| l.to_str().ok()) else { return false };
    let location = if location.starts_with("http") { location.to_string() } else { format!("{base}{location}") };
    let separator = if location.contains('?') { '&' } else { '?' };
    let url = format!("{location}{separator}digest={digest}");
    client
        .put(url)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .is_ok_and(|r| r.status() == 201)
}

/// The `propagation` subcommand (see the module comment); prints one JSON line.
async fn propagation(client: &reqwest::Client, a: &str, b: &str, space: &str, count: usize, timeout: Duration) {
    let chart = "propagation";
    let index_url = format!("{b}/{space}/index.yaml");
    let upload_url = format!("{a}/api/v1/spaces/{space}/charts");
    // The ETag B gives now (this also loads B's index of the space).
    let mut etag = match client.get(&index_url).send().await {
        Ok(r) => r.headers().get("etag").and_then(|e| e.to_str().ok()).map(str::to_string),
        Err(_) => None,
    };
    let (mut latencies, mut errors, mut timeouts, mut in_a_row, mut polls) = (Vec::new(), 0, 0, 0, 0usize);
    for i in 0..count {
        if in_a_row == 3 {
            break;
        }
        let version = format!("1.0.{i}");
        let part = reqwest::multipart::Part::bytes(chart_archive(chart, &version)).file_name("chart.tgz");
        let form = reqwest::multipart::Form::new().part("chartfile", part);
        if !client.post(&upload_url).multipart(form).send().await.is_ok_and(|r| r.status() == 201) {
            errors += 1;
            continue;
        }
        let uploaded = Instant::now();
        let needle = format!("charts/{chart}-{version}.tgz");
        let seen = loop {
            let mut request = client.get(&index_url);
            if let Some(etag) = &etag {
                request = request.header("if-none-match", etag);
            }
            polls += 1;
            if let Ok(response) = request.send().await
                && response.status() == 200
            {
                etag = response.headers().get("etag").and_then(|e| e.to_str().ok()).map(str::to_string);
                if response.text().await.is_ok_and(|body| body.contains(&needle)) {
                    break Some(uploaded.elapsed());
                }
            }
            if uploaded.elapsed() >= timeout {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        match seen {
            Some(latency) => {
                latencies.push(latency);
                in_a_row = 0;
            }
            None => {
                timeouts += 1;
                in_a_row += 1;
            }
        }
    }
    latencies.sort();
    let pct = |p: f64| match latencies.len() {
        0 => "null".to_string(),
        n => format!("{:.1}", latencies[((n as f64 * p) as usize).min(n - 1)].as_secs_f64() * 1000.0),
    };
    println!(
        "{{\"kind\":\"propagation\",\"samples\":{count},\"propagated\":{},\"timeouts\":{timeouts},\"errors\":{errors},\"polls\":{polls},\"timeout_ms\":{},\"p50_ms\":{},\"p99_ms\":{},\"max_ms\":{}}}",
        latencies.len(),
        timeout.as_millis(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
}
