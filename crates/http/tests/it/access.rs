//! Access control, route by route: one table of every route family against every kind of
//! caller, checked cell by cell, and a scan that callers without rights in a space learn
//! nothing of it from any answer.
//!
//! The whole application (`chartyard_http::app_with_access`) runs in process over an
//! in-memory registry, with its users given inline (bcrypt, cost 4). Every cell gets a
//! registry of its own, seeded the same way through plain HTTP calls, so a write one cell
//! is allowed to make never changes what another cell sees. Where a caller is allowed,
//! the cell expects what the same request gets from an open server (no access control)
//! seeded the same way. Requests carry a client address, as the binary's accept loop
//! gives them, so failed logins are counted as they are in service. The table of answers
//! and its size are printed (`-- --nocapture`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chartyard_core::access::{Policy, Role, Rule, SpacePattern, TokenLimits};
use chartyard_core::oci::{
    HELM_CHART_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE, HELM_PROVENANCE_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE,
};
use chartyard_http::HttpOptions;
use chartyard_http::auth::{AccessControl, AuthOptions};
use chartyard_storage::tokens::{TokenRecord, seconds};
use chartyard_storage::{Registry, RegistryOptions};
use object_store::memory::InMemory;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::app::{TestResponse, multipart};
use crate::charts::{ChartBuilder, descriptor, digest_of, manifest_bytes, sha256};

/// The host every request names; 401 challenges on `/v2` point at its token endpoint.
const HOST: &str = "registry.test";
const REALM: &str = "http://registry.test/_/token";
/// The client address every request comes from (failed logins are counted per address).
const PEER: ([u8; 4], u16) = ([127, 0, 0, 1], 40_000);

const USERS: [&str; 4] = ["admin", "alice", "bob", "carol"];
const CHART: &str = "secretchart";
const VERSION: &str = "7.3.9";
const ARTIFACT_TAG: &str = "attest-teama";
const ARTIFACT_TYPE: &str = "application/vnd.example.signature.v1";
const EXAMPLE_CONFIG: &str = "application/vnd.example.config.v1+json";
const EXAMPLE_LAYER: &str = "application/vnd.example.layer.v1.tar";

/// Who asks: the columns of the matrix, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// bob: read in `team-*`.
    Reader,
    /// alice: write in `team-*`.
    Writer,
    /// admin: a global admin.
    Admin,
    /// carol: write in `other` only.
    OtherWriter,
    /// alice with a wrong password.
    WrongPassword,
    /// alice's API token, revoked (as a Basic password).
    RevokedToken,
    /// alice's API token, expired (as `Authorization: Bearer`).
    ExpiredToken,
    /// alice's API token limited to `read` (as a Basic password under another user name).
    ReadToken,
    /// bob's OCI bearer token from `/_/token`, for pulling `team-a/secretchart`.
    Bearer,
}

const COLUMNS: [(Who, &str); 10] = [
    (Who::Anonymous, "anon"),
    (Who::Reader, "bob"),
    (Who::Writer, "alice"),
    (Who::Admin, "admin"),
    (Who::OtherWriter, "carol"),
    (Who::WrongPassword, "wrong"),
    (Who::RevokedToken, "revok"),
    (Who::ExpiredToken, "expir"),
    (Who::ReadToken, "rotok"),
    (Who::Bearer, "bearer"),
];

