//! The web UI's writes: HTML form posts, each checked like the API call it stands for,
//! answered with a redirect (so reloading does not repeat it) or an error page.

use axum::body::Bytes;
use axum::extract::{Multipart, Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chartyard_core::RegistryError;
use chartyard_core::access::{Action, Role, SpacePattern};
use chartyard_storage::UploadOptions;
use std::collections::HashMap;

use super::{Ctx, UiError, UiResult, html, ok, pages};
use crate::auth::{Denied, SESSION_COOKIE, UI_PREFIX};
use crate::server_routes::{self, NewToken};

/// Fields of a url-encoded form.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Result<Self, UiError> {
        serde_urlencoded::from_bytes(body)
            .map(Self)
            .map_err(|_| UiError::Status(StatusCode::BAD_REQUEST, "the form could not be read".into()))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Refuses a form posted from another site (by the browser's `Sec-Fetch-Site` or
/// `Origin`), or one without the session's CSRF token.
fn check_form(ctx: &Ctx, headers: &HeaderMap, csrf: Option<&str>) -> Result<(), UiError> {
    let forged = || {
        UiError::Status(
            StatusCode::FORBIDDEN,
            "this form was not sent from this site; reload the page and try again".into(),
        )
    };
    // The browser's own verdict when it gives one (behind a proxy that rewrites the host,
    // `Origin` and `Host` differ for forms of this very site); else `Origin` against the
    // host. Clients that send neither are not browsers and carry no ambient cookie.
    let same_site = match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => matches!(site, "same-origin" | "none"),
        None => headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|origin| origin.split_once("://").map_or(origin, |(_, host)| host) == ctx.host),
    };
    if !same_site {
        return Err(forged());
    }
    if !ctx.caller.csrf_matches(csrf) {
        return Err(UiError::Status(
            StatusCode::FORBIDDEN,
            "the form's security token is missing or stale; reload the page and try again".into(),
        ));
    }
    Ok(())
}

fn see_other(location: &str) -> UiResult {
    Ok(Redirect::to(location).into_response())
}

/// The session cookie's `Set-Cookie` value: `value` for `max_age` seconds (0 clears it).
fn session_cookie(ctx: &Ctx, value: &str, max_age: u64) -> HeaderValue {
    let secure = if ctx.base.starts_with("https://") { "; Secure" } else { "" };
    let cookie =
        format!("{SESSION_COOKIE}={value}; Path={UI_PREFIX}; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}");
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("chartyard_session=; Max-Age=0"))
}

/// Where a sign-in may return to: a page of the UI, nothing else (no open redirect).
fn local_target(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with(UI_PREFIX) && !next.contains("//") && !next.contains('\\') => next.into(),
        _ => UI_PREFIX.into(),
    }
}

// ---- signing in ----

pub(super) async fn signin_page(ctx: Ctx, Query(query): Query<HashMap<String, String>>) -> Response {
    if ctx.caller.is_open() {
        return Redirect::to(UI_PREFIX).into_response();
    }
    let next = local_target(query.get("next").map(String::as_str));
    html(StatusCode::OK, pages::signin(&ctx, None, &next))
}

pub(super) async fn sign_in(ctx: Ctx, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        // No session yet, so no token to check: the origin checks stop login CSRF.
        check_form(&ctx, &headers, None)?;
        let form = Form::parse(&body)?;
        let next = local_target(form.get("next"));
        let (user, password) = (form.get("username").unwrap_or_default(), form.get("password").unwrap_or_default());
        match ctx.caller.sign_in_session(user, password).await {
            Ok((_, cookie)) => {
                let ttl = ctx.caller.session_ttl().map_or(0, |t| t.as_secs());
                let mut response = Redirect::to(&next).into_response();
                response.headers_mut().insert(header::SET_COOKIE, session_cookie(&ctx, &cookie, ttl));
                Ok(response)
            }
            Err(Denied::Unauthenticated(message)) => {
                Ok(html(StatusCode::UNAUTHORIZED, pages::signin(&ctx, Some(&message), &next)))
            }
            Err(denied) => Err(denied.into()),
        }
    }
    .await;
    ctx.answer(result)
}

pub(super) async fn sign_out(ctx: Ctx, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let form = Form::parse(&body)?;
        check_form(&ctx, &headers, form.get("csrf"))?;
        let mut response = Redirect::to(UI_PREFIX).into_response();
        response.headers_mut().insert(header::SET_COOKIE, session_cookie(&ctx, "", 0));
        Ok(response)
    }
    .await;
    ctx.answer(result)
}

// ---- spaces ----

pub(super) async fn create_space(ctx: Ctx, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let form = Form::parse(&body)?;
        check_form(&ctx, &headers, form.get("csrf"))?;
        let space = form.get("space").unwrap_or_default().trim();
        chartyard_core::names::check_new_space_name(space)?;
        ctx.require(space, Action::Admin)?;
        ctx.app.registry.create_space(space).await?;
        see_other(&format!("{UI_PREFIX}{space}"))
    }
    .await;
    ctx.answer(result)
}

