//! The UI's pages. maud escapes every value put into them; the only raw HTML is the
//! README, which `markdown::render` sanitised.

use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use chartyard_core::access::Action;
use chartyard_core::wire::SearchHit;
use chartyard_storage::tokens::ListedToken;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::{Map, Value};

use super::{ChartRow, ChartView, Ctx, SpaceRow, assets, markdown};

/// The frame of every page: header with home, search and who is signed in; breadcrumbs.
fn layout(ctx: &Ctx, title: &str, crumbs: &[(&str, String)], body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · chartyard" }
                link rel="icon" href=(assets::url("icon.svg")) type="image/svg+xml";
                link rel="stylesheet" href=(assets::url("app.css"));
                script src=(assets::url("app.js")) defer {}
            }
            body {
                a.skip href="#content" { "Skip to content" }
                header.top {
                    a #home href="/_/ui/" {
                        img src=(assets::url("icon.svg")) alt="";
                        span { "chartyard" }
                    }
                    form #search role="search" aria-label="Search all charts" action="/_/ui/-/search" method="get" {
                        input type="search" name="q" aria-label="Search charts" placeholder="Search charts";
                        button type="submit" { "Search" }
                    }
                    (user_area(ctx))
                }
                main #content {
                    @if !crumbs.is_empty() {
                        nav.crumbs aria-label="Breadcrumb" {
                            ol {
                                li { a href="/_/ui/" { "Spaces" } }
                                @for (label, href) in crumbs {
                                    li { a href=(href) { (label) } }
                                }
                            }
                        }
                    }
                    (body)
                }
            }
        }
    }
}

fn user_area(ctx: &Ctx) -> Markup {
    html! {
        @if !ctx.caller.is_open() {
            div.user {
                @if let Some(user) = ctx.signed_in_user() {
                    span { "Signed in as " strong #whoami { (user) } }
                    a #tokens href="/_/ui/-/tokens" { "API tokens" }
                    form #signout method="post" action="/_/ui/-/signout" {
                        (csrf(ctx))
                        button.secondary type="submit" { "Sign out" }
                    }
                } @else {
                    a #signin href=(format!("/_/ui/-/signin?next={}", query_escape(&ctx.here))) { "Sign in" }
                }
            }
        }
    }
}

/// The hidden CSRF field of a form (none without a session).
fn csrf(ctx: &Ctx) -> Markup {
    html! {
        @if let Some(token) = ctx.caller.csrf_token() {
            input type="hidden" name="csrf" value=(token);
        }
    }
}

fn query_escape(text: &str) -> String {
    serde_urlencoded::to_string([("", text)]).map(|s| s[1..].to_string()).unwrap_or_default()
}

/// A chart's icon: shown when it is inline (`data:`), else its initial (loading an icon
/// from another host would be a request the viewer did not ask for).
fn icon(name: &str, url: Option<&str>) -> Markup {
    html! {
        @match url.filter(|u| u.starts_with("data:image/")) {
            Some(url) => img.icon src=(url) alt="";
            None => span.icon aria-hidden="true" { (name.chars().next().unwrap_or('?').to_ascii_uppercase()) }
        }
    }
}

fn text<'a>(entry: &'a Map<String, Value>, key: &str) -> &'a str {
    entry.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn deprecated_badge(deprecated: bool) -> Markup {
    html! { @if deprecated { " " span.badge.warn #deprecated { "Deprecated" } } }
}

// ---- pages ----

pub fn spaces(ctx: &Ctx, rows: &[SpaceRow]) -> Markup {
    let body = html! {
        h1 { "Spaces" }
        @if rows.is_empty() {
            p.muted { "There are no spaces you may read yet." }
        } @else {
            div.table-wrap tabindex="0" { table #spaces {
                thead { tr { th scope="col" { "Space" } th scope="col" { "Charts" } th scope="col" { "Versions" } } }
                tbody {
                    @for row in rows {
                        tr data-space=(row.name) {
                            td { a href=(format!("/_/ui/{}", row.name)) { (row.name) } }
                            td.count { (row.charts) }
                            td.versions { (row.versions) }
                        }
                    }
                }
            } }
        }
        @if ctx.caller.is_open() || ctx.signed_in_user().is_some() {
            h2 { "New space" }
            form #create-space .actions method="post" action="/_/ui/-/spaces" {
                (csrf(ctx))
                label { "Name" input type="text" name="space" required pattern="[a-zA-Z0-9][a-zA-Z0-9_\\-]*" maxlength="128"; }
                button type="submit" { "Create space" }
            }
        }
    };
    layout(ctx, "Spaces", &[], body)
}