/// Every route family against every caller. `ok`: allowed, answered as the open server
/// answers the same request (never 401, 403 or 5xx); a number: exactly that status. Each
/// 401 must carry its protocol's challenge. Placeholders in braces are filled from the
/// seeded registry; the body column names what is sent (see `body_of`).
const MATRIX: &str = r#"
route family              | method path                                                          | body         | anon bob  alice admin carol wrong revok expir rotok bearer
v1 list spaces            | GET /api/v1/spaces                                                   | -            | ok   ok   ok    ok    ok    401   401   401   ok    401
v1 create space           | POST /api/v1/spaces?space=team-new                                   | -            | 401  403  403   ok    403   401   401   401   403   401
v1 delete space           | DELETE /api/v1/spaces/team-a                                         | -            | 401  403  403   ok    403   401   401   401   403   401
v1 list charts            | GET /api/v1/spaces/team-a/charts                                     | -            | 401  ok   ok    ok    403   401   401   401   ok    401
v1 audit                  | GET /api/v1/spaces/team-a/audit                                      | -            | 401  403  403   ok    403   401   401   401   403   401
v1 search                 | GET /api/v1/search?q={chart}                                         | -            | ok   ok   ok    ok    ok    401   401   401   ok    401
v1 upload                 | POST /api/v1/spaces/team-a/charts                                    | upload       | 401  403  ok    ok    403   401   401   401   403   401
v1 compose from team-a    | POST /api/v1/spaces/team-a/charts                                    | compose-a    | 401  403  ok    ok    403   401   401   401   403   401
v1 compose from other     | POST /api/v1/spaces/team-a/charts                                    | compose-ao   | 401  403  403   ok    403   401   401   401   403   401
v1 list versions          | GET /api/v1/spaces/team-a/charts/{chart}/versions                    | -            | 401  ok   ok    ok    403   401   401   401   ok    401
v1 download               | GET /api/v1/spaces/team-a/charts/{chart}/versions/{version}          | -            | 401  ok   ok    ok    403   401   401   401   ok    401
v1 replace                | PUT /api/v1/spaces/team-a/charts/{chart}/versions/{version}          | replace      | 401  403  ok    ok    403   401   401   401   403   401
v1 delete version         | DELETE /api/v1/spaces/team-a/charts/{chart}/versions/{version}       | -            | 401  403  ok    ok    403   401   401   401   403   401
v1 delete chart           | DELETE /api/v1/spaces/team-a/charts/{chart}                          | -            | 401  403  ok    ok    403   401   401   401   403   401
v1 metadata GET           | GET /api/v1/spaces/team-a/charts/{chart}/versions/{version}/manifests/metadata | -    | 401  ok   ok    ok    403   401   401   401   ok    401
v1 metadata PUT           | PUT /api/v1/spaces/team-a/charts/{chart}/versions/{version}/manifests/metadata | metadata | 401 403 ok ok   403   401   401   401   403   401
v1 values GET             | GET /api/v1/spaces/team-a/charts/{chart}/versions/{version}/manifests/values | -      | 401  ok   ok    ok    403   401   401   401   ok    401
v1 values PUT             | PUT /api/v1/spaces/team-a/charts/{chart}/versions/{version}/manifests/values | values | 401  403  ok    ok    403   401   401   401   403   401
v1 space metadata         | GET /api/v1/spaces/team-a/metadata                                   | -            | 401  ok   ok    ok    403   401   401   401   ok    401
v1 space latest metadata  | GET /api/v1/spaces/team-a/metadata/latest                            | -            | 401  ok   ok    ok    403   401   401   401   ok    401
v1 chart metadata         | GET /api/v1/spaces/team-a/charts/{chart}/metadata                    | -            | 401  ok   ok    ok    403   401   401   401   ok    401
v1 chart latest metadata  | GET /api/v1/spaces/team-a/charts/{chart}/metadata/latest             | -            | 401  ok   ok    ok    403   401   401   401   ok    401
v1 policy GET             | GET /api/v1/spaces/team-a/policy                                     | -            | 401  ok   ok    ok    403   401   401   401   ok    401
v1 policy PUT             | PUT /api/v1/spaces/team-a/policy                                     | policy       | 401  403  403   ok    403   401   401   401   403   401
cm list charts            | GET /api/team-a/charts                                               | -            | 401  ok   ok    ok    403   401   401   401   ok    401
cm chart versions         | GET /api/team-a/charts/{chart}                                       | -            | 401  ok   ok    ok    403   401   401   401   ok    401
cm one version            | GET /api/team-a/charts/{chart}/{version}                             | -            | 401  ok   ok    ok    403   401   401   401   ok    401
cm upload                 | POST /api/team-a/charts                                              | cm-upload    | 401  403  ok    ok    403   401   401   401   403   401
cm prov upload            | POST /api/team-a/prov                                                | cm-prov      | 401  403  ok    ok    403   401   401   401   403   401
cm delete                 | DELETE /api/team-a/charts/{chart}/{version}                          | -            | 401  403  ok    ok    403   401   401   401   403   401
repo index.yaml           | GET /team-a/index.yaml                                               | -            | 401  ok   ok    ok    403   401   401   401   ok    401
repo index.json           | GET /team-a/index.json                                               | -            | 401  ok   ok    ok    403   401   401   401   ok    401
repo archive              | GET /team-a/charts/{chart}-{version}.tgz                             | -            | 401  ok   ok    ok    403   401   401   401   ok    401
repo provenance           | GET /team-a/charts/{chart}-{version}.tgz.prov                        | -            | 401  ok   ok    ok    403   401   401   401   ok    401
oci ping                  | GET /v2/                                                             | -            | 401  ok   ok    ok    ok    401   401   401   ok    ok
oci catalog               | GET /v2/_catalog                                                     | -            | ok   ok   ok    ok    ok    401   401   401   ok    ok
oci tags                  | GET /v2/team-a/{chart}/tags/list                                     | -            | 401  ok   ok    ok    403   401   401   401   ok    ok
oci manifest GET          | GET /v2/team-a/{chart}/manifests/{version}                           | -            | 401  ok   ok    ok    403   401   401   401   ok    ok
oci manifest HEAD         | HEAD /v2/team-a/{chart}/manifests/{version}                          | -            | 401  ok   ok    ok    403   401   401   401   ok    ok
oci manifest PUT          | PUT /v2/team-a/{chart}/manifests/extra-tag                           | manifest     | 401  403  ok    ok    403   401   401   401   403   403
oci manifest DELETE       | DELETE /v2/team-a/{chart}/manifests/{artifact}                       | -            | 401  403  ok    ok    403   401   401   401   403   403
oci blob GET              | GET /v2/team-a/{chart}/blobs/{archive}                               | -            | 401  ok   ok    ok    403   401   401   401   ok    ok
oci blob HEAD             | HEAD /v2/team-a/{chart}/blobs/{archive}                              | -            | 401  ok   ok    ok    403   401   401   401   ok    ok
oci blob DELETE           | DELETE /v2/team-a/{chart}/blobs/{loose}                              | -            | 401  403  ok    ok    403   401   401   401   403   403
oci upload POST           | POST /v2/team-a/{chart}/blobs/uploads/                               | -            | 401  403  ok    ok    403   401   401   401   403   403
oci upload PATCH          | PATCH {session}                                                      | chunk        | 401  403  ok    ok    403   401   401   401   403   403
oci upload PUT            | PUT {session}?digest={finish}                                        | finish       | 401  403  ok    ok    403   401   401   401   403   403
oci mount from other      | POST /v2/team-a/{chart}/blobs/uploads/?mount={other-layer}&from=other/x | -         | 401  403  202   ok    403   401   401   401   403   403
oci referrers             | GET /v2/team-a/{chart}/referrers/{chart-manifest}                    | -            | 401  ok   ok    ok    403   401   401   401   ok    ok
token GET                 | GET /_/token?service=chartyard&scope=repository:team-a/{chart}:pull  | -            | 200  200  200   200   200   401   401   401   200   401
token POST (grant)        | POST /_/token                                                        | grant        | 400  200  200   200   200   401   401   401   200   401
tokens list               | GET /_/tokens                                                        | -            | 401  200  200   200   200   401   401   401   200   401
tokens create             | POST /_/tokens                                                       | new-token    | 401  201  201   201   201   401   401   401   403   401
tokens revoke             | DELETE /_/tokens/{read-token-id}                                     | -            | 401  404  204   204   404   401   401   401   204   401
whoami                    | GET /_/whoami                                                        | -            | 200  200  200   200   200   401   401   401   200   401
ui spaces                 | GET /_/ui/                                                           | -            | ok   ok   ok    ok    ok    401   401   401   ok    401
ui space                  | GET /_/ui/team-a                                                     | -            | 401  ok   ok    ok    403   401   401   401   ok    401
ui chart (latest)         | GET /_/ui/team-a/{chart}                                             | -            | 401  ok   ok    ok    403   401   401   401   ok    401
ui chart version          | GET /_/ui/team-a/{chart}/{version}                                   | -            | 401  ok   ok    ok    403   401   401   401   ok    401
ui template               | GET /_/ui/team-a/{chart}/{version}/templates/configmap.yaml          | -            | 401  ok   ok    ok    403   401   401   401   ok    401
ui archive                | GET /_/ui/team-a/{chart}/{version}/archive                           | -            | 401  ok   ok    ok    403   401   401   401   ok    401
ui provenance             | GET /_/ui/team-a/{chart}/{version}/provenance                        | -            | 401  ok   ok    ok    403   401   401   401   ok    401
ui search                 | GET /_/ui/-/search?q={chart}                                         | -            | ok   ok   ok    ok    ok    401   401   401   ok    401
ui upload                 | POST /_/ui/team-a/-/upload                                           | ui-upload    | 401  403  ok    ok    403   401   401   401   403   401
ui delete version         | POST /_/ui/team-a/{chart}/{version}/delete                           | -            | 401  403  ok    ok    403   401   401   401   403   401
ui create space           | POST /_/ui/-/spaces                                                  | ui-space     | 401  403  403   ok    403   401   401   401   403   401
ui delete space           | POST /_/ui/team-a/-/delete                                           | -            | 401  403  403   ok    403   401   401   401   403   401
ui tokens page            | GET /_/ui/-/tokens                                                   | -            | 401  200  200   200   200   401   401   401   200   401
ui create token           | POST /_/ui/-/tokens                                                  | ui-token     | 401  200  200   200   200   401   401   401   403   401
"#;

