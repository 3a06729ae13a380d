//! Concurrency: simultaneous requests (released together by a barrier) never corrupt the
//! registry, never answer 5xx, and resolve races as the API promises: one winner per
//! version, 409 for the losers, 423 only when locks may not wait.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::time::{Duration, Instant};

use crate::common::{ChartBuilder, Server, record_files, sha256};
use reqwest::blocking::{Client, multipart};
use serde_json::{Value, json};

// ---- helpers ----

/// What one request got back; status 0 when no answer arrived at all.
#[derive(Debug, Clone)]
struct Answer {
    op: &'static str,
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {}", self.op, self.text()))
    }

    /// Asserts the status is one of `allowed`, and that an error answer has the seed's
    /// JSON error body (a 423 with reason `ResourceLocking`).
    fn check(&self, allowed: &[u16]) -> &Self {
        assert!(
            allowed.contains(&self.status),
            "{}: status {} not in {allowed:?}; body: {}",
            self.op,
            self.status,
            self.text()
        );
        if self.status >= 400 {
            let body = self.json();
            let reason =
                body["reason"].as_str().unwrap_or_else(|| panic!("{}: no reason in error body {body}", self.op));
            assert!(["ReasonRequest", "ReasonInternal", "ResourceLocking"].contains(&reason), "{}: {body}", self.op);
            assert!(body["message"].is_string(), "{}: {body}", self.op);
            if self.status == 423 {
                assert_eq!(reason, "ResourceLocking", "{}: {body}", self.op);
            }
        }
        self
    }
}

/// A client of one server's `/api/v1`, usable from any thread; it never panics, so that a
/// failing request cannot leave other threads stuck at a barrier.
#[derive(Clone)]
struct Api {
    base: String,
    client: Client,
}

impl Api {
    fn new(server: &Server) -> Self {
        Self { base: server.api(""), client: Client::builder().timeout(Duration::from_secs(60)).build().unwrap() }
    }

    fn send(&self, op: &'static str, request: reqwest::blocking::RequestBuilder) -> Answer {
        match request.send() {
            Ok(response) => {
                let status = response.status().as_u16();
                let body = response
                    .bytes()
                    .map(|b| b.to_vec())
                    .unwrap_or_else(|e| format!("reading the body failed: {e}").into_bytes());
                Answer { op, status, body }
            }
            Err(e) => Answer { op, status: 0, body: format!("request failed: {e}").into_bytes() },
        }
    }

    fn form(archive: &[u8]) -> multipart::Form {
        multipart::Form::new().part("chartfile", multipart::Part::bytes(archive.to_vec()).file_name("chart.tgz"))
    }

    fn upload(&self, space: &str, archive: &[u8]) -> Answer {
        let url = format!("{}/spaces/{space}/charts", self.base);
        self.send("upload", self.client.post(url).multipart(Self::form(archive)))
    }

    fn replace(&self, space: &str, chart: &str, version: &str, archive: &[u8]) -> Answer {
        let url = format!("{}/spaces/{space}/charts/{chart}/versions/{version}", self.base);
        self.send("replace", self.client.put(url).multipart(Self::form(archive)))
    }

    fn put_json(&self, op: &'static str, path: &str, body: &Value) -> Answer {
        let url = format!("{}{path}", self.base);
        self.send(op, self.client.put(url).json(body))
    }

    fn get(&self, op: &'static str, path: &str) -> Answer {
        let url = format!("{}{path}", self.base);
        self.send(op, self.client.get(url))
    }

    fn delete(&self, op: &'static str, path: &str) -> Answer {
        let url = format!("{}{path}", self.base);
        self.send(op, self.client.delete(url))
    }

    fn create_space(&self, space: &str) -> Answer {
        let url = format!("{}/spaces?space={space}", self.base);
        self.send("create space", self.client.post(url))
    }
}