pub fn space(ctx: &Ctx, space: &str, rows: &[&ChartRow], filter: &str) -> Markup {
    let body = html! {
        h1 { (space) }
        form #filter .actions method="get" action=(format!("/_/ui/{space}")) {
            label { "Filter charts" input type="search" name="q" value=(filter); }
            button.secondary type="submit" { "Filter" }
            span.muted { span #shown { (rows.len()) } " charts" }
        }
        @if rows.is_empty() {
            p.muted { @if filter.is_empty() { "No charts yet." } @else { "No chart matches." } }
        }
        ul #charts .charts {
            @for (name, entry) in rows.iter().copied() {
                @let version = text(entry, "version");
                li data-chart=(name) {
                    (icon(name, entry.get("icon").and_then(Value::as_str)))
                    div {
                        a.name href=(format!("/_/ui/{space}/{name}")) { (name) }
                        " " span.version.badge { (version) }
                        (deprecated_badge(entry.get("deprecated").and_then(Value::as_bool).unwrap_or(false)))
                        p.description { (text(entry, "description")) }
                    }
                }
            }
        }
        @if ctx.caller.allows(space, Action::Write) {
            h2 { "Upload a chart" }
            form #upload method="post" action=(format!("/_/ui/{space}/-/upload")) enctype="multipart/form-data" {
                (csrf(ctx))
                div #dropzone {
                    label { "Chart archive (.tgz)" input type="file" name="chart" accept=".tgz,.tar.gz,application/gzip" required; }
                    label { "Provenance (.prov, optional)" input type="file" name="prov" accept=".prov"; }
                    span #chosen .muted aria-live="polite" {}
                    button type="submit" { "Upload" }
                }
                p.muted { "Or drop the files on the box." }
            }
        }
        @if ctx.caller.allows(space, Action::Admin) {
            h2 { "Delete this space" }
            form #delete-space method="post" action=(format!("/_/ui/{space}/-/delete"))
                data-confirm=(format!("Delete space {space} and every chart in it?")) {
                (csrf(ctx))
                button.danger type="submit" { "Delete space " (space) }
            }
        }
    };
    layout(ctx, space, &[(space, format!("/_/ui/{space}"))], body)
}