/// One row of [`MATRIX`].
struct Row {
    family: String,
    method: Method,
    path: String,
    body: String,
    expected: Vec<String>,
}

fn rows() -> Vec<Row> {
    let mut lines = MATRIX.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().unwrap().split('|').map(str::trim).collect();
    let names: Vec<&str> = header[3].split_whitespace().collect();
    assert_eq!(names, COLUMNS.iter().map(|(_, n)| *n).collect::<Vec<_>>(), "the table's columns");
    lines
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 4, "{line}");
            let (method, path) = cells[1].split_once(' ').unwrap();
            let expected: Vec<String> = cells[3].split_whitespace().map(str::to_string).collect();
            assert_eq!(expected.len(), COLUMNS.len(), "{line}");
            Row {
                family: cells[0].to_string(),
                method: method.parse().unwrap(),
                path: path.trim().to_string(),
                body: cells[2].to_string(),
                expected,
            }
        })
        .collect()
}

// ---- what team-a holds ----

/// team-a's chart (pushed over OCI with its provenance) and an artifact that refers to it,
/// each carrying bytes found nowhere else.
struct TeamA {
    archive: Vec<u8>,
    config: Vec<u8>,
    provenance: Vec<u8>,
    manifest: Vec<u8>,
    artifact_config: Vec<u8>,
    artifact_layer: Vec<u8>,
    artifact: Vec<u8>,
    /// A blob nothing refers to (the only kind a blob DELETE removes).
    loose: Vec<u8>,
}

const VALUES_MARK: &str = "VALUES-teamA-91c2";
const DESCRIPTION_MARK: &str = "DESC-teamA-4b7e";
const SIGNATURE_MARK: &str = "PROVSIG-teamA-5c1e";
const ARTIFACT_CONFIG_MARK: &str = "ARTCONFIG-teamA-77d1";
const ARTIFACT_LAYER_MARK: &str = "ARTLAYER-teamA-e0f3";
const LOOSE_MARK: &str = "LOOSE-teamA-2d8c";
const TOKEN_DESCRIPTION_MARK: &str = "TOKENDESC-alice-3a9f";

fn team_a() -> &'static TeamA {
    static TEAM_A: OnceLock<TeamA> = OnceLock::new();
    TEAM_A.get_or_init(|| {
        let chart_yaml = format!("apiVersion: v2\nname: {CHART}\nversion: {VERSION}\ndescription: {DESCRIPTION_MARK}\n");
        let archive = ChartBuilder::new(CHART, VERSION)
            .with(&format!("{CHART}/Chart.yaml"), chart_yaml.clone())
            .with(&format!("{CHART}/values.yaml"), format!("replicaCount: 1\nsecret: {VALUES_MARK}\n"))
            .with(&format!("{CHART}/templates/configmap.yaml"), format!("kind: ConfigMap\n# {DESCRIPTION_MARK}\n"))
            .build();
        let config = serde_json::to_vec(
            &json!({"apiVersion": "v2", "name": CHART, "version": VERSION, "description": DESCRIPTION_MARK}),
        )
        .unwrap();
        let provenance = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{chart_yaml}\n...\nfiles:\n  {CHART}-{VERSION}.tgz: sha256:{}\n-----BEGIN PGP SIGNATURE-----\n\n{SIGNATURE_MARK}\n-----END PGP SIGNATURE-----\n",
            sha256(&archive)
        )
        .into_bytes();
        let manifest = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": descriptor(HELM_CONFIG_MEDIA_TYPE, &config),
            "layers": [descriptor(HELM_CHART_MEDIA_TYPE, &archive), descriptor(HELM_PROVENANCE_MEDIA_TYPE, &provenance)],
        }));
        let artifact_config = format!("{{\"signer\":\"{ARTIFACT_CONFIG_MARK}\"}}").into_bytes();
        let artifact_layer = format!("{ARTIFACT_LAYER_MARK}: a signature of team-a's chart").into_bytes();
        let artifact = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "artifactType": ARTIFACT_TYPE,
            "config": descriptor(EXAMPLE_CONFIG, &artifact_config),
            "layers": [descriptor(EXAMPLE_LAYER, &artifact_layer)],
            "subject": descriptor(OCI_MANIFEST_MEDIA_TYPE, &manifest),
        }));
        let loose = format!("{LOOSE_MARK}: a blob of team-a no manifest names").into_bytes();
        TeamA { archive, config, provenance, manifest, artifact_config, artifact_layer, artifact, loose }
    })
}

impl TeamA {
    /// The digests of everything team-a's repository holds.
    fn digests(&self) -> Vec<(&'static str, String)> {
        vec![
            ("archive", digest_of(&self.archive)),
            ("chart config", digest_of(&self.config)),
            ("provenance", digest_of(&self.provenance)),
            ("chart manifest", digest_of(&self.manifest)),
            ("artifact config", digest_of(&self.artifact_config)),
            ("artifact layer", digest_of(&self.artifact_layer)),
            ("artifact manifest", digest_of(&self.artifact)),
            ("loose blob", digest_of(&self.loose)),
        ]
    }

    /// What no caller without read in team-a may see in an answer, unless it sent it.
    fn marks(&self) -> Vec<(String, Vec<u8>)> {
        let mut marks: Vec<(String, Vec<u8>)> = vec![
            ("space name".into(), b"team-a".to_vec()),
            ("chart name".into(), CHART.into()),
            ("version".into(), VERSION.into()),
            ("values".into(), VALUES_MARK.into()),
            ("description".into(), DESCRIPTION_MARK.into()),
            ("provenance signature".into(), SIGNATURE_MARK.into()),
            ("artifact config".into(), ARTIFACT_CONFIG_MARK.into()),
            ("artifact layer".into(), ARTIFACT_LAYER_MARK.into()),
            ("artifact tag".into(), ARTIFACT_TAG.into()),
            ("loose blob".into(), LOOSE_MARK.into()),
            ("token description".into(), TOKEN_DESCRIPTION_MARK.into()),
            ("archive bytes".into(), self.archive[self.archive.len() / 2..][..32].to_vec()),
        ];
        for (what, digest) in self.digests() {
            let hex = digest.trim_start_matches("sha256:").to_string();
            marks.push((format!("{what} digest"), hex.into_bytes()));
        }
        marks
    }
}

// ---- the application and its seed ----

fn password(user: &str) -> String {
    format!("{user}-pw")
}

/// The users' bcrypt hashes (cost 4), made once.
fn user_hashes() -> &'static BTreeMap<String, String> {
    static HASHES: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    HASHES.get_or_init(|| USERS.iter().map(|u| (u.to_string(), bcrypt::hash(password(u), 4).unwrap())).collect())
}

