//! The real `helm cm-push` plugin (chartmuseum/helm-push, from `shared/peers`) against
//! chartyard's ChartMuseum API, with helm v3 and v4: pipelines written for ChartMuseum
//! work unchanged. Skipped (with a message) where the peers folder or helm is absent.

use crate::common::{ChartBuilder, Helm, Server, TempDir, client, json, peer, peer_file, sha256, write_file};
use serde_json::Value;

/// A helm binary with the cm-push plugin installed in its own isolated folders.
pub(crate) fn helm_with_cm_push(major: u8) -> Option<Helm> {
    let helm = Helm::new(major, "cm-push-helm")?;
    let (plugin_binary, manifest) = (peer("helm-cm-push")?, peer_file("helm-push-plugin.yaml")?);
    // Installed as `helm plugin install` would leave it, without the network.
    let plugin = helm.plugins().join("helm-push");
    std::fs::create_dir_all(plugin.join("bin")).unwrap();
    let mut manifest = std::fs::read_to_string(manifest).unwrap();
    if major >= 4 {
        // Helm 4 takes a legacy plugin that declares downloaders for a getter, not a
        // command: without that block (the cm:// getter, not needed to push) it runs
        // as `helm cm-push`.
        manifest = without_top_level_block(&manifest, "downloaders");
    }
    std::fs::write(plugin.join("plugin.yaml"), manifest).unwrap();
    std::os::unix::fs::symlink(plugin_binary, plugin.join("bin/helm-cm-push")).unwrap();
    Some(helm)
}

