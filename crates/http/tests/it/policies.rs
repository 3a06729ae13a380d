//! Space policies through every write path, in process: an immutable space refuses every
//! rewrite (403) and every delete but a global admin's, a space at its quota refuses
//! uploads (413), a space requiring provenance refuses uploads without one; each refusal
//! stores nothing (the store's keys are the same before and after).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::Method;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chartyard_core::access::{Policy, Role, Rule, SpacePattern};
use chartyard_core::oci::{HELM_CHART_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE, OCI_MANIFEST_MEDIA_TYPE};
use chartyard_http::auth::AuthOptions;
use futures::TryStreamExt;
use object_store::ObjectStore;
use serde_json::{Value, json};

use crate::app::{TestApp, TestResponse, api, multipart};
use crate::charts::{ChartBuilder, descriptor, digest_of, manifest_bytes, sha256};

const SPACE: &str = "s";

/// `admin` is a global admin; `alice` may write (and delete) in `s`; `bob` may read it.
fn auth() -> AuthOptions {
    let rules = vec![Rule {
        spaces: vec![SpacePattern::new(SPACE).unwrap()],
        users: BTreeMap::from([("alice".into(), Role::Write), ("bob".into(), Role::Read), ("sam".into(), Role::Admin)]),
        groups: BTreeMap::new(),
    }];
    let policy = Policy::new(["admin".to_string()], vec![], rules, &BTreeMap::new(), true).unwrap();
    let mut options = AuthOptions::new(policy);
    options.users = ["admin", "alice", "bob", "sam"]
        .iter()
        .map(|u| (u.to_string(), bcrypt::hash(format!("{u}-pw"), 4).unwrap()))
        .collect();
    options.failure_delay = Duration::from_millis(1);
    options.bcrypt_concurrency = 2;
    options
}

/// One caller's requests.
struct As<'a> {
    app: &'a TestApp,
    authorization: String,
}

fn as_user<'a>(app: &'a TestApp, user: &str) -> As<'a> {
    As { app, authorization: format!("Basic {}", STANDARD.encode(format!("{user}:{user}-pw"))) }
}

impl As<'_> {
    async fn send(&self, method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>) -> TestResponse {
        let mut headers = vec![("authorization", self.authorization.as_str())];
        if let Some(content_type) = content_type {
            headers.push(("content-type", content_type));
        }
        self.app.send_with(method, path, &headers, Body::from(body)).await
    }

    async fn json(&self, method: Method, path: &str, body: &Value) -> TestResponse {
        self.send(method, path, Some("application/json"), body.to_string().into_bytes()).await
    }

    async fn upload(&self, archive: &[u8]) -> TestResponse {
        let (content_type, body) = multipart(&[("chartfile", "chart.tgz", archive)]);
        self.send(Method::POST, &api(&format!("/spaces/{SPACE}/charts")), Some(&content_type), body).await
    }

    async fn set_policy(&self, policy: Value) -> TestResponse {
        self.json(Method::PUT, &api(&format!("/spaces/{SPACE}/policy")), &policy).await
    }

    /// Pushes a chart's config and archive blobs over OCI; answers its manifest.
    async fn push_chart_blobs(&self, name: &str, version: &str, archive: &[u8]) -> Vec<u8> {
        let config = serde_json::to_vec(&json!({"apiVersion": "v2", "name": name, "version": version})).unwrap();
        for blob in [&config[..], archive] {
            let path = format!("/v2/{SPACE}/{name}/blobs/uploads/?digest={}", digest_of(blob));
            let pushed = self.send(Method::POST, &path, Some("application/octet-stream"), blob.to_vec()).await;
            assert_eq!(pushed.status, 201, "blob: {}", pushed.text());
        }
        manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": descriptor(HELM_CONFIG_MEDIA_TYPE, &config),
            "layers": [descriptor(HELM_CHART_MEDIA_TYPE, archive)],
        }))
    }

    /// Pushes a generic artifact's config and one layer; answers its manifest.
    async fn push_artifact(&self, name: &str, layer: &[u8]) -> Vec<u8> {
        let config = b"{}".to_vec();
        for blob in [&config[..], layer] {
            let path = format!("/v2/{SPACE}/{name}/blobs/uploads/?digest={}", digest_of(blob));
            let pushed = self.send(Method::POST, &path, Some("application/octet-stream"), blob.to_vec()).await;
            assert_eq!(pushed.status, 201, "blob: {}", pushed.text());
        }
        manifest_bytes(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": descriptor("application/vnd.example.config.v1+json", &config),
            "layers": [descriptor("application/vnd.example.layer.v1.tar", layer)],
        }))
    }

    async fn put_manifest(&self, name: &str, reference: &str, manifest: &[u8]) -> TestResponse {
        let path = format!("/v2/{SPACE}/{name}/manifests/{reference}");
        self.send(Method::PUT, &path, Some(OCI_MANIFEST_MEDIA_TYPE), manifest.to_vec()).await
    }
}