fn auth_options() -> AuthOptions {
    let pattern = |p: &str| SpacePattern::new(p).unwrap();
    let rules = vec![
        Rule {
            spaces: vec![pattern("team-*")],
            users: BTreeMap::from([("alice".into(), Role::Write), ("bob".into(), Role::Read)]),
            groups: BTreeMap::new(),
        },
        Rule {
            spaces: vec![pattern("other")],
            users: BTreeMap::from([("carol".into(), Role::Write)]),
            groups: BTreeMap::new(),
        },
    ];
    let policy = Policy::new(["admin".to_string()], vec![], rules, &BTreeMap::new(), true).unwrap();
    let mut options = AuthOptions::new(policy);
    options.users = user_hashes().clone();
    options.failure_delay = Duration::from_millis(1);
    options.max_failures = 1_000_000;
    options.bcrypt_concurrency = 2;
    options
}

/// The credentials each kind of caller comes with, made in its registry.
#[derive(Default)]
struct Tokens {
    read_id: String,
    read: String,
    revoked: String,
    expired: String,
    bearer: String,
}

/// The application over a registry of its own, seeded: spaces `team-a` and `other`,
/// team-a's chart and artifact, `other`'s chart and `other/x`, an upload session in
/// team-a's repository and (with access control) the callers' tokens.
struct Fixture {
    router: Router,
    secured: bool,
    session: String,
    tokens: Tokens,
}

impl Fixture {
    async fn new(secured: bool) -> Self {
        let options = RegistryOptions { conditional_updates: true, ..RegistryOptions::default() };
        let registry = Arc::new(Registry::new(Arc::new(InMemory::new()), options));
        let access = match secured {
            true => Some(AccessControl::open(registry.clone(), auth_options(), None).await.unwrap()),
            false => None,
        };
        let router = chartyard_http::app_with_access(registry.clone(), &HttpOptions::default(), access);
        let mut fixture = Self { router, secured, session: String::new(), tokens: Tokens::default() };
        fixture.seed(&registry).await;
        fixture
    }

    async fn call(&self, method: Method, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path).header("host", HOST);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut request = request.body(Body::from(body)).unwrap();
        request.extensions_mut().insert(ConnectInfo(SocketAddr::from(PEER)));
        let response = self.router.clone().oneshot(request).await.expect("the router never fails");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("response body");
        TestResponse { status: parts.status.as_u16(), headers: parts.headers, body }
    }

    /// A seeding call as the global admin, asserting its status.
    async fn admin(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        status: u16,
    ) -> TestResponse {
        let mut headers = vec![("authorization", basic("admin", &password("admin")))];
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type.to_string()));
        }
        let response = self.call(method.clone(), path, &headers, body).await;
        assert_eq!(response.status, status, "seeding {method} {path}: {}", response.text());
        response
    }

    async fn push_blob(&self, repository: &str, data: &[u8]) {
        let path = format!("/v2/{repository}/blobs/uploads/?digest={}", digest_of(data));
        self.admin(Method::POST, &path, Some("application/octet-stream"), data.to_vec(), 201).await;
    }

    async fn push_manifest(&self, repository: &str, reference: &str, manifest: &[u8]) {
        let path = format!("/v2/{repository}/manifests/{reference}");
        self.admin(Method::PUT, &path, Some(OCI_MANIFEST_MEDIA_TYPE), manifest.to_vec(), 201).await;
    }

    async fn seed(&mut self, registry: &Registry) {
        let team_a = team_a();
        for space in ["team-a", "other"] {
            self.admin(Method::POST, &format!("/api/v1/spaces?space={space}"), None, vec![], 201).await;
        }
        let repository = format!("team-a/{CHART}");
        for blob in [
            &team_a.config,
            &team_a.archive,
            &team_a.provenance,
            &team_a.artifact_config,
            &team_a.artifact_layer,
            &team_a.loose,
        ] {
            self.push_blob(&repository, blob).await;
        }
        self.push_manifest(&repository, VERSION, &team_a.manifest).await;
        self.push_manifest(&repository, ARTIFACT_TAG, &team_a.artifact).await;

        let (content_type, body) =
            multipart(&[("chartfile", "c.tgz", &ChartBuilder::new("openchart", "1.0.0").build())]);
        self.admin(Method::POST, "/api/v1/spaces/other/charts", Some(&content_type), body, 201).await;
        let (config, layer) = (other_config(), other_layer());
        self.push_blob("other/x", &config).await;
        self.push_blob("other/x", &layer).await;
        let manifest = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": descriptor(EXAMPLE_CONFIG, &config),
            "layers": [descriptor(EXAMPLE_LAYER, &layer)],
        }));
        self.push_manifest("other/x", "v1", &manifest).await;

        let started = self.admin(Method::POST, &format!("/v2/{repository}/blobs/uploads/"), None, vec![], 202).await;
        self.session = started.header("location").expect("an upload session's Location").to_string();

        if self.secured {
            self.tokens = self.make_tokens(registry).await;
        }
    }

    async fn make_tokens(&self, registry: &Registry) -> Tokens {
        let alice =
            [("authorization", basic("alice", &password("alice"))), ("content-type", "application/json".into())];
        let alice = &alice;
        let create = |body: Value| async move {
            let response = self.call(Method::POST, "/_/tokens", alice, body.to_string().into_bytes()).await;
            let created = response.json(201);
            (created["id"].as_str().unwrap().to_string(), created["token"].as_str().unwrap().to_string())
        };
        let (read_id, read) = create(json!({"role": "read", "description": TOKEN_DESCRIPTION_MARK})).await;
        let (revoked_id, revoked) = create(json!({"description": "revoked"})).await;
        let revoke = self.call(Method::DELETE, &format!("/_/tokens/{revoked_id}"), alice, vec![]).await;
        assert_eq!(revoke.status, 204, "revoking: {}", revoke.text());

        // An expired token, written as the token API writes one.
        let (id, secret) = ("e0e0e0e0e0e0e0e0", "expired-secret-expired-secret-expired-secret");
        let now = seconds(SystemTime::now());
        let record = TokenRecord {
            id: id.into(),
            owner: "alice".into(),
            hash: sha256(secret.as_bytes()),
            created: now - 3600,
            expires: Some(now - 60),
            limits: TokenLimits::default(),
            description: "expired".into(),
        };
        registry.tokens().create(&record).await.unwrap();
        let expired = format!("cyt_{id}_{secret}");

        let path = format!("/_/token?service=chartyard&scope=repository:team-a/{CHART}:pull,push");
        let bob = [("authorization", basic("bob", &password("bob")))];
        let answer = self.call(Method::GET, &path, &bob, vec![]).await.json(200);
        let bearer = answer["token"].as_str().unwrap().to_string();
        assert_eq!(
            bearer_scopes(&bearer),
            json!([{"type": "repository", "name": "team-a/secretchart", "actions": ["pull"]}])
        );
        Tokens { read_id, read, revoked, expired, bearer }
    }

    /// `template` with the seeded names filled in.
    fn resolve(&self, template: &str) -> String {
        let team_a = team_a();
        template
            .replace("{session}", &self.session)
            .replace("{chart}", CHART)
            .replace("{version}", VERSION)
            .replace("{artifact}", &digest_of(&team_a.artifact))
            .replace("{archive}", &digest_of(&team_a.archive))
            .replace("{loose}", &digest_of(&team_a.loose))
            .replace("{chart-manifest}", &digest_of(&team_a.manifest))
            .replace("{other-layer}", &digest_of(&other_layer()))
            .replace("{finish}", &digest_of(FINISH))
            .replace("{read-token-id}", &self.tokens.read_id)
    }

    /// The Authorization header of `who`.
    fn authorization(&self, who: Who) -> Option<String> {
        let tokens = &self.tokens;
        match who {
            Who::Anonymous => None,
            Who::Reader => Some(basic("bob", &password("bob"))),
            Who::Writer => Some(basic("alice", &password("alice"))),
            Who::Admin => Some(basic("admin", &password("admin"))),
            Who::OtherWriter => Some(basic("carol", &password("carol"))),
            Who::WrongPassword => Some(basic("alice", "not-alice-pw")),
            Who::RevokedToken => Some(basic("alice", &tokens.revoked)),
            Who::ExpiredToken => Some(format!("Bearer {}", tokens.expired)),
            Who::ReadToken => Some(basic("ci", &tokens.read)),
            Who::Bearer => Some(format!("Bearer {}", tokens.bearer)),
        }
    }

    /// The user name and password `who` signs in with in a password grant.
    fn grant_credentials(&self, who: Who) -> Option<(String, String)> {
        let tokens = &self.tokens;
        let pair = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        match who {
            Who::Anonymous => None,
            Who::Reader => pair("bob", &password("bob")),
            Who::Writer => pair("alice", &password("alice")),
            Who::Admin => pair("admin", &password("admin")),
            Who::OtherWriter => pair("carol", &password("carol")),
            Who::WrongPassword => pair("alice", "not-alice-pw"),
            Who::RevokedToken => pair("alice", &tokens.revoked),
            Who::ExpiredToken => pair("alice", &tokens.expired),
            Who::ReadToken => pair("ci", &tokens.read),
            Who::Bearer => pair("bob", &tokens.bearer),
        }
    }

    /// The request of `row` as `who` (none: as the open server gets it).
    async fn send(&self, row: &Row, who: Option<Who>) -> (String, TestResponse) {
        let path = self.resolve(&row.path);
        let (content_type, body) = body_of(&row.body, who.and_then(|w| self.grant_credentials(w)));
        let mut headers = vec![];
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type));
        }
        if row.body == "chunk" {
            headers.push(("content-range", format!("0-{}", CHUNK.len() - 1)));
        }
        // A password grant carries its credentials in the form.
        if row.body != "grant"
            && let Some(authorization) = who.and_then(|w| self.authorization(w))
        {
            headers.push(("authorization", authorization));
        }
        let request_text = format!("{} {path} {}", row.method, String::from_utf8_lossy(&body));
        (request_text, self.call(row.method.clone(), &path, &headers, body).await)
    }
}

