//! The web UI (`/_/ui/`): what its pages show of stored charts, how it treats untrusted
//! READMEs, its assets, its forms, and its sessions and CSRF tokens under access control.
//! Which caller may see which page is in the access matrix (`access.rs`); the browser
//! tests drive the same pages in Chromium (`crates/chartyard/tests/it/ui.rs`).

use std::collections::BTreeMap;

use axum::http::Method;
use chartyard_core::access::{Policy, Role, Rule, SpacePattern};
use chartyard_http::auth::AuthOptions;

use crate::app::{TestApp, TestResponse, multipart};
use crate::charts::{ChartBuilder, sha256};

fn webapp(version: &str) -> Vec<u8> {
    let chart_yaml = format!(
        "apiVersion: v2\nname: webapp\nversion: {version}\nappVersion: \"4.5\"\ndescription: A small web app\n\
         keywords: [web, frontend]\nhome: https://webapp.example.com\nsources: [https://git.example.com/webapp]\n\
         maintainers:\n  - name: Ada\n    email: ada@example.com\n\
         dependencies:\n  - name: common\n    version: ^1.0.0\n    repository: http://registry.test/libs\n\
         \x20 - name: postgresql\n    version: 12.x.x\n    repository: https://charts.example.com/stable\n"
    );
    ChartBuilder::new("webapp", version)
        .with("webapp/Chart.yaml", chart_yaml)
        .with("webapp/README.md", "# Web app\n\nServes **pages**.\n\n| key | default |\n|---|---|\n| replicas | 3 |\n")
        .with("webapp/values.yaml", "replicaCount: 3 # keep this comment\nimage: web:4.5\n")
        .with("webapp/values.schema.json", r#"{"type":"object","properties":{"replicaCount":{"type":"integer"}}}"#)
        .with("webapp/templates/deployment.yaml", "replicas: {{ .Values.replicaCount }} # a < b & c\n")
        .with("webapp/templates/NOTES.txt", "Thanks\n")
        .build()
}

async fn html(app: &TestApp, path: &str) -> String {
    let response = app.send_with(Method::GET, path, &[], vec![]).await;
    assert_eq!(response.status, 200, "{path}: {}", response.text());
    assert_eq!(response.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(response.header("content-security-policy").unwrap().contains("script-src 'self'"));
    response.text()
}

/// The part of a page inside the element with `id` (up to its first closing `</tag>`).
fn element<'a>(page: &'a str, id: &str) -> &'a str {
    let at = page.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in {page}"));
    let start = page[..at].rfind('<').unwrap();
    let tag: String = page[start + 1..].chars().take_while(char::is_ascii_alphanumeric).collect();
    let end = page[at..].find(&format!("</{tag}>")).map_or(page.len(), |e| at + e);
    &page[start..end]
}

#[tokio::test]
async fn browsers_asking_for_the_root_are_sent_to_the_ui() {
    let app = TestApp::new();
    let browser = app.send_with(Method::GET, "/", &[("accept", "text/html,application/xhtml+xml")], vec![]).await;
    assert_eq!((browser.status, browser.header("location")), (303, Some("/_/ui/")));
    assert_eq!(app.send_with(Method::GET, "/", &[("accept", "application/json")], vec![]).await.status, 404);
    let bare = app.get_url("/_/ui").await;
    assert_eq!((bare.status, bare.header("location")), (308, Some("/_/ui/")));
}