pub fn chart(ctx: &Ctx, view: &ChartView<'_>) -> Markup {
    let ChartView { space, chart, version, .. } = *view;
    let meta = &view.record.metadata;
    let files = &view.files;
    let readme = files
        .iter()
        .find(|(path, _)| !path.contains('/') && path.to_ascii_lowercase().starts_with("readme"))
        .map(|(_, data)| markdown::render(&String::from_utf8_lossy(data)));
    let values = files.get("values.yaml").map(|v| String::from_utf8_lossy(v).into_owned());
    let schema = files.get("values.schema.json").map(|s| {
        serde_json::from_slice::<Value>(s)
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_else(|| String::from_utf8_lossy(s).into_owned())
    });
    let templates: Vec<&str> = files.keys().filter_map(|p| p.strip_prefix("templates/")).collect();
    let here = format!("/_/ui/{space}/{chart}/{version}");
    let provenance = view.record.provenance.is_some();
    let body = html! {
        div.chart-head {
            (icon(chart, Some(&meta.icon)))
            div {
                h1 { (chart) }
                p #description { (meta.description) }
                p {
                    "Version " strong #version { (version) }
                    @if !meta.app_version.is_empty() { " · App version " strong #app-version { (meta.app_version) } }
                    (deprecated_badge(meta.deprecated))
                }
            }
        }
        div.layout {
            div {
                section #install {
                    h2 { "Install" }
                    (install_snippets(ctx, space, chart, version))
                }
                h2 { "README" }
                @match &readme {
                    Some(readme) => div #readme { (PreEscaped(readme)) },
                    None => p #readme .muted { "This chart has no README." },
                }
                h2 #values-heading { "Default values" }
                @match &values {
                    Some(values) => div.snippet-box {
                        pre #values tabindex="0" aria-labelledby="values-heading" { (values) }
                        button.copy type="button" data-copy="values" hidden { "Copy" }
                    },
                    None => p.muted { "This chart has no values.yaml." },
                }
                @if let Some(schema) = &schema {
                    h2 #schema-heading { "Values schema" }
                    div.snippet-box {
                        pre #schema tabindex="0" aria-labelledby="schema-heading" { (schema) }
                        button.copy type="button" data-copy="schema" hidden { "Copy" }
                    }
                }
                h2 { "Templates" }
                @if templates.is_empty() { p.muted { "No templates." } }
                ul #templates {
                    @for template in &templates {
                        li { a href=(format!("{here}/templates/{template}")) { "templates/" (template) } }
                    }
                }
                h2 { "Versions" }
                (versions_table(view))
            }
            aside {
                section {
                    h2 { "Download" }
                    ul {
                        li { a #download-archive href=(format!("{here}/archive")) { (chart) "-" (version) ".tgz" } }
                        @if provenance {
                            li { a #download-prov href=(format!("{here}/provenance")) { (chart) "-" (version) ".tgz.prov" } }
                        }
                    }
                }
                section {
                    h2 { "Details" }
                    dl.facts {
                        dt { "Created" } dd { (view.record.created) }
                        dt { "Digest" } dd { code.digest { "sha256:" (view.record.digest) } }
                        dt { "Size" } dd { (view.record.size) " bytes" }
                        dt { "Provenance" } dd { @if provenance { "signed (.prov)" } @else { "none" } }
                        @if !meta.chart_type.is_empty() { dt { "Type" } dd { (meta.chart_type) } }
                        @if !meta.kube_version.is_empty() { dt { "Kubernetes" } dd { (meta.kube_version) } }
                    }
                }
                @if !meta.home.is_empty() || !meta.sources.is_empty() {
                    section #links {
                        h2 { "Links" }
                        ul {
                            @if !meta.home.is_empty() { li { (external_link(&meta.home, "Home")) } }
                            @for source in &meta.sources { li { (external_link(source, source)) } }
                        }
                    }
                }
                @if !meta.keywords.is_empty() {
                    section {
                        h2 { "Keywords" }
                        ul #keywords { @for keyword in &meta.keywords { li { (keyword) } } }
                    }
                }
                @if !meta.maintainers.is_empty() {
                    section {
                        h2 { "Maintainers" }
                        ul #maintainers {
                            @for m in &meta.maintainers {
                                li {
                                    @if !m.url.is_empty() { (external_link(&m.url, &m.name)) } @else { (m.name) }
                                    @if !m.email.is_empty() { " " span.muted { "<" (m.email) ">" } }
                                }
                            }
                        }
                    }
                }
                @if !meta.dependencies.is_empty() {
                    section {
                        h2 { "Dependencies" }
                        ul #dependencies {
                            @for dep in &meta.dependencies {
                                li {
                                    @match local_space(ctx, &dep.repository) {
                                        Some(space) => a href=(format!("/_/ui/{space}/{}", dep.name)) { (dep.name) },
                                        None => span { (dep.name) },
                                    }
                                    " " span.muted { (dep.version) }
                                    @if !dep.repository.is_empty() { br; small.muted { (dep.repository) } }
                                }
                            }
                        }
                    }
                }
                @if ctx.caller.allows(space, Action::Delete) {
                    section {
                        h2 { "Delete" }
                        form #delete-version method="post" action=(format!("{here}/delete"))
                            data-confirm=(format!("Delete {chart} {version}?")) {
                            (csrf(ctx))
                            button.danger type="submit" { "Delete version " (version) }
                        }
                    }
                }
            }
        }
    };
    let crumbs =
        [(space, format!("/_/ui/{space}")), (chart, format!("/_/ui/{space}/{chart}")), (version, here.clone())];
    layout(ctx, &format!("{chart} {version}"), &crumbs, body)
}

/// A link to a chart's own URL: only http(s) URLs become links.
fn external_link(url: &str, label: &str) -> Markup {
    html! {
        @if url.starts_with("https://") || url.starts_with("http://") {
            a href=(url) rel="noopener noreferrer nofollow" { (label) }
        } @else {
            (label)
        }
    }
}

/// The space of this registry a dependency's repository URL names, if it names one here.
fn local_space(ctx: &Ctx, repository: &str) -> Option<String> {
    let rest = ["https://", "http://", "oci://"].iter().find_map(|s| repository.strip_prefix(s))?;
    let path = rest.strip_prefix(ctx.host.as_str())?.strip_prefix('/')?;
    let space = path.split('/').next()?;
    chartyard_core::names::is_valid_name(space).then(|| space.to_string())
}