const CHUNK: &[u8] = b"a chunk of an upload";
const FINISH: &[u8] = b"the last bytes of an upload";

fn other_config() -> Vec<u8> {
    br#"{"public":"other-x-config"}"#.to_vec()
}

fn other_layer() -> Vec<u8> {
    b"other/x public layer bytes".to_vec()
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// The `access` claim of a bearer token.
fn bearer_scopes(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    claims["access"].clone()
}

/// A row's body and its content type.
fn body_of(kind: &str, grant: Option<(String, String)>) -> (Option<String>, Vec<u8>) {
    let json_body = |value: Value| (Some("application/json".to_string()), value.to_string().into_bytes());
    let package = |space: &str, chart: &str, version: &str| json!({"independent": true, "space": space, "chart": chart, "version": version});
    match kind {
        "-" => (None, vec![]),
        "upload" => {
            let (content_type, body) =
                multipart(&[("chartfile", "c.tgz", &ChartBuilder::new("newchart", "1.0.0").build())]);
            (Some(content_type), body)
        }
        "replace" => {
            let archive =
                ChartBuilder::new(CHART, VERSION).with(&format!("{CHART}/values.yaml"), "replaced: true\n").build();
            let (content_type, body) = multipart(&[("chartfile", "c.tgz", &archive)]);
            (Some(content_type), body)
        }
        "compose-a" => json_body(json!({
            "save": {"chart": "composed", "version": "1.0.0"},
            "configs": {"package": package("team-a", CHART, VERSION), "_config": {}},
        })),
        "compose-ao" => json_body(json!({
            "save": {"chart": "composed", "version": "1.0.0"},
            "configs": {
                "package": package("team-a", CHART, VERSION),
                "_config": {},
                "db": {"package": package("other", "openchart", "1.0.0"), "_config": {}},
            },
        })),
        "metadata" => {
            json_body(json!({"apiVersion": "v2", "name": CHART, "version": VERSION, "description": "changed"}))
        }
        "values" => json_body(json!({"replicaCount": 2})),
        "policy" => json_body(json!({"immutable": true, "quota": {"maxversions": 100}})),
        "cm-upload" => (Some("application/octet-stream".into()), ChartBuilder::new("cmchart", "0.1.0").build()),
        "cm-prov" => (Some("application/octet-stream".into()), team_a().provenance.clone()),
        "manifest" => {
            let team_a = team_a();
            let manifest = manifest_bytes(&json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST_MEDIA_TYPE,
                "config": descriptor(EXAMPLE_CONFIG, &team_a.artifact_config),
                "layers": [descriptor(EXAMPLE_LAYER, &team_a.artifact_layer)],
                "annotations": {"purpose": "the access matrix"},
            }));
            (Some(OCI_MANIFEST_MEDIA_TYPE.into()), manifest)
        }
        "chunk" => (Some("application/octet-stream".into()), CHUNK.to_vec()),
        "finish" => (Some("application/octet-stream".into()), FINISH.to_vec()),
        "grant" => {
            let mut form = vec![("grant_type", "password".to_string()), ("service", "chartyard".into())];
            form.push(("scope", format!("repository:team-a/{CHART}:pull")));
            if let Some((user, password)) = grant {
                form.push(("username", user));
                form.push(("password", password));
            }
            (Some("application/x-www-form-urlencoded".into()), serde_urlencoded::to_string(form).unwrap().into_bytes())
        }
        "ui-upload" => {
            let (content_type, body) =
                multipart(&[("chart", "c.tgz", &ChartBuilder::new("newchart", "1.0.0").build())]);
            (Some(content_type), body)
        }
        "ui-space" => (Some("application/x-www-form-urlencoded".into()), b"space=team-new".to_vec()),
        "ui-token" => (Some("application/x-www-form-urlencoded".into()), b"role=read&expires=1h".to_vec()),
        "new-token" => json_body(json!({"role": "read", "expires": "1h", "description": "made by the matrix"})),
        other => panic!("no body {other:?}"),
    }
}