/// Every key in the store.
/// Every key in the store but the audit log's (which records the refusals themselves).
async fn keys(app: &TestApp) -> Vec<String> {
    let objects: Vec<object_store::ObjectMeta> = app.store.list(None).try_collect().await.unwrap();
    let mut keys: Vec<String> =
        objects.into_iter().map(|o| o.location.to_string()).filter(|k| !k.starts_with("audit/")).collect();
    keys.sort();
    keys
}

fn chart(name: &str, version: &str, values: &str) -> Vec<u8> {
    ChartBuilder::new(name, version).with(&format!("{name}/values.yaml"), values).build()
}

#[tokio::test]
async fn policy_is_read_by_readers_set_by_space_admins_and_validated() {
    let app = TestApp::builder().build_with_access(auth()).await;
    let (admin, alice, bob, sam) =
        (as_user(&app, "admin"), as_user(&app, "alice"), as_user(&app, "bob"), as_user(&app, "sam"));
    let path = api(&format!("/spaces/{SPACE}/policy"));
    assert_eq!(admin.send(Method::GET, &path, None, vec![]).await.status, 404, "no space");
    assert_eq!(admin.send(Method::POST, &api(&format!("/spaces?space={SPACE}")), None, vec![]).await.status, 201);
    assert_eq!(bob.send(Method::GET, &path, None, vec![]).await.json(200), json!({}));

    let policy = json!({"immutable": true, "retention": {"keeplast": 3, "maxagedays": 30, "keepstable": true},
        "quota": {"maxbytes": 1_000_000, "maxversions": 10}, "requireprovenance": false});
    assert_eq!(alice.set_policy(policy.clone()).await.status, 403, "writers do not set policies");
    assert_eq!(sam.set_policy(policy.clone()).await.json(200), policy, "a space admin does");
    assert_eq!(bob.send(Method::GET, &path, None, vec![]).await.json(200), policy);

    for bad in [
        json!({"immutible": true}),
        json!({"quota": {"maxversions": 0}}),
        json!({"quota": {"maxbytes": -5}}),
        json!({"retention": {"keeplast": 0}}),
        json!({"retention": {"maxagedays": 0}}),
        json!({"immutable": "yes"}),
        json!([1, 2]),
    ] {
        let message = admin.set_policy(bad.clone()).await.error(400);
        assert!(!message.is_empty(), "{bad}");
    }
    let not_json = admin.send(Method::PUT, &path, Some("application/json"), b"{not json".to_vec()).await;
    assert_eq!(not_json.status, 400);
    assert_eq!(bob.send(Method::GET, &path, None, vec![]).await.json(200), policy, "refused bodies change nothing");
}