/// A valid archive of `name-version`; `tag` goes into values.yaml and `description` into
/// Chart.yaml, so different arguments give different bytes.
fn archive(name: &str, version: &str, tag: &str, description: &str) -> Vec<u8> {
    ChartBuilder::new(name, version)
        .with(
            &format!("{name}/Chart.yaml"),
            format!("apiVersion: v2\nname: {name}\nversion: {version}\ndescription: {description:?}\n"),
        )
        .with(&format!("{name}/values.yaml"), format!("replicaCount: 1\ntag: {tag:?}\n"))
        .build()
}

/// The values a chart built by [`archive`] reports.
fn archive_values(tag: &str) -> Value {
    json!({"replicaCount": 1, "tag": tag})
}

/// Runs `work(i)` on `threads` threads released together by a barrier; answers the
/// results in thread order.
fn together<T: Send>(threads: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// The version list of a chart (`?limit=1000`), or `None` on 404.
fn list_versions(api: &Api, space: &str, chart: &str) -> Option<Vec<String>> {
    let answer = api.get("list versions", &format!("/spaces/{space}/charts/{chart}/versions?limit=1000"));
    answer.check(&[200, 404]);
    if answer.status == 404 {
        return None;
    }
    let body = answer.json();
    let items = strings(&body["items"]);
    assert_eq!(body["metadata"]["total"], items.len(), "{body}");
    assert_eq!(body["metadata"]["itemsLength"], items.len(), "{body}");
    Some(items)
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// SemVer precedence for `MAJOR.MINOR.PATCH[-LABEL.N]` versions, written out here so that
/// the server's ordering is checked against an independent rule.
fn semver_order(a: &str, b: &str) -> Ordering {
    fn parts(v: &str) -> ([u64; 3], Option<(String, u64)>) {
        let (core, pre) = match v.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (v, None),
        };
        let numbers: Vec<u64> = core.split('.').map(|n| n.parse().unwrap()).collect();
        let pre = pre.map(|p| {
            let (label, n) = p.split_once('.').unwrap();
            (label.to_string(), n.parse().unwrap())
        });
        ([numbers[0], numbers[1], numbers[2]], pre)
    }
    let (core_a, pre_a) = parts(a);
    let (core_b, pre_b) = parts(b);
    core_a.cmp(&core_b).then_with(|| match (pre_a, pre_b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater, // a release outranks its pre-releases
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.cmp(&y),
    })
}

/// Checks a stored version is whole and self-consistent: its archive loads, and the values
/// and metadata the API reports are the archive's. Answers (values, metadata), or `None`
/// if the version does not exist.
fn consistent_version(api: &Api, space: &str, chart: &str, version: &str) -> Option<(Value, Value)> {
    let path = format!("/spaces/{space}/charts/{chart}/versions/{version}");
    let listed = list_versions(api, space, chart).is_some_and(|v| v.iter().any(|x| x == version));
    let download = api.get("download", &path);
    download.check(&[200, 404]);
    assert_eq!(download.status == 200, listed, "{path} listed {listed}");
    if download.status == 404 {
        api.get("metadata", &format!("{path}/manifests/metadata")).check(&[404]);
        api.get("values", &format!("{path}/manifests/values")).check(&[404]);
        return None;
    }
    let loaded = chartyard_core::archive::load(&download.body, &Default::default())
        .unwrap_or_else(|e| panic!("{path}: stored archive does not load: {e}"));
    assert_eq!((loaded.metadata.name.as_str(), loaded.metadata.version.as_str()), (chart, version));
    let metadata = api.get("metadata", &format!("{path}/manifests/metadata"));
    let metadata = metadata.check(&[200]).json();
    let values = api.get("values", &format!("{path}/manifests/values"));
    let values = values.check(&[200]).json();
    assert_eq!(
        metadata,
        serde_json::to_value(loaded.metadata_tree()).unwrap(),
        "{path}: metadata disagrees with the archive"
    );
    assert_eq!(
        values,
        chartyard_core::values::coalesce(&loaded, &Default::default()).unwrap(),
        "{path}: values disagree with the archive"
    );
    Some((values, metadata))
}

/// Every regular file below `dir` (none if it does not exist).
// ---- tests ----

#[test]
fn concurrent_uploads_of_distinct_versions() {
    const THREADS: usize = 50;
    const VERSIONS: usize = 200;
    let started = Instant::now();
    let server = Server::start();
    // (i % 5, i / 5 % 8, i / 40) is one-to-one on 0..200, so the versions are distinct.
    let plan: Vec<(String, Vec<u8>)> = (0..VERSIONS)
        .map(|i| {
            let mut version = format!("{}.{}.{}", i % 5, i / 5 % 8, i / 40);
            match i % 9 {
                0 => version.push_str(&format!("-rc.{}", i % 11)),
                4 => version.push_str(&format!("-alpha.{}", i % 13)),
                _ => {}
            }
            let bytes = archive("many", &version, &format!("t{i}"), "many versions");
            (version, bytes)
        })
        .collect();

    let answers = together(THREADS, |t| {
        let api = Api::new(&server);
        (t..VERSIONS).step_by(THREADS).map(|i| (i, api.upload("space", &plan[i].1))).collect::<Vec<_>>()
    });
    for (i, answer) in answers.iter().flatten() {
        answer.check(&[201]);
        let link = answer.json();
        assert_eq!(link["version"], plan[*i].0.as_str(), "{link}");
    }

    let api = Api::new(&server);
    let mut expected: Vec<String> = plan.iter().map(|(v, _)| v.clone()).collect();
    expected.sort_by(|a, b| semver_order(a, b));
    assert_eq!(list_versions(&api, "space", "many"), Some(expected.clone()));
    let metadata = api.get("metadata", "/spaces/space/charts/many/metadata?limit=1000");
    let metadata = metadata.check(&[200]).json();
    let listed: Vec<&str> =
        metadata["items"].as_array().unwrap().iter().map(|m| m["version"].as_str().unwrap()).collect();
    assert_eq!(listed, expected);
    for (version, bytes) in &plan {
        let download = api.get("download", &format!("/spaces/space/charts/many/versions/{version}"));
        download.check(&[200]);
        assert_eq!(sha256(&download.body), sha256(bytes), "{version}");
    }
    assert_eq!(record_files(&server.data.path).len(), VERSIONS);
    eprintln!("concurrent_uploads_of_distinct_versions: {:?}", started.elapsed());
}

#[test]
fn same_version_uploaded_at_once_has_exactly_one_winner() {
    let started = Instant::now();
    let server = Server::start();
    let api = Api::new(&server);
    for (contenders, rounds) in [(2, 10), (16, 4)] {
        for round in 0..rounds {
            let version = format!("{contenders}.{round}.0");
            let candidates: Vec<Vec<u8>> =
                (0..contenders).map(|k| archive("race", &version, &format!("contender-{k}"), "race")).collect();
            let answers = together(contenders, |k| Api::new(&server).upload("race", &candidates[k]));
            for answer in &answers {
                answer.check(&[201, 409]);
            }
            let winners: Vec<usize> = (0..contenders).filter(|&k| answers[k].status == 201).collect();
            assert_eq!(winners.len(), 1, "{version}: {answers:?}");

            let path = format!("/spaces/race/charts/race/versions/{version}");
            let stored = api.get("download", &path);
            stored.check(&[200]);
            let matching: Vec<usize> = (0..contenders).filter(|&k| candidates[k] == stored.body).collect();
            assert_eq!(matching, winners, "{version}: the stored archive is not the winner's");
            let values = api.get("values", &format!("{path}/manifests/values"));
            assert_eq!(values.check(&[200]).json(), archive_values(&format!("contender-{}", winners[0])));
            // The losers still conflict afterwards, and nothing changed.
            for k in (0..contenders).filter(|k| *k != winners[0]).take(2) {
                api.upload("race", &candidates[k]).check(&[409]);
            }
            assert_eq!(api.get("download", &path).body, candidates[winners[0]]);
        }
    }
    let versions = list_versions(&api, "race", "race").unwrap();
    assert_eq!(versions.len(), 14);
    assert_eq!(versions.iter().collect::<BTreeSet<_>>().len(), 14, "{versions:?}");
    eprintln!("same_version_uploaded_at_once_has_exactly_one_winner: {:?}", started.elapsed());
}

/// One round of every kind of change to `mixed/mod/1.0.0` at once, starting from
/// `previous` (values and description it was left with, if it exists). Answers the answers
/// and the sets of values and descriptions the version may legitimately end up with.
fn modification_round(
    server: &Server,
    round: usize,
    previous: Option<(Value, String)>,
) -> (Vec<Answer>, Vec<Value>, Vec<String>) {
    const PATH: &str = "/spaces/mixed/charts/mod/versions/1.0.0";
    let api = Api::new(server);
    // Start each round with the version present (it may survive from the last round).
    let base = archive("mod", "1.0.0", &format!("base-{round}"), &format!("base {round}"));
    let base_upload = api.upload("mixed", &base);
    base_upload.check(&[201, 409]);
    assert_eq!(
        base_upload.status == 409,
        previous.is_some(),
        "round {round}: the version's existence changed between rounds"
    );
    let replacement = archive("mod", "1.0.0", &format!("replaced-{round}"), &format!("replaced {round}"));
    let reupload = archive("mod", "1.0.0", &format!("reuploaded-{round}"), &format!("reuploaded {round}"));
    let new_values = json!({"replicaCount": round, "tag": format!("put-{round}")});
    let new_metadata = json!({"apiVersion": "v2", "name": "mod", "version": "1.0.0",
                              "description": format!("put {round}"), "icon": "https://example.com/i.png"});

    let answers = together(8, |op| {
        let api = Api::new(server);
        match op {
            0 => api.replace("mixed", "mod", "1.0.0", &replacement),
            1 => api.put_json("values", &format!("{PATH}/manifests/values"), &new_values),
            2 => api.put_json("metadata", &format!("{PATH}/manifests/metadata"), &new_metadata),
            3 => api.delete("delete", PATH),
            4 => api.upload("mixed", &reupload),
            5 => api.get("get values", &format!("{PATH}/manifests/values")),
            6 => api.get("download", PATH),
            _ => api.get("get metadata", &format!("{PATH}/manifests/metadata")),
        }
    });
    for answer in &answers {
        match answer.op {
            "replace" | "values" | "metadata" => answer.check(&[200, 404, 423]),
            "delete" => answer.check(&[204, 404, 423]),
            "upload" => answer.check(&[201, 409]),
            _ => answer.check(&[200, 404]),
        };
        if answer.status != 200 {
            continue;
        }
        match answer.op {
            "values" => assert_eq!(answer.json(), new_values, "round {round}"),
            "metadata" => {
                let body = answer.json();
                assert_eq!(body["description"], format!("put {round}"), "{body}");
                assert_eq!(body["icon"], "https://example.com/i.png", "{body}");
            }
            "download" => {
                chartyard_core::archive::load(&answer.body, &Default::default())
                    .unwrap_or_else(|e| panic!("round {round}: downloaded archive: {e}"));
            }
            _ => {}
        }
    }
    let tags = ["base", "replaced", "reuploaded", "put"].map(|t| format!("{t}-{round}"));
    let mut possible_values: Vec<Value> = tags[..3].iter().map(|t| archive_values(t)).collect();
    possible_values.push(new_values);
    let mut descriptions = ["base", "replaced", "reuploaded", "put"].map(|t| format!("{t} {round}")).to_vec();
    // If every change of this round was refused, the version is as the last round left it
    // (and only then does the base upload conflict).
    if let Some((values, description)) = previous {
        possible_values.push(values);
        descriptions.push(description);
    }
    (answers, possible_values, descriptions)
}

#[test]
fn concurrent_changes_to_one_version_stay_consistent() {
    let started = Instant::now();
    let mut statuses: BTreeMap<(&'static str, u16), usize> = BTreeMap::new();
    // Locks that fail at once, then locks that wait a little.
    for (lock_timeout, rounds) in [("0", 20), ("200", 15)] {
        let server = Server::start_with(&["--lock-timeout", lock_timeout]);
        let api = Api::new(&server);
        let mut previous = None;
        for round in 0..rounds {
            let (answers, possible_values, descriptions) = modification_round(&server, round, previous.take());
            for answer in &answers {
                *statuses.entry((answer.op, answer.status)).or_default() += 1;
            }
            let present = consistent_version(&api, "mixed", "mod", "1.0.0");
            let records = record_files(&server.data.path);
            assert_eq!(records.contains("mixed/mod/1.0.0"), present.is_some(), "{records:?}");
            if let Some((values, metadata)) = present {
                assert!(
                    possible_values.contains(&values),
                    "round {round}: values {values} are none of {possible_values:?}"
                );
                let description = metadata["description"].as_str().unwrap().to_string();
                assert!(
                    descriptions.contains(&description),
                    "round {round}: description {description:?} is none of {descriptions:?}"
                );
                previous = Some((values, description));
            }
        }
    }
    eprintln!("statuses (op, status) -> count: {statuses:?}");
    eprintln!("concurrent_changes_to_one_version_stay_consistent: {:?}", started.elapsed());
}

/// `threads` simultaneous edits of `lock/busy/1.0.0` (values, metadata and replace in
/// turn), `rounds` times or until `stop` says so; answers every answer.
fn contend(server: &Server, threads: usize, rounds: usize, stop: impl Fn(&[Answer]) -> bool) -> Vec<Answer> {
    const PATH: &str = "/spaces/lock/charts/busy/versions/1.0.0";
    let api = Api::new(server);
    api.upload("lock", &archive("busy", "1.0.0", "initial", "initial")).check(&[201]);
    let mut all = Vec::new();
    for round in 0..rounds {
        let answers = together(threads, |t| {
            let api = Api::new(server);
            let id = format!("{round}-{t}");
            match t % 3 {
                0 => api.put_json("values", &format!("{PATH}/manifests/values"), &json!({"tag": id})),
                1 => api.put_json(
                    "metadata",
                    &format!("{PATH}/manifests/metadata"),
                    &json!({"apiVersion": "v2", "name": "busy", "version": "1.0.0", "description": id}),
                ),
                _ => api.replace("lock", "busy", "1.0.0", &archive("busy", "1.0.0", &id, &id)),
            }
        });
        consistent_version(&api, "lock", "busy", "1.0.0").expect("never deleted");
        all.extend(answers);
        if stop(&all) {
            break;
        }
    }
    all
}

#[test]
fn zero_lock_timeout_answers_locked_when_busy() {
    let started = Instant::now();
    let server = Server::start_with(&["--lock-timeout", "0"]);
    // Keep contending until a 423 shows up; with 8 writers at once that is the first round
    // or close to it, and 40 rounds without one would mean the lock never refuses.
    let answers = contend(&server, 8, 40, |all| all.iter().any(|a| a.status == 423));
    for answer in &answers {
        answer.check(&[200, 423]);
    }
    let locked = answers.iter().filter(|a| a.status == 423).count();
    assert!(locked > 0, "no 423 in {} contended edits", answers.len());
    eprintln!(
        "zero_lock_timeout_answers_locked_when_busy: {locked} of {} locked, {:?}",
        answers.len(),
        started.elapsed()
    );
}

#[test]
fn long_lock_timeout_waits_instead_of_failing() {
    let started = Instant::now();
    let server = Server::start_with(&["--lock-timeout", "5000"]);
    let answers = contend(&server, 8, 8, |_| false);
    for answer in &answers {
        answer.check(&[200]);
    }
    assert_eq!(answers.len(), 64);
    eprintln!("long_lock_timeout_waits_instead_of_failing: {:?}", started.elapsed());
}

#[test]
fn uploads_while_other_spaces_come_and_go() {
    const UPLOADERS: usize = 6;
    const UPLOADS_EACH: usize = 12;
    const CHURNERS: usize = 3;
    const CHURN_ROUNDS: usize = 8;
    let started = Instant::now();
    let server = Server::start();
    let uploading = AtomicBool::new(true);
    let uploaders_done = AtomicUsize::new(0);
    let space_of = |t: usize, j: usize| format!("up{}", (t + j) % UPLOADERS);
    let version_of = |j: usize| format!("1.0.{j}");

    let answers: Vec<Vec<Answer>> = together(UPLOADERS + CHURNERS + 1, |t| {
        let api = Api::new(&server);
        let mut answers = Vec::new();
        if t < UPLOADERS {
            // Uploader t: chart c{t} into every up* space in turn (creating them).
            for j in 0..UPLOADS_EACH {
                let bytes = archive(&format!("c{t}"), &version_of(j), &format!("{t}-{j}"), "up");
                answers.push(api.upload(&space_of(t, j), &bytes));
            }
        } else if t < UPLOADERS + CHURNERS {
            // Churner: its own space, created, filled, listed and deleted over and over;
            // the last round leaves it in place.
            let space = format!("churn{}", t - UPLOADERS);
            for r in 0..CHURN_ROUNDS {
                let mut a = api.create_space(&space);
                a.op = "churn create";
                answers.push(a);
                let mut a = api.upload(&space, &archive("x", &format!("0.{r}.0"), "x", "x"));
                a.op = "churn upload";
                answers.push(a);
                answers.push(api.get("churn list", &format!("/spaces/{space}/charts")));
                if r + 1 < CHURN_ROUNDS {
                    answers.push(api.delete("churn delete", &format!("/spaces/{space}")));
                    answers.push(api.get("churn list gone", &format!("/spaces/{space}/charts")));
                }
            }
        } else {
            // Reader: lists while the others write.
            while uploading.load(AtomicOrdering::SeqCst) {
                answers.push(api.get("list spaces", "/spaces?limit=1000"));
                for s in 0..UPLOADERS {
                    answers.push(api.get("list up charts", &format!("/spaces/up{s}/charts")));
                    answers.push(api.get("list up metadata", &format!("/spaces/up{s}/metadata")));
                }
            }
            return answers;
        }
        if t < UPLOADERS && uploaders_done.fetch_add(1, AtomicOrdering::SeqCst) + 1 == UPLOADERS {
            // The last uploader done stops the reader.
            uploading.store(false, AtomicOrdering::SeqCst);
        }
        answers
    });

    for (t, answers) in answers.iter().enumerate() {
        for answer in answers {
            match answer.op {
                // Nothing else touches a churner's space: every answer is determined.
                "churn create" | "churn upload" => {
                    answer.check(&[201]);
                }
                "churn list" => {
                    answer.check(&[200]);
                    assert_eq!(strings(&answer.json()["items"]), ["x"], "thread {t}");
                }
                "churn delete" => {
                    answer.check(&[204]);
                }
                "churn list gone" => {
                    answer.check(&[404]);
                }
                "upload" => {
                    answer.check(&[201]);
                }
                "list spaces" => {
                    answer.check(&[200]);
                }
                // An up* space exists from its first upload on.
                _ => {
                    answer.check(&[200, 404]);
                }
            }
        }
    }

    let api = Api::new(&server);
    let spaces = api.get("list spaces", "/spaces?limit=1000");
    let mut expected_spaces: Vec<String> =
        (0..UPLOADERS).map(|s| format!("up{s}")).chain((0..CHURNERS).map(|c| format!("churn{c}"))).collect();
    expected_spaces.sort();
    assert_eq!(strings(&spaces.check(&[200]).json()["items"]), expected_spaces);

    let mut expected_records = BTreeSet::new();
    for s in 0..UPLOADERS {
        let space = format!("up{s}");
        let charts = api.get("list charts", &format!("/spaces/{space}/charts?limit=1000"));
        let expected_charts: Vec<String> = (0..UPLOADERS).map(|t| format!("c{t}")).collect();
        assert_eq!(strings(&charts.check(&[200]).json()["items"]), expected_charts);
        for t in 0..UPLOADERS {
            let chart = format!("c{t}");
            let mut expected: Vec<String> =
                (0..UPLOADS_EACH).filter(|&j| space_of(t, j) == space).map(version_of).collect();
            expected.sort_by(|a, b| semver_order(a, b));
            for version in &expected {
                expected_records.insert(format!("{space}/{chart}/{version}"));
                let j: usize = version.rsplit('.').next().unwrap().parse().unwrap();
                let bytes = archive(&chart, version, &format!("{t}-{j}"), "up");
                let download = api.get("download", &format!("/spaces/{space}/charts/{chart}/versions/{version}"));
                assert_eq!(download.check(&[200]).body, bytes, "{space}/{chart}/{version}");
            }
            assert_eq!(list_versions(&api, &space, &chart), Some(expected));
        }
    }
    for c in 0..CHURNERS {
        let space = format!("churn{c}");
        let charts = api.get("list charts", &format!("/spaces/{space}/charts"));
        assert_eq!(strings(&charts.check(&[200]).json()["items"]), ["x"]);
        let last = format!("0.{}.0", CHURN_ROUNDS - 1);
        assert_eq!(list_versions(&api, &space, "x"), Some(vec![last.clone()]));
        expected_records.insert(format!("{space}/x/{last}"));
    }
    // Deleted spaces left no records behind.
    assert_eq!(record_files(&server.data.path), expected_records);
    eprintln!("uploads_while_other_spaces_come_and_go: {:?}", started.elapsed());
}

/// Deleting a space while an upload into it is in flight must end in a state that some
/// serial order of the two requests explains: upload then delete leaves no space and no
/// version; delete then upload leaves the space (re-created by the upload) holding only the
/// new chart. The delete's start is swept across the upload's duration so that the two
/// really overlap at every point.
#[test]
fn deleting_a_space_during_an_upload_into_it_leaves_no_orphans() {
    let started = Instant::now();
    let server = Server::start();
    let api = Api::new(&server);
    let first = archive("first", "1.0.0", "first", "first");
    let late = archive("late", "1.0.0", "late", "late");
    for round in 0..200u64 {
        let space = format!("s{round}");
        api.upload(&space, &first).check(&[201]);
        let delay = Duration::from_micros(round % 100 * 80);
        let answers = together(2, |t| {
            let api = Api::new(&server);
            if t == 0 {
                std::thread::sleep(delay);
                api.delete("delete space", &format!("/spaces/{space}"))
            } else {
                api.upload(&space, &late)
            }
        });
        answers[0].check(&[204]);
        // An upload that loses the race to the delete is told so (404), not answered 201
        // for a chart nobody will ever see.
        answers[1].check(&[201, 404]);

        let spaces = api.get("list spaces", "/spaces?limit=1000");
        let listed = strings(&spaces.check(&[200]).json()["items"]).contains(&space);
        let charts = api.get("list charts", &format!("/spaces/{space}/charts"));
        charts.check(&[200, 404]);
        let late_version = api.get("download", &format!("/spaces/{space}/charts/late/versions/1.0.0"));
        late_version.check(&[200, 404]);
        api.get("download", &format!("/spaces/{space}/charts/first/versions/1.0.0")).check(&[404]);
        let state = format!(
            "round {round} (delete {delay:?} after the upload started): space listed: {listed}, \
             GET /spaces/{space}/charts -> {} {}, GET .../late/versions/1.0.0 -> {}",
            charts.status,
            charts.text(),
            late_version.status
        );
        if answers[1].status == 404 {
            assert!(!listed && late_version.status == 404, "{state}: a refused upload left a version");
        } else if listed {
            // delete, then upload
            assert_eq!(charts.status, 200, "{state}");
            assert_eq!(strings(&charts.json()["items"]), ["late"], "{state}");
            assert_eq!(late_version.status, 200, "{state}");
            assert_eq!(late_version.body, late, "{state}");
        } else {
            // upload, then delete
            assert_eq!(
                (charts.status, late_version.status),
                (404, 404),
                "{state}: the uploaded version outlived its space (an orphan: re-creating \
                 the space brings it back)"
            );
        }
    }
    eprintln!("deleting_a_space_during_an_upload_into_it_leaves_no_orphans: {:?}", started.elapsed());
}

/// `chart -> versions` as three views of one space see it: the `/api/v1` listing (read
/// from the records), `index.yaml` and the ChartMuseum API (both from the space's index).
fn three_views(api: &Api, server: &Server, space: &str) -> [BTreeMap<String, BTreeSet<String>>; 3] {
    let mut records = BTreeMap::new();
    let charts = api.get("list charts", &format!("/spaces/{space}/charts?limit=1000"));
    for chart in strings(&charts.check(&[200]).json()["items"]) {
        let versions = list_versions(api, space, &chart).unwrap_or_default();
        records.insert(chart, versions.into_iter().collect());
    }
    let by_chart = |entries: &Value| -> BTreeMap<String, BTreeSet<String>> {
        entries
            .as_object()
            .unwrap_or_else(|| panic!("not a map: {entries}"))
            .iter()
            .map(|(name, list)| {
                let versions = list.as_array().unwrap().iter().map(|e| e["version"].as_str().unwrap().to_string());
                (name.clone(), versions.collect())
            })
            .collect()
    };
    let http = Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let yaml = http.get(server.url(&format!("/{space}/index.yaml"))).send().unwrap();
    assert_eq!(yaml.status(), 200);
    let index: Value = chartyard_core::yaml::from_yaml(&yaml.bytes().unwrap(), "index").unwrap();
    let cm = http.get(server.url(&format!("/api/{space}/charts"))).send().unwrap();
    assert_eq!(cm.status(), 200);
    [records, by_chart(&index["entries"]), by_chart(&cm.json::<Value>().unwrap())]
}

/// A DELETE racing an upload of the same version: whichever order the store saw them
/// in, `index.yaml` and the ChartMuseum API list exactly the versions whose records
/// exist, at once and after a restart (which rebuilds the index from the records).
#[test]
fn a_delete_racing_an_upload_of_the_same_version_leaves_no_ghost_in_the_index() {
    let started = Instant::now();
    let mut server = Server::start();
    let api = Api::new(&server);
    api.upload("ghost", &archive("keep", "1.0.0", "keep", "keep")).check(&[201]);
    // The index is loaded before the races, so that every write updates it in place.
    assert_eq!(three_views(&api, &server, "ghost")[1]["keep"].len(), 1);
    let mut deleted_rounds = 0;
    for round in 0..150 {
        let version = format!("1.{round}.0");
        let candidate = archive("race", &version, &format!("round-{round}"), "race");
        let uploaded = AtomicBool::new(false);
        let answers = together(2, |t| {
            let api = Api::new(&server);
            if t == 0 {
                let answer = api.upload("ghost", &candidate);
                uploaded.store(true, AtomicOrdering::SeqCst);
                vec![answer]
            } else {
                // Deletes as soon as the record exists: right inside the upload's window.
                let path = format!("/spaces/ghost/charts/race/versions/{version}");
                let mut answers = Vec::new();
                loop {
                    let finished = uploaded.load(AtomicOrdering::SeqCst);
                    let answer = api.delete("delete version", &path);
                    let stop = answer.status != 404 || finished;
                    answers.push(answer);
                    if stop {
                        break answers;
                    }
                }
            }
        });
        answers[0][0].check(&[201]);
        for answer in &answers[1] {
            answer.check(&[204, 404]);
        }
        deleted_rounds += usize::from(answers[1].iter().any(|a| a.status == 204));
        let [records, index, cm] = three_views(&api, &server, "ghost");
        assert_eq!(index, records, "round {round}: index.yaml disagrees with the records");
        assert_eq!(cm, records, "round {round}: /api/ghost/charts disagrees with the records");
    }
    let before = three_views(&api, &server, "ghost");
    server.restart();
    let api = Api::new(&server);
    let after = three_views(&api, &server, "ghost");
    assert_eq!(after, before, "a restarted server (index rebuilt from records) sees the same");
    assert!(after[0]["keep"].contains("1.0.0"));
    eprintln!(
        "a_delete_racing_an_upload_of_the_same_version_leaves_no_ghost_in_the_index: {deleted_rounds} of 150 \
         rounds deleted, {:?}",
        started.elapsed()
    );
}