/// What is wrong with `response` to a request that expects `expected`; `open` is the open
/// server's status for the same request.
fn check_cell(row: &Row, expected: &str, open: u16, response: &TestResponse) -> Option<String> {
    let status = response.status;
    let want = match expected {
        "ok" => {
            if [401, 403].contains(&open) || open >= 500 {
                return Some(format!("the open server answers {open}; the cell cannot expect that"));
            }
            open
        }
        number => number.parse().unwrap(),
    };
    if status != want {
        let body: String = response.text().chars().take(160).collect();
        return Some(format!("expected {want} ({expected}), got {status}: {body}"));
    }
    if status == 401 && row.path.starts_with("/_/ui/") {
        // A browser gets a page: the sign-in form in place of a page it may not read, no
        // challenge (which would open the browser's own dialog).
        let ok = response.header("www-authenticate").is_none()
            && (row.method != Method::GET || row.path.contains("/-/") || response.text().contains("id=\"signin\""));
        return (!ok).then(|| format!("401 of the UI: {:?}", response.text().chars().take(300).collect::<String>()));
    }
    if status == 401 {
        let challenge = response.header("www-authenticate").unwrap_or_default();
        let ok = if row.path.starts_with("/v2") || row.path.starts_with("{session}") {
            challenge.starts_with(&format!("Bearer realm=\"{REALM}\",service=\"chartyard\""))
                && (row.method == Method::HEAD || response.text().contains("\"UNAUTHORIZED\""))
        } else {
            challenge.starts_with("Basic realm=")
        };
        if !ok {
            return Some(format!(
                "401 without its challenge: WWW-Authenticate {challenge:?}, body {}",
                response.text()
            ));
        }
    }
    None
}

#[tokio::test]
async fn every_route_family_answers_every_caller_as_the_policy_says() {
    let rows = rows();
    let mut failures = Vec::new();
    let mut table = String::new();
    for row in &rows {
        // What the open server answers, for the cells where the caller is allowed.
        let open = Fixture::new(false).await.send(row, None).await.1.status;
        let mut line = format!("{:<26}", row.family);
        for ((who, name), expected) in COLUMNS.iter().zip(&row.expected) {
            let fixture = Fixture::new(true).await;
            let (_, response) = fixture.send(row, Some(*who)).await;
            let _ = write!(line, " {:>6}", response.status);
            if let Some(failure) = check_cell(row, expected, open, &response) {
                failures.push(format!("{} ({} {}) × {name}: {failure}", row.family, row.method, row.path));
                line.push('!');
            }
        }
        table.push_str(&line);
        table.push('\n');
    }
    let cells = rows.len() * COLUMNS.len();
    let header: String = COLUMNS.iter().map(|(_, n)| format!(" {n:>6}")).collect();
    eprintln!("{:<26}{header}\n{table}", "route family");
    eprintln!(
        "access matrix: {} route families × {} callers = {cells} cells, {} as expected, {} not",
        rows.len(),
        COLUMNS.len(),
        cells - failures.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{} of {cells} cells are wrong:\n{}", failures.len(), failures.join("\n"));
}

// ---- zero leaks ----

/// Requests of callers without rights in team-a, each answer searched for team-a's data.
struct Scan<'a> {
    fixture: &'a Fixture,
    marks: Vec<(String, Vec<u8>)>,
    failures: Vec<String>,
    probes: usize,
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Scan<'_> {
    /// Finds team-a's data in an answer to `request` (what the request itself sent may
    /// come back: an error may name the path it was asked for).
    fn scan(&mut self, label: &str, request: &str, response: &TestResponse) {
        self.probes += 1;
        if response.status >= 500 {
            self.failures.push(format!("{label}: {} {}", response.status, response.text()));
        }
        let headers: Vec<u8> = response.headers.iter().flat_map(|(_, v)| [v.as_bytes(), b"\n"].concat()).collect();
        for (what, mark) in &self.marks {
            if holds(request.as_bytes(), mark) {
                continue;
            }
            if holds(&response.body, mark) || holds(&headers, mark) {
                let body: String = response.text().chars().take(200).collect();
                self.failures.push(format!("{label}: the answer ({}) holds team-a's {what}: {body}", response.status));
            }
        }
    }

    /// One request as `who`; `expect`: its status, when it matters.
    async fn probe(
        &mut self,
        who: Who,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
        expect: Option<u16>,
    ) -> TestResponse {
        let mut headers = vec![];
        if let Some(authorization) = self.fixture.authorization(who) {
            headers.push(("authorization", authorization));
        }
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type.to_string()));
        }
        let request = format!("{method} {path} {}", String::from_utf8_lossy(&body));
        let response = self.fixture.call(method.clone(), path, &headers, body).await;
        let label = format!("{who:?} {method} {path}");
        if let Some(status) = expect
            && response.status != status
        {
            self.failures.push(format!("{label}: expected {status}, got {}: {}", response.status, response.text()));
        }
        self.scan(&label, &request, &response);
        response
    }

    async fn get(&mut self, who: Who, path: &str, expect: Option<u16>) -> TestResponse {
        self.probe(who, Method::GET, path, None, vec![], expect).await
    }

    fn check(&mut self, label: &str, ok: bool, detail: impl std::fmt::Display) {
        if !ok {
            self.failures.push(format!("{label}: {detail}"));
        }
    }
}