/// YAML text without one top-level key and the lines nested under it.
fn without_top_level_block(yaml: &str, key: &str) -> String {
    let mut skipping = false;
    let mut out = String::new();
    for line in yaml.lines() {
        let top_level = !line.starts_with([' ', '-', '#']) && !line.is_empty();
        if top_level {
            skipping = line.starts_with(&format!("{key}:"));
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The replica count in the stored `app-1.0.0`'s values: which archive is stored (the
/// plugin packages charts again, so the bytes are not the pushed file's).
fn stored_replicas(server: &Server, space: &str) -> Value {
    let values = server.get(&format!("/spaces/{space}/charts/app/versions/1.0.0/manifests/values"));
    json(values, 200)["replicaCount"].clone()
}

fn cm_versions(server: &Server, space: &str, chart: &str) -> Vec<String> {
    let entries = json(client().get(server.url(&format!("/api/{space}/charts/{chart}"))).send().unwrap(), 200);
    entries.as_array().unwrap().iter().map(|e| e["version"].as_str().unwrap().to_string()).collect()
}

fn spaces(server: &Server) -> Vec<Value> {
    json(server.get("/spaces?limit=1000"), 200)["items"].as_array().unwrap().clone()
}

#[test]
fn helm_cm_push_works_as_against_chartmuseum() {
    let server = Server::start();
    let refusing = Server::start_with(&["--disable-force-overwrite"]);
    let mut ran = 0;
    for major in [3, 4] {
        let Some(helm) = helm_with_cm_push(major) else { continue };
        let work = TempDir::new("cm-push-work");
        let space = format!("ci{major}");
        let repo_url = server.url(&format!("/{space}"));

        // A packaged chart, pushed by URL.
        let first = ChartBuilder::new("app", "1.0.0").build();
        let first_path = write_file(&work.path, "app-1.0.0.tgz", &first);
        let out = helm.run(&["cm-push", &first_path, &repo_url]);
        assert!(out.contains("Done"), "{out}");
        assert_eq!(stored_replicas(&server, &space), 1);

        // The same version again: a conflict, and the stored archive stays.
        let second = ChartBuilder::new("app", "1.0.0").with("app/values.yaml", "replicaCount: 2\n").build();
        let second_path = write_file(&work.path, "app-1.0.0-second.tgz", &second);
        let out = helm.fails(&["cm-push", &second_path, &repo_url]);
        assert!(out.contains("409"), "{out}");
        assert_eq!(stored_replicas(&server, &space), 1);

        // --force replaces it under the default configuration, as on ChartMuseum.
        helm.run(&["cm-push", "--force", &second_path, &repo_url]);
        assert_eq!(stored_replicas(&server, &space), 2);
        assert_eq!(cm_versions(&server, &space, "app"), ["1.0.0"]);
        // The index describes the new archive.
        let stored = server.download(&space, "app", "1.0.0");
        let entry = json(client().get(server.url(&format!("/api/{space}/charts/app/1.0.0"))).send().unwrap(), 200);
        assert_eq!(entry["digest"], sha256(&stored));

        // A chart folder, packaged by the plugin.
        let folder = work.path.join("folder-chart");
        std::fs::create_dir_all(folder.join("templates")).unwrap();
        let chart_yaml = "apiVersion: v2\nname: folder-chart\nversion: 0.2.0\ndescription: pushed as a folder\n";
        std::fs::write(folder.join("Chart.yaml"), chart_yaml).unwrap();
        std::fs::write(folder.join("values.yaml"), "replicaCount: 1\n").unwrap();
        std::fs::write(folder.join("templates/cm.yaml"), "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
            .unwrap();
        helm.run(&["cm-push", folder.to_str().unwrap(), &repo_url]);
        assert_eq!(cm_versions(&server, &space, "folder-chart"), ["0.2.0"]);

        // Credentials: the server has no authentication, so they are simply carried.
        let basic = write_file(&work.path, "basic-1.0.0.tgz", &ChartBuilder::new("basic", "1.0.0").build());
        helm.run(&["cm-push", &basic, &repo_url, "--username", "ci", "--password", "secret"]);
        let token = write_file(&work.path, "token-1.0.0.tgz", &ChartBuilder::new("token", "1.0.0").build());
        helm.run(&["cm-push", &token, &repo_url, "--access-token", "abc.def.ghi"]);
        assert_eq!(cm_versions(&server, &space, "basic"), ["1.0.0"]);
        assert_eq!(cm_versions(&server, &space, "token"), ["1.0.0"]);
        // (--context-path is not covered: chartyard serves no context path.)

        // With --disable-force-overwrite, --force is a conflict like any other.
        let refusing_url = refusing.url(&format!("/{space}"));
        helm.run(&["cm-push", &first_path, &refusing_url]);
        let out = helm.fails(&["cm-push", "--force", &second_path, &refusing_url]);
        assert!(out.contains("409"), "{out}");
        assert_eq!(stored_replicas(&refusing, &space), 1);

        // A repository nobody pushed to yet can be added (as on ChartMuseum) without
        // creating the space; then pushing by repository name and searching work.
        let before = spaces(&server);
        let empty = format!("empty{major}");
        helm.run(&["repo", "add", &empty, &server.url(&format!("/{empty}"))]);
        assert_eq!(spaces(&server), before, "adding a repository created no space");
        let later = write_file(&work.path, "later-3.0.0.tgz", &ChartBuilder::new("later", "3.0.0").build());
        helm.run(&["cm-push", &later, &empty]);
        helm.run(&["repo", "add", &space, &repo_url]);
        helm.run(&["repo", "update"]);
        let found = helm.run(&["search", "repo", &space, "--versions"]);
        for (chart, version) in [("app", "1.0.0"), ("folder-chart", "0.2.0"), ("basic", "1.0.0"), ("token", "1.0.0")] {
            let line = format!("{space}/{chart}");
            assert!(found.lines().any(|l| l.starts_with(&line) && l.contains(version)), "{line} {version}: {found}");
        }
        let found = helm.run(&["search", "repo", &format!("{empty}/later")]);
        assert!(found.contains("3.0.0"), "{found}");
        ran += 1;
    }
    eprintln!("helm cm-push checked with {ran} helm version(s)");
}