#[tokio::test]
async fn an_immutable_space_refuses_every_rewrite_and_deletes_but_by_a_global_admin() {
    let app = TestApp::builder().build_with_access(auth()).await;
    let (admin, alice) = (as_user(&app, "admin"), as_user(&app, "alice"));
    let original = chart("web", "1.0.0", "a: 1\n");
    assert_eq!(alice.upload(&original).await.status, 201);
    let manifest = alice.push_chart_blobs("oci", "2.0.0", &chart("oci", "2.0.0", "b: 1\n")).await;
    assert_eq!(alice.put_manifest("oci", "2.0.0", &manifest).await.status, 201);
    let artifact = alice.push_artifact("art", b"first").await;
    assert_eq!(alice.put_manifest("art", "sig", &artifact).await.status, 201);
    assert_eq!(admin.set_policy(json!({"immutable": true})).await.status, 200);
    // What a refused OCI push needs is pushed first: its blobs are not what is refused.
    let other = chart("oci", "2.0.0", "b: 2\n");
    let other_manifest = alice.push_chart_blobs("oci", "2.0.0", &other).await;
    let other_artifact = alice.push_artifact("art", b"second").await;
    let prov = provenance("web", "1.0.0", &original);
    let before = keys(&app).await;

    let version = api(&format!("/spaces/{SPACE}/charts/web/versions/1.0.0"));
    let replacement = chart("web", "1.0.0", "a: 2\n");
    let (content_type, replace_body) = multipart(&[("chartfile", "chart.tgz", &replacement)]);
    let refusals = [
        ("v1 upload again", alice.upload(&replacement).await),
        ("v1 replace", alice.send(Method::PUT, &version, Some(&content_type), replace_body).await),
        (
            "v1 metadata",
            alice
                .json(
                    Method::PUT,
                    &format!("{version}/manifests/metadata"),
                    &json!({"name": "web", "version": "1.0.0", "description": "x"}),
                )
                .await,
        ),
        ("v1 values", alice.json(Method::PUT, &format!("{version}/manifests/values"), &json!({"a": 3})).await),
        (
            "cm upload",
            alice
                .send(
                    Method::POST,
                    &format!("/api/{SPACE}/charts"),
                    Some("application/octet-stream"),
                    replacement.clone(),
                )
                .await,
        ),
        (
            "cm upload force",
            alice
                .send(
                    Method::POST,
                    &format!("/api/{SPACE}/charts?force"),
                    Some("application/octet-stream"),
                    replacement.clone(),
                )
                .await,
        ),
        (
            "cm force as admin",
            admin
                .send(
                    Method::POST,
                    &format!("/api/{SPACE}/charts?force=true"),
                    Some("application/octet-stream"),
                    replacement.clone(),
                )
                .await,
        ),
        ("oci push over a version", alice.put_manifest("oci", "2.0.0", &other_manifest).await),
        ("oci tag moved", alice.put_manifest("art", "sig", &other_artifact).await),
        (
            "cm provenance",
            alice.send(Method::POST, &format!("/api/{SPACE}/prov"), Some("application/octet-stream"), prov).await,
        ),
        ("v1 delete version", alice.send(Method::DELETE, &version, None, vec![]).await),
        (
            "v1 delete chart",
            alice.send(Method::DELETE, &api(&format!("/spaces/{SPACE}/charts/web")), None, vec![]).await,
        ),
        ("cm delete", alice.send(Method::DELETE, &format!("/api/{SPACE}/charts/web/1.0.0"), None, vec![]).await),
        ("oci delete tag", alice.send(Method::DELETE, &format!("/v2/{SPACE}/oci/manifests/2.0.0"), None, vec![]).await),
        (
            "oci delete manifest",
            alice
                .send(Method::DELETE, &format!("/v2/{SPACE}/oci/manifests/{}", digest_of(&manifest)), None, vec![])
                .await,
        ),
    ];
    for (path, response) in refusals {
        assert_eq!(response.status, 403, "{path}: {}", response.text());
        assert!(response.text().contains("immutable"), "{path}: {}", response.text());
    }
    assert_eq!(keys(&app).await, before, "the refusals stored and removed nothing");
    let download = alice.send(Method::GET, &version, None, vec![]).await;
    assert_eq!(download.body.to_vec(), original, "the version is as uploaded");

    // The same chart pushed again over OCI is no rewrite; a new version is no rewrite either.
    assert_eq!(alice.put_manifest("oci", "2.0.0", &manifest).await.status, 201);
    assert_eq!(alice.upload(&chart("web", "1.0.1", "a: 1\n")).await.status, 201);

    // A global admin deletes.
    assert_eq!(admin.send(Method::DELETE, &version, None, vec![]).await.status, 204);
    let tag = admin.send(Method::DELETE, &format!("/v2/{SPACE}/oci/manifests/2.0.0"), None, vec![]).await;
    assert_eq!(tag.status, 202, "{}", tag.text());

    // Without the rule, writers rewrite again.
    assert_eq!(admin.set_policy(json!({"immutable": false})).await.status, 200);
    assert_eq!(
        alice
            .json(
                Method::PUT,
                &api(&format!("/spaces/{SPACE}/charts/web/versions/1.0.1/manifests/values")),
                &json!({"a": 9})
            )
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_space_at_its_quota_refuses_uploads_on_every_path_before_storing() {
    let app = TestApp::builder().build_with_access(auth()).await;
    let (admin, alice) = (as_user(&app, "admin"), as_user(&app, "alice"));
    let first = chart("web", "1.0.0", "a: 1\n");
    assert_eq!(alice.upload(&first).await.status, 201);
    assert_eq!(alice.upload(&chart("web", "1.1.0", "a: 1\n")).await.status, 201);
    assert_eq!(admin.set_policy(json!({"quota": {"maxversions": 2}})).await.status, 200);
    let manifest = alice.push_chart_blobs("oci", "1.0.0", &chart("oci", "1.0.0", "b: 1\n")).await;
    let before = keys(&app).await;

    let third = chart("web", "1.2.0", "a: 1\n");
    let compose = json!({
        "save": {"chart": "composed", "version": "1.0.0"},
        "configs": {"package": {"independent": true, "space": SPACE, "chart": "web", "version": "1.0.0"}, "_config": {}},
    });
    let refusals = [
        ("v1 upload", alice.upload(&third).await),
        (
            "cm upload",
            alice
                .send(Method::POST, &format!("/api/{SPACE}/charts"), Some("application/octet-stream"), third.clone())
                .await,
        ),
        ("compose", alice.json(Method::POST, &api(&format!("/spaces/{SPACE}/charts")), &compose).await),
        ("oci push", alice.put_manifest("oci", "1.0.0", &manifest).await),
    ];
    for (path, response) in refusals {
        assert_eq!(response.status, 413, "{path}: {}", response.text());
        let text = response.text();
        assert!(text.contains("quota") && text.contains("2 versions"), "{path}: {text}");
    }
    assert_eq!(keys(&app).await, before, "the refusals stored nothing");

    // Overwriting a version adds no version; a larger byte quota counts the difference.
    let forced = alice
        .send(
            Method::POST,
            &format!("/api/{SPACE}/charts?force"),
            Some("application/octet-stream"),
            chart("web", "1.0.0", "a: 2\n"),
        )
        .await;
    assert_eq!(forced.status, 201, "{}", forced.text());
    let used: u64 = app.registry.space_versions(SPACE).await.unwrap().iter().map(|v| v.record.size).sum();
    let limit = used + 10;
    assert_eq!(admin.set_policy(json!({"quota": {"maxbytes": limit}})).await.status, 200);
    let response = alice.upload(&third).await;
    let message = response.error(413);
    assert!(message.contains(&format!("{limit} bytes")) && message.contains(&format!("holds {used}")), "{message}");
    let (content_type, body) = multipart(&[("chartfile", "c.tgz", &chart_with_padding("web", "1.1.0"))]);
    let path = api(&format!("/spaces/{SPACE}/charts/web/versions/1.1.0"));
    let replaced = alice.send(Method::PUT, &path, Some(&content_type), body).await;
    assert_eq!(replaced.status, 413, "a larger replacement passes the byte quota: {}", replaced.text());
    assert!(app.registry.version(SPACE, "web", "1.2.0").await.is_err());
}

/// A chart whose archive is larger by incompressible bytes.
fn chart_with_padding(name: &str, version: &str) -> Vec<u8> {
    crate::charts::chart_with_noise(name, version, 4096)
}

#[tokio::test]
async fn a_space_requiring_provenance_refuses_uploads_without_one() {
    let app = TestApp::builder().build_with_access(auth()).await;
    let (admin, alice) = (as_user(&app, "admin"), as_user(&app, "alice"));
    assert_eq!(admin.send(Method::POST, &api(&format!("/spaces?space={SPACE}")), None, vec![]).await.status, 201);
    assert_eq!(admin.set_policy(json!({"requireprovenance": true})).await.status, 200);
    let archive = chart("web", "1.0.0", "a: 1\n");
    let before = keys(&app).await;
    for (path, response) in [
        ("v1 upload", alice.upload(&archive).await),
        (
            "cm upload",
            alice
                .send(Method::POST, &format!("/api/{SPACE}/charts"), Some("application/octet-stream"), archive.clone())
                .await,
        ),
    ] {
        assert_eq!(response.status, 403, "{path}: {}", response.text());
        assert!(response.text().contains("provenance"), "{path}: {}", response.text());
    }
    assert_eq!(keys(&app).await, before);

    // With its provenance file (ChartMuseum's multipart `chart` and `prov`), it is stored.
    let chart_yaml = "apiVersion: v2\nname: web\nversion: 1.0.0\n";
    let prov = format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{chart_yaml}\n...\nfiles:\n  web-1.0.0.tgz: sha256:{}\n-----BEGIN PGP SIGNATURE-----\n\nsig\n-----END PGP SIGNATURE-----\n",
        sha256(&archive)
    );
    let (content_type, body) =
        multipart(&[("chart", "web-1.0.0.tgz", &archive), ("prov", "web-1.0.0.tgz.prov", prov.as_bytes())]);
    let stored = alice.send(Method::POST, &format!("/api/{SPACE}/charts"), Some(&content_type), body).await;
    assert_eq!(stored.status, 201, "{}", stored.text());
    // A rewrite would drop the provenance: refused.
    let values = api(&format!("/spaces/{SPACE}/charts/web/versions/1.0.0/manifests/values"));
    assert_eq!(alice.json(Method::PUT, &values, &json!({"a": 2})).await.status, 403);
}

#[tokio::test]
async fn the_web_ui_upload_is_checked_against_the_policy() {
    let app = TestApp::new();
    let upload = |archive: Vec<u8>| {
        let (content_type, body) = multipart(&[("chart", "chart.tgz", &archive)]);
        let app = &app;
        async move { app.send_with(Method::POST, "/_/ui/s/-/upload", &[("content-type", &content_type)], body).await }
    };
    assert_eq!(upload(chart("web", "1.0.0", "a: 1\n")).await.status, 303);
    let policy = json!({"immutable": true, "quota": {"maxversions": 1}});
    assert_eq!(app.put_json("/spaces/s/policy", &policy).await.json(200), policy);
    let before = keys(&app).await;
    let over = upload(chart("web", "1.1.0", "a: 1\n")).await;
    assert_eq!(over.status, 413, "{}", over.text());
    assert!(over.text().contains("may hold 1 versions"), "{}", over.text());
    let again = upload(chart("web", "1.0.0", "a: 2\n")).await;
    assert_eq!(again.status, 403, "{}", again.text());
    assert!(again.text().contains("immutable"), "{}", again.text());
    assert_eq!(keys(&app).await, before);
    // Without access control everyone is a global admin, who may delete.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    assert_eq!(app.send_with(Method::POST, "/_/ui/s/web/1.0.0/delete", &form, vec![]).await.status, 303);
}

/// A provenance file naming `archive` (its signature is not checked by the server).
fn provenance(name: &str, version: &str, archive: &[u8]) -> Vec<u8> {
    format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\napiVersion: v2\nname: {name}\nversion: {version}\n\n...\nfiles:\n  {name}-{version}.tgz: sha256:{}\n-----BEGIN PGP SIGNATURE-----\n\nsig\n-----END PGP SIGNATURE-----\n",
        sha256(archive)
    )
    .into_bytes()
}