#[tokio::test]
async fn callers_without_read_in_a_space_learn_nothing_of_it() {
    let team_a = team_a();
    let fixture = Fixture::new(true).await;
    let mut scan = Scan { fixture: &fixture, marks: team_a.marks(), failures: vec![], probes: 0 };
    let rows = rows();
    for who in [Who::OtherWriter, Who::Anonymous] {
        // Every route family of the matrix (refused ones change nothing).
        for row in &rows {
            let (request, response) = fixture.send(row, Some(who)).await;
            scan.scan(&format!("{who:?} {}", row.family), &request, &response);
        }
        let (denied, may_read_other) = match who {
            Who::OtherWriter => (403, true),
            _ => (401, false),
        };
        let in_other = if may_read_other { 404 } else { 401 };

        // Listings: only what the caller may read.
        let spaces = scan.get(who, "/api/v1/spaces", Some(200)).await.json(200);
        let expected = if may_read_other { json!(["other"]) } else { json!([]) };
        scan.check("space list", spaces["items"] == expected, &spaces);
        let catalog = scan.get(who, "/v2/_catalog", Some(200)).await.json(200);
        let repositories = catalog["repositories"].as_array().cloned().unwrap_or_default();
        let only_other = repositories.iter().all(|r| r.as_str().is_some_and(|r| r.starts_with("other/")));
        scan.check("catalog", only_other && repositories.is_empty() != may_read_other, &catalog);
        for path in ["/other/index.yaml", "/other/index.json", "/api/other/charts", "/api/v1/spaces/other/metadata"] {
            scan.get(who, path, Some(if may_read_other { 200 } else { 401 })).await;
        }
        scan.get(who, "/v2/other/x/tags/list", Some(if may_read_other { 200 } else { 401 })).await;
        scan.get(who, &format!("/api/v1/spaces/other/charts/{CHART}/versions"), Some(in_other)).await;
        scan.get(who, "/_/tokens?all=true", Some(denied)).await;

        // team-a's blobs and manifests by digest, through a repository the caller may read.
        for (what, digest) in team_a.digests() {
            let manifest = what.ends_with("manifest");
            let kind = if manifest { "manifests" } else { "blobs" };
            let path = format!("/v2/other/x/{kind}/{digest}");
            scan.get(who, &path, Some(in_other)).await;
            scan.probe(who, Method::HEAD, &path, None, vec![], Some(in_other)).await;
            scan.get(who, &format!("/v2/other/x/referrers/{digest}"), None).await;
            // Mounting it from team-a: a new upload session, not the blob.
            let mount = format!("/v2/other/x/blobs/uploads/?mount={digest}&from=team-a/{CHART}");
            let mounted =
                scan.probe(who, Method::POST, &mount, None, vec![], Some(if may_read_other { 202 } else { 401 })).await;
            scan.check(&format!("mount of team-a's {what}"), mounted.status != 201, mounted.status);
            if !manifest {
                // Claiming it by digest without its bytes: whole, or as the end of a session.
                let claim = format!("/v2/other/x/blobs/uploads/?digest={digest}");
                let claimed =
                    scan.probe(who, Method::POST, &claim, Some("application/octet-stream"), vec![], None).await;
                scan.check(&format!("claim of team-a's {what}"), claimed.status != 201, claimed.status);
                if may_read_other {
                    let started =
                        scan.probe(who, Method::POST, "/v2/other/x/blobs/uploads/", None, vec![], Some(202)).await;
                    let location = started.header("location").unwrap_or_default().to_string();
                    let finish = format!("{location}?digest={digest}");
                    let finished =
                        scan.probe(who, Method::PUT, &finish, Some("application/octet-stream"), vec![], None).await;
                    scan.check(&format!("empty upload as team-a's {what}"), finished.status != 201, finished.status);
                }
            }
            scan.get(who, &path, Some(in_other)).await;
        }

        // A manifest in other/x naming team-a's blobs is refused, and they stay unreadable.
        let steal = manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": descriptor(HELM_CONFIG_MEDIA_TYPE, &team_a.config),
            "layers": [descriptor(HELM_CHART_MEDIA_TYPE, &team_a.archive)],
        }));
        let put = scan
            .probe(who, Method::PUT, "/v2/other/x/manifests/steal", Some(OCI_MANIFEST_MEDIA_TYPE), steal, None)
            .await;
        scan.check("manifest naming team-a's blobs", put.status != 201 && put.status < 500, put.status);
        scan.get(who, &format!("/v2/other/x/blobs/{}", digest_of(&team_a.archive)), Some(in_other)).await;
        // Nor may it be pushed as a chart of the same name into `other`.
        scan.get(who, &format!("/v2/other/{CHART}/manifests/{VERSION}"), Some(in_other)).await;

        // Composing into `other` from team-a's chart: refused, previews included.
        let compose = json!({
            "save": {"chart": "copied", "version": "1.0.0"},
            "configs": {"package": {"independent": true, "space": "team-a", "chart": CHART, "version": VERSION}, "_config": {}},
        })
        .to_string()
        .into_bytes();
        for query in ["?dryRun=true", ""] {
            let path = format!("/api/v1/spaces/other/charts{query}");
            scan.probe(who, Method::POST, &path, Some("application/json"), compose.clone(), Some(denied)).await;
        }
        scan.get(who, "/api/v1/spaces/other/charts/copied/versions", Some(in_other)).await;

        // A bearer token asked for team-a grants nothing there.
        let path = format!("/_/token?service=chartyard&scope=repository:team-a/{CHART}:pull,push,delete");
        let answer = scan.get(who, &path, Some(200)).await.json(200);
        let bearer = answer["token"].as_str().unwrap_or_default().to_string();
        scan.check("bearer token scopes", bearer_scopes(&bearer) == json!([]), bearer_scopes(&bearer));
        let headers = [("authorization", format!("Bearer {bearer}"))];
        for path in [
            format!("/v2/team-a/{CHART}/manifests/{VERSION}"),
            format!("/v2/team-a/{CHART}/blobs/{}", digest_of(&team_a.archive)),
            format!("/v2/team-a/{CHART}/tags/list"),
            "/v2/_catalog".to_string(),
        ] {
            let response = fixture.call(Method::GET, &path, &headers, vec![]).await;
            scan.scan(&format!("{who:?} with its bearer token GET {path}"), &path, &response);
            if path != "/v2/_catalog" {
                scan.check(&path, [401, 403].contains(&response.status), response.status);
            }
        }
    }
    eprintln!(
        "zero leaks: {} answers to carol and anonymous callers searched for {} marks of team-a's data, {} findings",
        scan.probes,
        scan.marks.len(),
        scan.failures.len()
    );
    assert!(scan.failures.is_empty(), "{} findings:\n{}", scan.failures.len(), scan.failures.join("\n"));
}

/// A writer's bearer token for pulling one repository deletes nothing, through any API,
/// and is not exchanged for a token with more.
#[tokio::test]
async fn a_bearer_token_does_no_more_than_its_scopes() {
    let fixture = Fixture::new(true).await;
    let alice = [("authorization", basic("alice", &password("alice")))];
    let path = format!("/_/token?service=chartyard&scope=repository:team-a/{CHART}:pull");
    let bearer =
        fixture.call(Method::GET, &path, &alice, vec![]).await.json(200)["token"].as_str().unwrap().to_string();
    assert_eq!(
        bearer_scopes(&bearer),
        json!([{"type": "repository", "name": "team-a/secretchart", "actions": ["pull"]}])
    );
    let with_bearer = [("authorization", format!("Bearer {bearer}"))];

    let pull =
        fixture.call(Method::GET, &format!("/v2/team-a/{CHART}/manifests/{VERSION}"), &with_bearer, vec![]).await;
    assert_eq!(pull.status, 200, "{}", pull.text());
    let delete_version = format!("/api/v1/spaces/team-a/charts/{CHART}/versions/{VERSION}");
    let deletes = [
        (Method::DELETE, delete_version.clone()),
        (Method::DELETE, format!("/api/team-a/charts/{CHART}/{VERSION}")),
        (Method::DELETE, format!("/v2/team-a/{CHART}/manifests/{}", digest_of(&team_a().artifact))),
        (Method::DELETE, format!("/v2/team-a/{CHART}/blobs/{}", digest_of(&team_a().loose))),
    ];
    for (method, path) in deletes {
        let response = fixture.call(method.clone(), &path, &with_bearer, vec![]).await;
        assert_eq!(response.status, 401, "{method} {path}: {}", response.text());
    }
    let exchanged = fixture.call(Method::GET, &path.replace(":pull", ":pull,push,delete"), &with_bearer, vec![]).await;
    assert_eq!(exchanged.status, 401, "a bearer token is not exchanged: {}", exchanged.text());
    assert!(exchanged.header("www-authenticate").is_some_and(|c| c.starts_with("Basic ")));
    for (method, path) in [(Method::GET, "/_/whoami"), (Method::GET, "/_/tokens"), (Method::GET, "/api/v1/spaces")] {
        let response = fixture.call(method.clone(), path, &with_bearer, vec![]).await;
        assert_eq!(response.status, 401, "{method} {path}: {}", response.text());
    }
    // Everything is still there.
    assert_eq!(fixture.call(Method::GET, &delete_version, &alice, vec![]).await.status, 200);
    let artifact = format!("/v2/team-a/{CHART}/manifests/{ARTIFACT_TAG}");
    assert_eq!(fixture.call(Method::GET, &artifact, &alice, vec![]).await.status, 200);
}