pub(super) async fn delete_space(ctx: Ctx, Path(space): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let form = Form::parse(&body)?;
        check_form(&ctx, &headers, form.get("csrf"))?;
        ctx.require(&space, Action::Admin)?;
        ctx.app.registry.delete_space(&space).await?;
        see_other(UI_PREFIX)
    }
    .await;
    ctx.answer(result)
}

// ---- versions ----

pub(super) async fn upload(
    ctx: Ctx,
    Path(space): Path<String>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Response {
    let result = async {
        // Refused before the body is read when the caller may not write here at all.
        ctx.require(&space, Action::Write)?;
        let (mut archive, mut provenance, mut csrf) = (None, None, None);
        while let Some(field) = multipart.next_field().await.map_err(crate::error::ApiError::from)? {
            let name = field.name().unwrap_or_default().to_string();
            let data = field.bytes().await.map_err(crate::error::ApiError::from)?;
            match name.as_str() {
                "chart" if !data.is_empty() => archive = Some(data),
                "prov" if !data.is_empty() => provenance = Some(data),
                "csrf" => csrf = Some(String::from_utf8_lossy(&data).into_owned()),
                _ => {}
            }
        }
        check_form(&ctx, &headers, csrf.as_deref())?;
        let archive = archive.ok_or_else(|| {
            UiError::Status(StatusCode::BAD_REQUEST, "choose a chart archive (.tgz) to upload".into())
        })?;
        let options = UploadOptions { provenance, ..UploadOptions::default() };
        let stored = ctx.app.registry.upload_with(&space, archive, options).await?;
        see_other(&format!("{UI_PREFIX}{space}/{}/{}", stored.chart, stored.version))
    }
    .await;
    ctx.answer(result)
}

pub(super) async fn delete_version(
    ctx: Ctx,
    Path((space, chart, version)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let form = Form::parse(&body)?;
        check_form(&ctx, &headers, form.get("csrf"))?;
        ctx.require(&space, Action::Delete)?;
        let options = crate::space::delete_options(Some(&ctx.caller));
        ctx.app.registry.delete_version_as(&space, &chart, &version, options).await?;
        match ctx.app.registry.latest_version(&space, &chart).await {
            Ok(_) => see_other(&format!("{UI_PREFIX}{space}/{chart}")),
            Err(RegistryError::NotFound(_)) => see_other(&format!("{UI_PREFIX}{space}")),
            Err(error) => Err(error.into()),
        }
    }
    .await;
    ctx.answer(result)
}

// ---- API tokens ----

fn require_user(ctx: &Ctx) -> Result<String, UiError> {
    if ctx.caller.is_open() {
        return Err(UiError::Status(
            StatusCode::NOT_FOUND,
            "access control is off: there are no users or tokens".into(),
        ));
    }
    Ok(ctx.caller.require_signed_in()?)
}

pub(super) async fn tokens_page(ctx: Ctx) -> Response {
    let result = async {
        let user = require_user(&ctx)?;
        let tokens = own_tokens(&ctx, &user).await?;
        ok(pages::tokens(&ctx, &tokens, None))
    }
    .await;
    ctx.answer(result)
}

async fn own_tokens(ctx: &Ctx, user: &str) -> Result<Vec<chartyard_storage::tokens::ListedToken>, UiError> {
    let mut tokens = ctx.app.registry.tokens().list().await?;
    tokens.retain(|t| t.record.owner == user);
    tokens.sort_by_key(|t| std::cmp::Reverse(t.record.created));
    Ok(tokens)
}

pub(super) async fn create_token(ctx: Ctx, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        let user = require_user(&ctx)?;
        let form = Form::parse(&body)?;
        check_form(&ctx, &headers, form.get("csrf"))?;
        let bad = |message: String| UiError::Status(StatusCode::BAD_REQUEST, message);
        let spaces = form
            .get("spaces")
            .unwrap_or_default()
            .split([',', ' '])
            .filter(|p| !p.is_empty())
            .map(|p| SpacePattern::new(p).map_err(bad))
            .collect::<Result<Vec<_>, _>>()?;
        let role = match form.get("role").filter(|r| !r.is_empty()) {
            None => None,
            Some(role) => Some(role.parse::<Role>().map_err(bad)?),
        };
        let request = NewToken {
            spaces,
            role,
            expires: form.get("expires").map(str::trim).filter(|e| !e.is_empty()).map(str::to_string),
            description: form.get("description").unwrap_or_default().trim().to_string(),
        };
        let (_, token) = server_routes::issue_token(&ctx.app, &ctx.caller, request).await?;
        let tokens = own_tokens(&ctx, &user).await?;
        ok(pages::tokens(&ctx, &tokens, Some(&token)))
    }
    .await;
    ctx.answer(result)
}

pub(super) async fn revoke_token(ctx: Ctx, Path(id): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let result = async {
        require_user(&ctx)?;
        let form = Form::parse(&body)?;
        check_form(&ctx, &headers, form.get("csrf"))?;
        server_routes::revoke(&ctx.app, &ctx.caller, &id).await?;
        see_other(&format!("{UI_PREFIX}-/tokens"))
    }
    .await;
    ctx.answer(result)
}
