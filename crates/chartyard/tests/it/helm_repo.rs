//! Each space as a Helm repository, driven by real helm v3 and v4: repo add/update,
//! search, pull, template, dependency update, and provenance verification.

use std::process::Command;

use crate::common::{ChartBuilder, Helm, Server, TempDir, client, json, sha256, write_file};
use reqwest::blocking::multipart;

fn cm_upload(server: &Server, space: &str, archive: &[u8], prov: Option<&[u8]>) -> u16 {
    let mut form = multipart::Form::new().part("chart", multipart::Part::bytes(archive.to_vec()).file_name("c.tgz"));
    if let Some(prov) = prov {
        form = form.part("prov", multipart::Part::bytes(prov.to_vec()).file_name("c.tgz.prov"));
    }
    client().post(server.url(&format!("/api/{space}/charts"))).multipart(form).send().unwrap().status().as_u16()
}

#[test]
fn helm_uses_a_space_as_a_repository() {
    let server = Server::start();
    let v1 = ChartBuilder::new("web", "1.0.0").build();
    let v2 = ChartBuilder::new("web", "1.1.0").with("web/values.yaml", "replicaCount: 3\n").build();
    let pre = ChartBuilder::new("web", "2.0.0-rc.1").build();
    let built = ChartBuilder::new("web", "0.9.0+build.7").build();
    json(server.upload("apps", &v1), 201);
    assert_eq!(cm_upload(&server, "apps", &v2, None), 201);
    assert_eq!(cm_upload(&server, "apps", &pre, None), 201);
    assert_eq!(cm_upload(&server, "apps", &built, None), 201);
    json(server.upload("other", &ChartBuilder::new("db", "3.0.0").build()), 201);
    let repo_url = server.url("/apps");

    for major in [3, 4] {
        let Some(helm) = Helm::new(major, "helm") else { continue };
        let out = TempDir::new("pull");
        let dir = out.path.to_str().unwrap();
        helm.run(&["repo", "add", "apps", &repo_url]);
        helm.run(&["repo", "update"]);

        let search = helm.run(&["search", "repo", "apps/", "--versions"]);
        assert!(search.contains("apps/web") && search.contains("1.1.0") && search.contains("1.0.0"), "{search}");
        assert!(!search.contains("2.0.0-rc.1"), "pre-releases only with --devel: {search}");
        let devel = helm.run(&["search", "repo", "apps/web", "--devel"]);
        assert!(devel.contains("2.0.0-rc.1"), "{devel}");

        // latest stable, an exact version, a build-metadata version: byte-exact
        helm.run(&["pull", "apps/web", "-d", dir]);
        assert_eq!(std::fs::read(out.path.join("web-1.1.0.tgz")).unwrap(), v2, "helm v{major} latest");
        helm.run(&["pull", "apps/web", "--version", "1.0.0", "-d", dir]);
        assert_eq!(std::fs::read(out.path.join("web-1.0.0.tgz")).unwrap(), v1);
        helm.run(&["pull", "apps/web", "--version", "0.9.0+build.7", "-d", dir]);
        assert_eq!(sha256(&std::fs::read(out.path.join("web-0.9.0+build.7.tgz")).unwrap()), sha256(&built));

        let rendered = helm.run(&["template", "x", "apps/web"]);
        assert!(rendered.contains("replicas: \"3\""), "{rendered}");

        // A chart that depends on a chart in another space.
        let parent = TempDir::new("parent");
        let chart_dir = parent.path.join("shop");
        std::fs::create_dir_all(chart_dir.join("templates")).unwrap();
        std::fs::write(
            chart_dir.join("Chart.yaml"),
            format!(
                "apiVersion: v2\nname: shop\nversion: 0.1.0\ndependencies:\n- name: db\n  version: \"~3.0.0\"\n  repository: {}\n",
                server.url("/other")
            ),
        )
        .unwrap();
        helm.run(&["dependency", "update", chart_dir.to_str().unwrap()]);
        let vendored = std::fs::read(chart_dir.join("charts/db-3.0.0.tgz")).unwrap();
        assert_eq!(vendored, server.download("other", "db", "3.0.0"));
        helm.run(&["repo", "remove", "apps"]);
    }

    // A deleted version disappears from the repository at once.
    assert_eq!(client().delete(server.url("/api/apps/charts/web/1.1.0")).send().unwrap().status(), 200);
    for major in [3, 4] {
        let Some(helm) = Helm::new(major, "helm") else { continue };
        helm.run(&["repo", "add", "apps", &repo_url]);
        let search = helm.run(&["search", "repo", "apps/web"]);
        assert!(search.contains("1.0.0") && !search.contains("1.1.0"), "{search}");
    }
}

#[test]
fn signed_charts_verify_with_helm() {
    let server = Server::start();
    let work = TempDir::new("sign");
    let gnupg = work.path.join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let gpg = |args: &[&str]| {
        let output =
            Command::new("gpg").env("GNUPGHOME", &gnupg).args(["--batch", "--yes"]).args(args).output().unwrap();
        assert!(output.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    };
    let params = write_file(
        &work.path,
        "key.params",
        b"Key-Type: RSA\nKey-Length: 2048\nName-Real: Chart Signer\nName-Email: signer@example.com\nExpire-Date: 0\n%no-protection\n%commit\n",
    );
    gpg(&["--gen-key", &params]);
    let secring = write_file(&work.path, "secring.gpg", &gpg(&["--export-secret-keys"]));
    let pubring = write_file(&work.path, "pubring.gpg", &gpg(&["--export"]));

    let Some(helm3) = Helm::new(3, "helm") else { return };
    let source = work.path.join("signed");
    std::fs::create_dir_all(source.join("templates")).unwrap();
    std::fs::write(source.join("Chart.yaml"), "apiVersion: v2\nname: signed\nversion: 1.2.3\n").unwrap();
    std::fs::write(source.join("values.yaml"), "a: 1\n").unwrap();
    let packaged = work.path.join("out");
    helm3.run(&[
        "package",
        "--sign",
        "--key",
        "Chart Signer",
        "--keyring",
        &secring,
        source.to_str().unwrap(),
        "-d",
        packaged.to_str().unwrap(),
    ]);
    let archive = std::fs::read(packaged.join("signed-1.2.3.tgz")).unwrap();
    let prov = std::fs::read(packaged.join("signed-1.2.3.tgz.prov")).unwrap();
    assert_eq!(cm_upload(&server, "secure", &archive, Some(&prov)), 201);
    // An unsigned chart, for the failing case.
    assert_eq!(cm_upload(&server, "secure", &ChartBuilder::new("plain", "1.0.0").build(), None), 201);

    for major in [3, 4] {
        let Some(helm) = Helm::new(major, "helm") else { continue };
        let out = TempDir::new("verified");
        let dir = out.path.to_str().unwrap();
        helm.run(&["repo", "add", "secure", &server.url("/secure")]);
        let verified = helm.run(&["pull", "secure/signed", "--verify", "--keyring", &pubring, "-d", dir]);
        assert!(verified.contains("Signed by: Chart Signer"), "helm v{major}: {verified}");
        assert_eq!(std::fs::read(out.path.join("signed-1.2.3.tgz")).unwrap(), archive);
        let pulled_prov = std::fs::read(out.path.join("signed-1.2.3.tgz.prov")).unwrap();
        assert_eq!(pulled_prov, prov);
        helm.run(&["verify", "--keyring", &pubring, out.path.join("signed-1.2.3.tgz").to_str().unwrap()]);
        helm.fails(&["pull", "secure/plain", "--verify", "--keyring", &pubring, "-d", dir]);
    }
}