/// The entries of team-a's audit log, read as the global admin, once it holds at least
/// `count` (entries are stored in the background, after each answer).
async fn team_a_audit(fixture: &Fixture, count: usize) -> Vec<Value> {
    let admin = [("authorization", basic("admin", &password("admin")))];
    for _ in 0..400 {
        let response = fixture.call(Method::GET, "/api/v1/spaces/team-a/audit?limit=1000", &admin, vec![]).await;
        assert_eq!(response.status, 200, "{}", response.text());
        let page: Value = serde_json::from_slice(&response.body).unwrap();
        let items = page["items"].as_array().unwrap().clone();
        assert_eq!(page["metadata"]["total"].as_u64(), Some(items.len() as u64), "{page}");
        if items.len() >= count {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("team-a's audit log never held {count} entries");
}

#[tokio::test]
async fn writes_and_refused_writes_show_in_the_space_audit_log() {
    let fixture = Fixture::new(true).await;
    // The seeding's writes in team-a: its creation, six blobs, two manifests, an upload.
    let seeded = 10;
    let alice = ("authorization", basic("alice", &password("alice")));
    let (content_type, body) = multipart(&[("chartfile", "c.tgz", &ChartBuilder::new("audited", "1.0.0").build())]);
    let upload = [alice.clone(), ("content-type", content_type.clone())];
    let response = fixture.call(Method::POST, "/api/v1/spaces/team-a/charts", &upload, body.clone()).await;
    assert_eq!(response.status, 201, "{}", response.text());
    let response = fixture
        .call(
            Method::DELETE,
            "/api/v1/spaces/team-a/charts/audited/versions/1.0.0",
            std::slice::from_ref(&alice),
            vec![],
        )
        .await;
    assert_eq!(response.status, 204, "{}", response.text());
    // Refused: bob may only read, the read-only token may not write, nobody signed in.
    let bob = [("authorization", basic("bob", &password("bob"))), ("content-type", content_type.clone())];
    let response = fixture.call(Method::POST, "/api/v1/spaces/team-a/charts", &bob, body.clone()).await;
    assert_eq!(response.status, 403, "{}", response.text());
    let token = [("authorization", basic("ci", &fixture.tokens.read)), ("content-type", content_type.clone())];
    let response = fixture.call(Method::POST, "/api/team-a/charts", &token, body.clone()).await;
    assert_eq!(response.status, 403, "{}", response.text());
    let response = fixture.call(Method::DELETE, &format!("/api/team-a/charts/{CHART}/{VERSION}"), &[], vec![]).await;
    assert_eq!(response.status, 401, "{}", response.text());

    let entries = team_a_audit(&fixture, seeded + 5).await;
    assert_eq!(entries.len(), seeded + 5, "{entries:#?}");
    // Stored in the background: no more come.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(team_a_audit(&fixture, seeded + 5).await.len(), seeded + 5);
    let fields = |entry: &Value| {
        let text = |key: &str| entry[key].as_str().map(str::to_string);
        (text("user"), text("via"), text("method"), text("route"), text("path"), entry["status"].as_u64())
    };
    let own = |user: &str, via: &str, method: &str, route: &str, path: &str, status: u64| {
        let own = |s: &str| Some(s.to_string());
        (own(user), own(via), own(method), own(route), own(path), Some(status))
    };
    let version_route = "/api/v1/spaces/{space}/charts/{chart}/versions/{version}";
    let read_via = format!("token:{}", fixture.tokens.read_id);
    // Newest first.
    let expected = [
        own(
            "anonymous",
            "anonymous",
            "DELETE",
            "/api/{space}/charts/{name}/{version}",
            &format!("/api/team-a/charts/{CHART}/{VERSION}"),
            401,
        ),
        own("alice", &read_via, "POST", "/api/{space}/charts", "/api/team-a/charts", 403),
        own("bob", "password", "POST", "/api/v1/spaces/{space}/charts", "/api/v1/spaces/team-a/charts", 403),
        own("alice", "password", "DELETE", version_route, "/api/v1/spaces/team-a/charts/audited/versions/1.0.0", 204),
        own("alice", "password", "POST", "/api/v1/spaces/{space}/charts", "/api/v1/spaces/team-a/charts", 201),
    ];
    let newest: Vec<_> = entries[..5].iter().map(fields).collect();
    assert_eq!(newest, expected);
    for entry in &entries[..5] {
        assert_eq!(entry["client"], "127.0.0.1", "{entry}");
        assert!(humantime::parse_rfc3339(entry["time"].as_str().unwrap()).is_ok(), "{entry}");
    }
    // The chart and version where the route names them.
    assert_eq!((&entries[0]["chart"], &entries[0]["version"]), (&json!(CHART), &json!(VERSION)));
    assert_eq!((&entries[3]["chart"], &entries[3]["version"]), (&json!("audited"), &json!("1.0.0")));
    assert!(entries[4].get("chart").is_none(), "{}", entries[4]);
    // The seeding (the space's creation, OCI pushes as the admin) is there too, oldest last.
    let oldest = fields(entries.last().unwrap());
    assert_eq!(oldest, own("admin", "password", "POST", "/api/v1/spaces", "/api/v1/spaces", 201));

    // Only the space's admins read it.
    for user in ["alice", "bob"] {
        let headers = [("authorization", basic(user, &password(user)))];
        let response = fixture.call(Method::GET, "/api/v1/spaces/team-a/audit", &headers, vec![]).await;
        assert_eq!(response.status, 403, "{user}: {}", response.text());
    }
    // Paged like every list.
    let admin = [("authorization", basic("admin", &password("admin")))];
    let response = fixture.call(Method::GET, "/api/v1/spaces/team-a/audit?start=1&limit=2", &admin, vec![]).await;
    let page: Value = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(page["metadata"], json!({"total": seeded + 5, "itemsLength": 2}));
    assert_eq!(page["items"][0], entries[1]);
    let response = fixture.call(Method::GET, "/api/v1/spaces/team-a/audit?start=x", &admin, vec![]).await;
    assert_eq!(response.status, 400, "{}", response.text());
}