#[tokio::test]
async fn a_chart_page_shows_what_the_chart_holds() {
    let app = TestApp::new();
    for version in ["1.1.0", "1.2.0", "2.0.0-rc.1"] {
        assert_eq!(app.upload("apps", &webapp(version)).await.status, 201);
    }
    let spaces = html(&app, "/_/ui/").await;
    assert!(spaces.contains(r#"<tr data-space="apps"><td><a href="/_/ui/apps">apps</a></td><td class="count">1</td><td class="versions">3</td>"#), "{spaces}");

    // The chart's own URL shows the version `helm pull` takes: the newest stable one.
    let page = html(&app, "/_/ui/apps/webapp").await;
    assert!(element(&page, "version").ends_with(">1.2.0"), "{page}");
    assert!(element(&page, "app-version").ends_with(">4.5"));
    assert!(element(&page, "description").contains("A small web app"));
    let readme = element(&page, "readme");
    assert!(
        readme.contains("<h1>Web app</h1>")
            && readme.contains("<strong>pages</strong>")
            && readme.contains("<table tabindex=\"0\">"),
        "{readme}"
    );
    assert!(element(&page, "values").contains("replicaCount: 3 # keep this comment\nimage: web:4.5\n"));
    assert!(element(&page, "schema").contains("&quot;replicaCount&quot;: {"), "the schema, pretty-printed");
    let templates = element(&page, "templates");
    assert!(templates.contains(r#"href="/_/ui/apps/webapp/1.2.0/templates/deployment.yaml""#), "{templates}");
    assert!(templates.contains("templates/NOTES.txt"));
    let versions: Vec<&str> =
        page.match_indices("<tr data-version=\"").map(|(i, _)| page[i + 18..].split('"').next().unwrap()).collect();
    assert_eq!(versions, ["2.0.0-rc.1", "1.2.0", "1.1.0"], "newest first");
    let install = element(&page, "install");
    assert!(install.contains("helm repo add apps http://registry.test/apps\nhelm repo update apps\nhelm install webapp apps/webapp --version 1.2.0"), "{install}");
    assert!(
        install.contains("helm install webapp oci://registry.test/apps/webapp --version 1.2.0 --plain-http"),
        "{install}"
    );
    assert!(install.contains(r#"<button class="copy" type="button" data-copy="snippet-oci" hidden>"#));
    let dependencies = element(&page, "dependencies");
    assert!(dependencies.contains(r#"<a href="/_/ui/libs/common">common</a>"#), "{dependencies}");
    assert!(
        !dependencies.contains("<a href") || dependencies.matches("<a href").count() == 1,
        "only the local dependency links: {dependencies}"
    );
    assert!(element(&page, "keywords").contains("<li>frontend</li>"));
    assert!(element(&page, "maintainers").contains("Ada"));
    assert!(element(&page, "links").contains(r#"href="https://webapp.example.com""#));
    assert!(page.contains(r#"id="download-archive" href="/_/ui/apps/webapp/1.2.0/archive""#));
    assert!(!page.contains("download-prov"), "no provenance, no link");
    assert!(page.contains("delete-version"), "open server: everyone may delete");

    // A version's own page, its template (escaped) and its archive.
    let rc = html(&app, "/_/ui/apps/webapp/2.0.0-rc.1").await;
    assert!(element(&rc, "version").ends_with(">2.0.0-rc.1"));
    let template = html(&app, "/_/ui/apps/webapp/1.2.0/templates/deployment.yaml").await;
    assert!(element(&template, "template").contains("replicas: {{ .Values.replicaCount }} # a &lt; b &amp; c"));
    let archive = app.get_url("/_/ui/apps/webapp/1.2.0/archive").await;
    assert_eq!(archive.status, 200);
    assert_eq!(archive.body.as_ref(), webapp("1.2.0").as_slice());
    assert_eq!(archive.header("content-disposition"), Some("attachment; filename=\"webapp-1.2.0.tgz\""));
    for missing in [
        "/_/ui/apps/webapp/9.9.9",
        "/_/ui/apps/nothing",
        "/_/ui/apps/webapp/1.2.0/templates/none.yaml",
        "/_/ui/nospace",
    ] {
        let response = app.get_url(missing).await;
        assert_eq!(response.status, 404, "{missing}");
        assert!(response.text().contains("role=\"alert\""), "an HTML error page: {}", response.text());
    }
    assert_eq!(app.get_url("/_/ui/apps/webapp/not-semver").await.status, 400);
}

#[tokio::test]
async fn readme_html_renders_inert() {
    let app = TestApp::new();
    let readme = "# Hostile\n\n<script>window.pwned=1</script>\n\n[click](javascript:window.pwned=1)\n\n\
                  <img src=x onerror=\"window.pwned=1\">\n\n<a href=\"#\" onclick=\"window.pwned=1\">x</a>\n\n\
                  <iframe src=\"https://evil.example\"></iframe>\n\n![badge](https://img.example.com/b.svg)\n";
    let chart = ChartBuilder::new("hostile", "1.0.0").with("hostile/README.md", readme).build();
    assert_eq!(app.upload("apps", &chart).await.status, 201);
    let page = html(&app, "/_/ui/apps/hostile").await;
    let rendered = element(&page, "readme").to_lowercase();
    for bad in ["<script", "javascript:", "onerror", "onclick", "<iframe", "img.example.com"] {
        assert!(!rendered.contains(bad), "{bad} in {rendered}");
    }
    assert!(
        rendered.contains("<h1>hostile</h1>") && rendered.contains("badge") && !rendered.contains("<img"),
        "{rendered}"
    );
    // The page's only script is the embedded one.
    assert_eq!(page.matches("<script").count(), 1, "{page}");
}

#[tokio::test]
async fn long_version_lists_are_paged_and_spaces_filter() {
    let app = TestApp::new();
    for minor in 0..60 {
        assert_eq!(app.upload("apps", &ChartBuilder::new("many", &format!("1.{minor}.0")).build()).await.status, 201);
    }
    let chart = ChartBuilder::new("other", "1.0.0")
        .with("other/Chart.yaml", "apiVersion: v2\nname: other\nversion: 1.0.0\ndescription: Queue worker\n")
        .build();
    assert_eq!(app.upload("apps", &chart).await.status, 201);
    let first = html(&app, "/_/ui/apps/many").await;
    assert_eq!(first.matches("<tr data-version=").count(), 50);
    assert!(first.contains("Versions 1–50 of 60") && first.contains(r#"href="?versions=50""#), "{first}");
    let second = html(&app, "/_/ui/apps/many?versions=50").await;
    assert_eq!(second.matches("<tr data-version=").count(), 10);
    assert!(second.contains("<tr data-version=\"1.0.0\"") && second.contains(r#"href="?versions=0""#));

    let all = html(&app, "/_/ui/apps").await;
    assert!(all.contains(r#"<li data-chart="many">"#) && all.contains(r#"<li data-chart="other">"#));
    assert!(element(&all, "charts").contains("1.59.0"), "the latest version");
    // A new version shows at once (the parsed latest entries go with the change).
    assert_eq!(app.upload("apps", &ChartBuilder::new("many", "1.60.0").build()).await.status, 201);
    assert!(element(&html(&app, "/_/ui/apps").await, "charts").contains("1.60.0"));
    assert_eq!(app.get("/search?q=many").await.json(200)["items"][0]["version"], "1.60.0");
    let filtered = html(&app, "/_/ui/apps?q=QUEUE").await;
    assert!(!filtered.contains(r#"data-chart="many""#) && filtered.contains(r#"data-chart="other""#), "{filtered}");
}

#[tokio::test]
async fn search_pages_rank_and_page_like_the_api() {
    let app = TestApp::new();
    for (space, name) in [("a", "redis"), ("a", "redis-cluster"), ("b", "redis"), ("b", "nginx")] {
        assert_eq!(app.upload(space, &ChartBuilder::new(name, "1.0.0").build()).await.status, 201);
    }
    let page = html(&app, "/_/ui/-/search?q=redis").await;
    let hits: Vec<&str> = page.match_indices("<li data-space=\"").map(|(i, _)| &page[i + 16..i + 60]).collect();
    assert_eq!(hits.len(), 3);
    assert!(
        hits[0].starts_with(r#"a" data-chart="redis""#) && hits[1].starts_with(r#"b" data-chart="redis""#),
        "{hits:?}"
    );
    assert!(element(&page, "total").ends_with(">3"));
    let api = app.get("/search?q=redis").await.json(200);
    assert_eq!(api["metadata"]["total"], 3);
    assert!(html(&app, "/_/ui/-/search?q=").await.contains("<h1>Search</h1>"), "an empty query shows the form");
}

#[tokio::test]
async fn assets_are_embedded_and_cached_by_etag() {
    let app = TestApp::new();
    let page = html(&app, "/_/ui/").await;
    let css =
        page.split("href=\"").find(|s| s.starts_with("/_/ui/-/assets/app.css?v=")).unwrap().split('"').next().unwrap();
    let first = app.get_url(css).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(first.text().contains("prefers-color-scheme: dark"), "both themes");
    let etag = first.header("etag").unwrap().to_string();
    assert!(css.ends_with(etag.trim_matches('"')), "the URL carries the ETag");
    assert!(first.header("cache-control").unwrap().contains("immutable"));
    let again = app.send_with(Method::GET, css, &[("if-none-match", &etag)], vec![]).await;
    assert_eq!((again.status, again.body.len()), (304, 0));
    assert_eq!(app.get_url("/_/ui/-/assets/app.js").await.status, 200);
    assert_eq!(app.get_url("/_/ui/-/assets/nothing.js").await.status, 404);
    // Nothing on a page comes from another host.
    for attribute in ["src=\"", "href=\""] {
        for url in page.split(attribute).skip(1).map(|s| s.split('"').next().unwrap()) {
            assert!(url.starts_with('/') || url.starts_with('#') || url.starts_with('?'), "{url}");
        }
    }
}

fn provenance_of(archive: &[u8], name: &str, version: &str) -> Vec<u8> {
    format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\napiVersion: v2\nname: {name}\nversion: {version}\n\n...\nfiles:\n  {name}-{version}.tgz: sha256:{}\n-----BEGIN PGP SIGNATURE-----\n\nc2lnbmF0dXJl\n-----END PGP SIGNATURE-----\n",
        sha256(archive)
    )
    .into_bytes()
}

#[tokio::test]
async fn forms_upload_delete_and_manage_spaces() {
    let app = TestApp::new();
    let archive = ChartBuilder::new("formchart", "0.1.0").build();
    let prov = provenance_of(&archive, "formchart", "0.1.0");
    let (content_type, body) =
        multipart(&[("chart", "formchart-0.1.0.tgz", &archive), ("prov", "formchart-0.1.0.tgz.prov", &prov)]);
    let uploaded = app.send_with(Method::POST, "/_/ui/team/-/upload", &[("content-type", &content_type)], body).await;
    assert_eq!(
        (uploaded.status, uploaded.header("location")),
        (303, Some("/_/ui/team/formchart/0.1.0")),
        "{}",
        uploaded.text()
    );
    let page = html(&app, "/_/ui/team/formchart/0.1.0").await;
    assert!(page.contains(r#"id="download-prov" href="/_/ui/team/formchart/0.1.0/provenance""#));
    assert!(element(&page, "versions").contains("<td>yes</td>"), "the versions table knows of the .prov");
    assert_eq!(app.get_url("/_/ui/team/formchart/0.1.0/provenance").await.body.as_ref(), prov.as_slice());

    // The same again is a conflict; something else than a chart is a bad request.
    let (content_type, body) = multipart(&[("chart", "formchart-0.1.0.tgz", &archive)]);
    let again = app.send_with(Method::POST, "/_/ui/team/-/upload", &[("content-type", &content_type)], body).await;
    assert_eq!(again.status, 409, "{}", again.text());
    let (content_type, body) = multipart(&[("chart", "notes.txt", b"not a chart")]);
    let junk = app.send_with(Method::POST, "/_/ui/team/-/upload", &[("content-type", &content_type)], body).await;
    assert_eq!(junk.status, 400);
    assert!(junk.text().contains("role=\"alert\""));

    let form = [("content-type", "application/x-www-form-urlencoded")];
    let deleted = app.send_with(Method::POST, "/_/ui/team/formchart/0.1.0/delete", &form, vec![]).await;
    assert_eq!(
        (deleted.status, deleted.header("location")),
        (303, Some("/_/ui/team")),
        "the last version: back to the space"
    );
    assert_eq!(app.get_url("/_/ui/team/formchart").await.status, 404);

    let created = app.send_with(Method::POST, "/_/ui/-/spaces", &form, b"space=fresh".to_vec()).await;
    assert_eq!((created.status, created.header("location")), (303, Some("/_/ui/fresh")));
    let bad = app.send_with(Method::POST, "/_/ui/-/spaces", &form, b"space=no%20spaces".to_vec()).await;
    assert_eq!(bad.status, 400);
    assert_eq!(app.send_with(Method::POST, "/_/ui/fresh/-/delete", &form, vec![]).await.status, 303);
    assert_eq!(app.get("/spaces").await.json(200)["items"], serde_json::json!(["team"]));
    // Sign-in and tokens need access control.
    assert_eq!(app.get_url("/_/ui/-/tokens").await.status, 404);
    assert_eq!(app.get_url("/_/ui/-/signin").await.status, 303);
}

// ---- under access control ----

fn auth() -> AuthOptions {
    let users = BTreeMap::from([("alice", Role::Write), ("bob", Role::Read)].map(|(u, r)| (u.to_string(), r)));
    let rule = Rule { spaces: vec![SpacePattern::new("apps").unwrap()], users, groups: BTreeMap::new() };
    let policy = Policy::new(["admin".to_string()], vec![], vec![rule], &BTreeMap::new(), true).unwrap();
    let mut options = AuthOptions::new(policy);
    options.users = ["admin", "alice", "bob", "carol"]
        .iter()
        .map(|u| (u.to_string(), bcrypt::hash(format!("{u}-pw"), 4).unwrap()))
        .collect();
    options.failure_delay = std::time::Duration::from_millis(1);
    options
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

async fn sign_in(app: &TestApp, user: &str, next: &str) -> TestResponse {
    let body = format!("username={user}&password={user}-pw&next={next}");
    app.send_with(Method::POST, "/_/ui/-/signin", &[FORM], body.into_bytes()).await
}

/// The `name=value` of a response's session cookie.
fn session_of(response: &TestResponse) -> String {
    let cookie = response.header("set-cookie").expect("a session cookie");
    cookie.split(';').next().unwrap().to_string()
}

fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    page[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn signing_in_opens_private_pages_for_that_browser_only() {
    let app = TestApp::builder().build_with_access(auth()).await;
    let admin = format!("Basic {}", base64_of("admin:admin-pw"));
    let (content_type, body) = multipart(&[("chartfile", "c.tgz", &webapp("1.0.0"))]);
    let seeded = app
        .send_with(
            Method::POST,
            "/api/v1/spaces/apps/charts",
            &[("authorization", &admin), ("content-type", &content_type)],
            body,
        )
        .await;
    assert_eq!(seeded.status, 201);

    // Anonymous: a sign-in form in place of the page, without a Basic challenge.
    let anonymous = app.get_url("/_/ui/apps/webapp").await;
    assert_eq!(anonymous.status, 401);
    assert!(anonymous.header("www-authenticate").is_none());
    assert!(
        anonymous.text().contains(r#"<form class="signin" id="signin""#)
            && anonymous.text().contains(r#"value="/_/ui/apps/webapp""#)
    );
    assert!(!html(&app, "/_/ui/").await.contains("data-space=\"apps\""), "not listed for anonymous callers");

    let wrong = app.send_with(Method::POST, "/_/ui/-/signin", &[FORM], b"username=alice&password=nope".to_vec()).await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text().contains("wrong user name or password") && wrong.header("set-cookie").is_none());

    let signed = sign_in(&app, "alice", "/_/ui/apps").await;
    assert_eq!((signed.status, signed.header("location")), (303, Some("/_/ui/apps")));
    let set_cookie = signed.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/_/ui/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attribute), "{attribute} in {set_cookie}");
    }
    let cookie = session_of(&signed);
    let page = app.send_with(Method::GET, "/_/ui/apps/webapp", &[("cookie", &cookie)], vec![]).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains(r#"<strong id="whoami">alice</strong>"#));
    // The cookie is the UI's alone: the APIs, which have no CSRF tokens, ignore it.
    let api = app.send_with(Method::GET, "/api/v1/spaces/apps/charts", &[("cookie", &cookie)], vec![]).await;
    assert_eq!(api.status, 401);
    // A cookie changed by hand is no session.
    let forged = cookie.replacen("chartyard_session=", "chartyard_session=x", 1);
    assert_eq!(app.send_with(Method::GET, "/_/ui/apps", &[("cookie", &forged)], vec![]).await.status, 401);
    // Another user's session sees only what that user may.
    let carol = session_of(&sign_in(&app, "carol", "/_/ui/").await);
    assert_eq!(app.send_with(Method::GET, "/_/ui/apps", &[("cookie", &carol)], vec![]).await.status, 403);
    let search = app.send_with(Method::GET, "/_/ui/-/search?q=webapp", &[("cookie", &carol)], vec![]).await;
    assert!(search.text().contains(r#"<span id="total">0</span>"#), "{}", search.text());

    // Sign-in never sends a browser off the site.
    for next in ["https://evil.example/", "//evil.example/", "/api/v1/spaces"] {
        let signed = sign_in(&app, "alice", next).await;
        assert_eq!(signed.header("location"), Some("/_/ui/"), "{next}");
    }
    // Signing out clears the cookie.
    let csrf = csrf_of(&page.text());
    let out = app
        .send_with(Method::POST, "/_/ui/-/signout", &[FORM, ("cookie", &cookie)], format!("csrf={csrf}").into_bytes())
        .await;
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn forms_need_the_session_csrf_token_and_this_site() {
    let app = TestApp::builder().build_with_access(auth()).await;
    app.registry.create_space("apps").await.unwrap();
    let cookie = session_of(&sign_in(&app, "alice", "/_/ui/").await);
    let page = app.send_with(Method::GET, "/_/ui/apps", &[("cookie", &cookie)], vec![]).await;
    let csrf = csrf_of(&page.text());
    assert!(page.text().contains(r#"id="upload""#), "alice may write in apps");

    let upload = |fields: Vec<(&'static str, &'static str, Vec<u8>)>, extra: Vec<(&'static str, String)>| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            let parts: Vec<(&str, &str, &[u8])> = fields.iter().map(|(f, n, b)| (*f, *n, b.as_slice())).collect();
            let (content_type, body) = multipart(&parts);
            let mut headers = vec![("content-type", content_type), ("cookie", cookie)];
            headers.extend(extra);
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            app.send_with(Method::POST, "/_/ui/apps/-/upload", &headers, body).await
        }
    };
    let chart = || ("chart", "c.tgz", ChartBuilder::new("csrfchart", "1.0.0").build());
    let token = |value: &str| ("csrf", "", value.as_bytes().to_vec());

    assert_eq!(upload(vec![chart()], vec![]).await.status, 403, "no token");
    assert_eq!(upload(vec![token("forged"), chart()], vec![]).await.status, 403, "a wrong token");
    let cross_site = upload(vec![token(&csrf), chart()], vec![("sec-fetch-site", "cross-site".into())]).await;
    assert_eq!(cross_site.status, 403, "a form on another site");
    let other_origin = upload(vec![token(&csrf), chart()], vec![("origin", "https://evil.example".into())]).await;
    assert_eq!(other_origin.status, 403);
    assert!(app.registry.list_charts("apps").await.unwrap().is_empty(), "nothing was stored");
    let good = upload(
        vec![token(&csrf), chart()],
        vec![("origin", "http://registry.test".into()), ("sec-fetch-site", "same-origin".into())],
    )
    .await;
    assert_eq!((good.status, good.header("location")), (303, Some("/_/ui/apps/csrfchart/1.0.0")), "{}", good.text());

    // Another session's token does not pass for this one.
    let bob = session_of(&sign_in(&app, "bob", "/_/ui/").await);
    let bob_page = app.send_with(Method::GET, "/_/ui/apps", &[("cookie", &bob)], vec![]).await;
    assert!(!bob_page.text().contains(r#"id="upload""#), "bob may only read apps");
    let bob_csrf = csrf_of(&bob_page.text());
    assert_ne!(bob_csrf, csrf);
    let delete = |csrf: String| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            let headers = [FORM, ("cookie", cookie.as_str())];
            app.send_with(
                Method::POST,
                "/_/ui/apps/csrfchart/1.0.0/delete",
                &headers,
                format!("csrf={csrf}").into_bytes(),
            )
            .await
        }
    };
    assert_eq!(delete(bob_csrf).await.status, 403);
    assert_eq!(delete(csrf).await.status, 303);
}

#[tokio::test]
async fn tokens_are_made_shown_once_and_revoked_in_the_ui() {
    let app = TestApp::builder().build_with_access(auth()).await;
    let cookie = session_of(&sign_in(&app, "alice", "/_/ui/").await);
    let page = app.send_with(Method::GET, "/_/ui/-/tokens", &[("cookie", &cookie)], vec![]).await;
    assert_eq!(page.status, 200);
    let csrf = csrf_of(&page.text());
    let body = format!("csrf={csrf}&spaces=apps&role=read&expires=1h&description=ci");
    let made = app.send_with(Method::POST, "/_/ui/-/tokens", &[FORM, ("cookie", &cookie)], body.into_bytes()).await;
    assert_eq!(made.status, 200, "{}", made.text());
    let text = made.text();
    let token = element(&text, "new-token").rsplit('>').next().unwrap().to_string();
    assert!(token.starts_with("cyt_"), "{token}");
    // The token works for clients, within its limits.
    let bearer = format!("Bearer {token}");
    let whoami = app.send_with(Method::GET, "/_/whoami", &[("authorization", &bearer)], vec![]).await.json(200);
    assert_eq!(whoami["user"], "alice");
    // It is not a password for the sign-in form.
    let body = format!("username=alice&password={token}");
    let refused = app.send_with(Method::POST, "/_/ui/-/signin", &[FORM], body.into_bytes()).await;
    assert_eq!(refused.status, 401);
    // Listed without its secret, then revoked.
    let listed = app.send_with(Method::GET, "/_/ui/-/tokens", &[("cookie", &cookie)], vec![]).await.text();
    assert!(!listed.contains(&token));
    let id = &token[4..20];
    assert!(listed.contains(&format!("<tr data-token=\"{id}\"")), "{listed}");
    let revoke = format!("/_/ui/-/tokens/{id}/revoke");
    let revoked =
        app.send_with(Method::POST, &revoke, &[FORM, ("cookie", &cookie)], format!("csrf={csrf}").into_bytes()).await;
    assert_eq!(revoked.status, 303);
    assert_eq!(app.send_with(Method::GET, "/_/whoami", &[("authorization", &bearer)], vec![]).await.status, 401);
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
