//! `helm push` / `pull` / `show` / `template` / `dependency update` over `oci://` with real
//! helm v3 and v4, and the same charts through the other APIs.

use crate::common::{ChartBuilder, Helm, SEED_TEST1, Server, TempDir, client, json, sha256, write_file};

/// The manifest digest helm reports for a push or pull.
fn reported_digest(output: &str) -> String {
    output
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest in {output}"))
        .to_string()
}

#[test]
fn helm_pushes_and_pulls_charts_over_oci() {
    let server = Server::start();
    let registry = format!("oci://{}", server.address());
    for major in [3, 4] {
        let Some(helm) = Helm::new(major, "oci-helm").map(Helm::plain_http) else { continue };
        let work = TempDir::new("oci-work");
        let space = format!("oci{major}");
        let v1 = ChartBuilder::new("web", "1.0.0").build();
        let v2 = ChartBuilder::new("web", "1.1.0").with("web/values.yaml", "replicaCount: 4\n").build();
        let built = ChartBuilder::new("web", "0.9.0+build.7").build();
        let mut digests = Vec::new();
        for (file, bytes) in [("web-1.0.0.tgz", &v1), ("web-1.1.0.tgz", &v2), ("web-0.9.0+build.7.tgz", &built)] {
            let pushed = helm.run(&["push", &write_file(&work.path, file, bytes), &format!("{registry}/{space}")]);
            digests.push(reported_digest(&pushed));
        }

        // The pushed versions are chart versions everywhere at once.
        let versions = json(server.get(&format!("/spaces/{space}/charts/web/versions")), 200);
        assert_eq!(versions["items"], serde_json::json!(["0.9.0+build.7", "1.0.0", "1.1.0"]));
        assert_eq!(server.download(&space, "web", "1.1.0"), v2);
        let index = client().get(server.url(&format!("/{space}/index.yaml"))).send().unwrap().text().unwrap();
        assert!(index.contains(&format!("digest: {}", sha256(&v2))), "{index}");

        // Pull by version, latest (no version), by digest and with build metadata: exact bytes.
        let out = TempDir::new("oci-pull");
        let dir = out.path.to_str().unwrap();
        let reference = format!("{registry}/{space}/web");
        let pulled = helm.run(&["pull", &reference, "--version", "1.0.0", "-d", dir]);
        assert_eq!(reported_digest(&pulled), digests[0]);
        assert_eq!(std::fs::read(out.path.join("web-1.0.0.tgz")).unwrap(), v1);
        helm.run(&["pull", &reference, "-d", dir]);
        assert_eq!(std::fs::read(out.path.join("web-1.1.0.tgz")).unwrap(), v2, "latest is the highest version");
        helm.run(&["pull", &reference, "--version", "0.9.0+build.7", "-d", dir]);
        assert_eq!(std::fs::read(out.path.join("web-0.9.0+build.7.tgz")).unwrap(), built);
        let by_digest = TempDir::new("oci-digest");
        helm.run(&["pull", &format!("{reference}@{}", digests[1]), "-d", by_digest.path.to_str().unwrap()]);
        let files: Vec<_> = std::fs::read_dir(&by_digest.path).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        assert_eq!(std::fs::read(files[0].path()).unwrap(), v2);

        let shown = helm.run(&["show", "chart", &reference, "--version", "1.1.0"]);
        assert!(shown.contains("name: web") && shown.contains("version: 1.1.0"), "{shown}");
        let rendered = helm.run(&["template", "x", &reference, "--version", "1.1.0"]);
        assert!(rendered.contains("replicas: \"4\""), "{rendered}");

        // A chart whose dependency lives in an OCI space.
        let parent = work.path.join("shop");
        std::fs::create_dir_all(parent.join("templates")).unwrap();
        std::fs::write(
            parent.join("Chart.yaml"),
            format!(
                "apiVersion: v2\nname: shop\nversion: 0.1.0\ndependencies:\n- name: web\n  version: \"~1.0.0\"\n  repository: {registry}/{space}\n"
            ),
        )
        .unwrap();
        helm.run(&["dependency", "update", parent.to_str().unwrap(), "--plain-http"]);
        assert_eq!(std::fs::read(parent.join("charts/web-1.0.0.tgz")).unwrap(), v1);

        // A different archive under an existing version is refused; the same one is fine.
        let other = ChartBuilder::new("web", "1.0.0").with("web/values.yaml", "replicaCount: 9\n").build();
        let refused = helm.output(&[
            "push",
            &write_file(&work.path, "other/web-1.0.0.tgz", &other),
            &format!("{registry}/{space}"),
        ]);
        assert!(!refused.status.success(), "helm v{major} overwrote a version");
        assert_eq!(server.download(&space, "web", "1.0.0"), v1);
        helm.run(&["push", &write_file(&work.path, "web-1.0.0.tgz", &v1), &format!("{registry}/{space}")]);
    }
}

#[test]
fn charts_from_every_api_are_pullable_over_oci() {
    let server = Server::start();
    let registry = format!("oci://{}", server.address());
    json(server.upload("mixed", SEED_TEST1), 201);
    let from_cm = ChartBuilder::new("cm-chart", "2.0.0-rc.1+b.1").build();
    let status = client().post(server.url("/api/mixed/charts")).body(from_cm.clone()).send().unwrap().status();
    assert_eq!(status, 201);

    let mut first_digest = None;
    for major in [3, 4] {
        let Some(helm) = Helm::new(major, "oci-helm").map(Helm::plain_http) else { continue };
        let out = TempDir::new("mixed");
        let dir = out.path.to_str().unwrap();
        let pulled = helm.run(&["pull", &format!("{registry}/mixed/test"), "--version", "1.0.0", "-d", dir]);
        assert_eq!(std::fs::read(out.path.join("test-1.0.0.tgz")).unwrap(), SEED_TEST1);
        // The manifest the registry wrote for the version never changes.
        let digest = reported_digest(&pulled);
        assert_eq!(*first_digest.get_or_insert(digest.clone()), digest);
        helm.run(&["pull", &format!("{registry}/mixed/cm-chart"), "--version", "2.0.0-rc.1+b.1", "-d", dir]);
        assert_eq!(std::fs::read(out.path.join("cm-chart-2.0.0-rc.1+b.1.tgz")).unwrap(), from_cm);
    }

    // Deleting the version through the seed API removes its tag.
    assert_eq!(server.delete("/spaces/mixed/charts/test/versions/1.0.0").status(), 204);
    let tags = client().get(server.url("/v2/mixed/test/tags/list")).send().unwrap();
    assert_eq!(tags.status(), 404, "no versions left: the repository is gone");
}