fn install_snippets(ctx: &Ctx, space: &str, chart: &str, version: &str) -> Markup {
    let release: String =
        chart.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let repo = format!(
        "helm repo add {space} {base}/{space}\nhelm repo update {space}\nhelm install {release} {space}/{chart} --version {version}",
        base = ctx.base
    );
    let plain = if ctx.base.starts_with("http://") { " --plain-http" } else { "" };
    let oci_ok = space == space.to_ascii_lowercase() && chart == chart.to_ascii_lowercase();
    let oci = format!("helm install {release} oci://{}/{space}/{chart} --version {version}{plain}", ctx.host);
    html! {
        h3 { "Helm repository" }
        div.snippet-box {
            pre.snippet #snippet-repo data-protocol="repo" tabindex="0" { (repo) }
            button.copy type="button" data-copy="snippet-repo" hidden { "Copy" }
        }
        h3 { "OCI" }
        @if oci_ok {
            div.snippet-box {
                pre.snippet #snippet-oci data-protocol="oci" tabindex="0" { (oci) }
                button.copy type="button" data-copy="snippet-oci" hidden { "Copy" }
            }
        } @else {
            p.muted { "OCI references are lower case, so OCI clients cannot name this space or chart; use the Helm repository." }
        }
    }
}

fn versions_table(view: &ChartView<'_>) -> Markup {
    let ChartView { space, chart, version: current, .. } = *view;
    let listed = &view.versions;
    let start = view.versions_start;
    let end = start + listed.entries.len();
    html! {
        div.table-wrap tabindex="0" { table #versions {
            thead {
                tr {
                    th scope="col" { "Version" } th scope="col" { "App version" } th scope="col" { "Created" }
                    th scope="col" { "Digest" } th scope="col" { "Provenance" }
                }
            }
            tbody {
                @for (entry, provenance) in &listed.entries {
                    @let version = text(entry, "version");
                    @let digest = text(entry, "digest");
                    tr data-version=(version) {
                        td {
                            @if version == current {
                                a href=(format!("/_/ui/{space}/{chart}/{version}")) aria-current="page" { strong { (version) } }
                            } @else {
                                a href=(format!("/_/ui/{space}/{chart}/{version}")) { (version) }
                            }
                        }
                        td { (text(entry, "appVersion")) }
                        td { (text(entry, "created")) }
                        td { code.digest title=(digest) { (digest.get(..12).unwrap_or(digest)) } }
                        td { @if *provenance { "yes" } @else { span.muted { "no" } } }
                    }
                }
            }
        } }
        p.muted { "Versions " (start + 1) "–" (end) " of " (listed.total) }
        div.pager {
            @if start > 0 {
                a href=(format!("?versions={}", start.saturating_sub(super::VERSIONS_PER_PAGE))) { "Newer versions" }
            }
            @if end < listed.total {
                a href=(format!("?versions={end}")) { "Older versions" }
            }
        }
    }
}

pub fn template(
    ctx: &Ctx,
    space: &str,
    chart: &str,
    version: &str,
    path: &str,
    content: &str,
    cut: Option<usize>,
) -> Markup {
    let here = format!("/_/ui/{space}/{chart}/{version}");
    let body = html! {
        h1 { (path) }
        @if let Some(size) = cut {
            p.notice { "The file holds " (size) " bytes; only its first MiB is shown. "
                a href=(format!("{here}/archive")) { "Download the archive" } " for all of it." }
        }
        div.snippet-box {
            pre #template tabindex="0" aria-label=(path) { (content) }
            button.copy type="button" data-copy="template" hidden { "Copy" }
        }
    };
    let crumbs = [(space, format!("/_/ui/{space}")), (chart, format!("/_/ui/{space}/{chart}")), (version, here)];
    layout(ctx, path, &crumbs, body)
}

pub fn search(ctx: &Ctx, q: &str, hits: &[SearchHit], start: usize, per_page: usize) -> Markup {
    let page: Vec<&SearchHit> = hits.iter().skip(start).take(per_page).collect();
    let end = start + page.len();
    let body = html! {
        h1 { "Search" }
        form.actions method="get" action="/_/ui/-/search" role="search" aria-label="Search query" {
            label { "Charts matching" input type="search" name="q" value=(q); }
            button type="submit" { "Search" }
        }
        @if !q.trim().is_empty() {
            p { span #total { (hits.len()) } " charts match " strong { (q) } }
            ol #results .charts.plain start=(start + 1) {
                @for hit in &page {
                    li data-space=(hit.space) data-chart=(hit.chart) {
                        a href=(format!("/_/ui/{}/{}", hit.space, hit.chart)) { strong { (hit.chart) } }
                        " " span.badge { (hit.version) } " in " a href=(format!("/_/ui/{}", hit.space)) { (hit.space) }
                        (deprecated_badge(hit.deprecated))
                        p.description.muted { (hit.description) }
                    }
                }
            }
            div.pager {
                @if start > 0 {
                    a href=(format!("?q={}&start={}", query_escape(q), start.saturating_sub(per_page))) { "Previous" }
                }
                @if end < hits.len() {
                    a href=(format!("?q={}&start={end}", query_escape(q))) { "Next" }
                }
            }
        }
    };
    layout(ctx, "Search", &[], body)
}

pub fn signin(ctx: &Ctx, message: Option<&str>, next: &str) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(message) = message { p.error role="alert" { (message) } }
        form #signin .signin method="post" action="/_/ui/-/signin" {
            input type="hidden" name="next" value=(next);
            label { "User name" input type="text" name="username" autocomplete="username" required; }
            label { "Password" input type="password" name="password" autocomplete="current-password" required; }
            button type="submit" { "Sign in" }
        }
    };
    layout(ctx, "Sign in", &[], body)
}

pub fn tokens(ctx: &Ctx, tokens: &[ListedToken], created: Option<&str>) -> Markup {
    let time = |secs: u64| humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
    let body = html! {
        h1 { "API tokens" }
        @if let Some(token) = created {
            div.notice role="status" {
                p { strong { "Your new token" } " (shown only now; copy it):" }
                div.snippet-box {
                    pre { code #new-token { (token) } }
                    button.copy type="button" data-copy="new-token" hidden { "Copy" }
                }
            }
        }
        p.muted { "Use a token as the password of Helm, ChartMuseum and OCI clients (any user name), or as a Bearer token." }
        h2 { "New token" }
        form #create-token .actions method="post" action="/_/ui/-/tokens" {
            (csrf(ctx))
            label { "Spaces (patterns, comma-separated; empty: all)" input type="text" name="spaces" placeholder="team-*"; }
            label {
                "Most it may do"
                select name="role" {
                    option value="" { "all I may" }
                    option value="read" { "read" }
                    option value="write" { "write" }
                    option value="admin" { "admin" }
                }
            }
            label { "Expires in" input type="text" name="expires" placeholder="30d"; }
            label { "Description" input type="text" name="description" maxlength="256"; }
            button type="submit" { "Create token" }
        }
        h2 { "Your tokens" }
        @if tokens.is_empty() { p.muted { "You have no tokens." } }
        @else {
            div.table-wrap tabindex="0" { table #tokens {
                thead {
                    tr {
                        th scope="col" { "Id" } th scope="col" { "Description" } th scope="col" { "Spaces" }
                        th scope="col" { "Role" } th scope="col" { "Created" } th scope="col" { "Expires" }
                        th scope="col" { "Last used" } th scope="col" { span.skip { "Revoke" } }
                    }
                }
                tbody {
                    @for token in tokens {
                        @let record = &token.record;
                        tr data-token=(record.id) {
                            td { code { (record.id) } }
                            td { (record.description) }
                            td {
                                @if record.limits.spaces.is_empty() { "all" }
                                @else { (record.limits.spaces.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")) }
                            }
                            td { (record.limits.role.map_or_else(|| "all".to_string(), |r| r.to_string())) }
                            td { (time(record.created)) }
                            td { (record.expires.map_or_else(|| "never".to_string(), |e| time(e).to_string())) }
                            td { (token.last_used.map_or_else(|| "never".to_string(), |t| humantime::format_rfc3339_seconds(t).to_string())) }
                            td {
                                form.revoke method="post" action=(format!("/_/ui/-/tokens/{}/revoke", record.id))
                                    data-confirm=(format!("Revoke token {}?", record.id)) {
                                    (csrf(ctx))
                                    button.danger type="submit" aria-label=(format!("Revoke token {}", record.id)) { "Revoke" }
                                }
                            }
                        }
                    }
                }
            } }
        }
    };
    layout(ctx, "API tokens", &[], body)
}

pub fn error(ctx: &Ctx, status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    let body = html! {
        h1 { (title) }
        p.error role="alert" { (message) }
        p { a href="/_/ui/" { "Back to the spaces" } }
    };
    layout(ctx, title, &[], body)
}
