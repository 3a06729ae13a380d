//! The server's own routes under `/_/` (a prefix no space name can take): the OCI token
//! endpoint, the API token API and `whoami`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Extension, Router};
use chartyard_core::access::{Role, SpacePattern, TokenLimits};
use chartyard_core::paging::Page;
use chartyard_core::wire::ListResponse;
use chartyard_storage::tokens::{ListedToken, TokenRecord, seconds};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::auth::{self, Caller, Denied};
use crate::error::ApiError;

/// Most API tokens one user may hold.
const MAX_TOKENS_PER_USER: usize = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_/token", get(token_get).post(token_post))
        .route("/_/tokens", get(list_tokens).post(create_token))
        .route("/_/tokens/{id}", delete(revoke_token))
        .route("/_/whoami", get(whoami))
}

/// `GET /_/token?service=&scope=...`: credentials (if any) by Basic.
async fn token_get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let scopes = query.into_iter().filter(|(k, _)| k == "scope").map(|(_, v)| v).collect();
    auth::token_endpoint(&app, &caller, scopes).await
}

/// `POST /_/token` with an OAuth2 password grant (form fields).
async fn token_post(State(app): State<AppState>, Extension(caller): Extension<Caller>, body: Bytes) -> Response {
    let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(_) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "the body is not a form"),
    };
    let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let scopes = form.iter().filter(|(k, _)| k == "scope").map(|(_, v)| v.clone()).collect();
    match field("grant_type") {
        Some("password") => {
            let (Some(user), Some(password)) = (field("username"), field("password")) else {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "username and password are required");
            };
            let caller = match &app.access {
                Some(access) => auth::password_grant(access, &caller, user, password).await,
                None => caller,
            };
            auth::token_endpoint(&app, &caller, scopes).await
        }
        Some("refresh_token") => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "refresh tokens are not issued; use the password grant",
        ),
        _ => oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant_type must be password"),
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (status, axum::Json(serde_json::json!({"error": error, "error_description": description}))).into_response()
}

/// The signed-in caller, or why not; with access control off there are no users.
fn signed_in(app: &AppState, caller: &Caller) -> Result<String, ApiError> {
    if app.access.is_none() {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "access control is off: there are no users or tokens"));
    }
    // A 401 carries the Basic challenge (see `ApiError::from`).
    Ok(caller.require_signed_in()?)
}

/// A token as the API shows it (never its secret or hash).
#[derive(Debug, Serialize)]
struct TokenView {
    id: String,
    owner: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    spaces: Vec<SpacePattern>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<Role>,
    created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires: Option<String>,
    #[serde(rename = "lastused", skip_serializing_if = "Option::is_none")]
    last_used: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    /// The token itself: only in the answer that creates it.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

fn time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

impl TokenView {
    fn of(record: &TokenRecord, last_used: Option<SystemTime>, token: Option<String>) -> Self {
        Self {
            id: record.id.clone(),
            owner: record.owner.clone(),
            spaces: record.limits.spaces.clone(),
            role: record.limits.role,
            created: time(record.created),
            expires: record.expires.map(time),
            last_used: last_used.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            description: record.description.clone(),
            token,
        }
    }
}

/// `GET /_/tokens`: the caller's tokens; `?all=true` every user's, for global admins.
async fn list_tokens(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let user = signed_in(&app, &caller)?;
    let all = query.get("all").is_some_and(|v| v == "true");
    if all && !caller.is_global_admin() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "only global admins list every user's tokens"));
    }
    let page = Page::parse(query.get("start").map(String::as_str), query.get("limit").map(String::as_str))?;
    let tokens: Vec<TokenView> = app
        .registry
        .tokens()
        .list()
        .await?
        .into_iter()
        .filter(|t: &ListedToken| all || t.record.owner == user)
        .map(|t| TokenView::of(&t.record, t.last_used, None))
        .collect();
    let total = tokens.len();
    let range = page.range(total);
    let items: Vec<TokenView> = tokens.into_iter().skip(range.start).take(range.len()).collect();
    Ok(axum::Json(ListResponse::new(total, items)).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    #[serde(default)]
    pub spaces: Vec<SpacePattern>,
    #[serde(default)]
    pub role: Option<Role>,
    /// A duration (`30d`, `12h`); none: the longest allowed.
    #[serde(default)]
    pub expires: Option<String>,
    #[serde(default)]
    pub description: String,
}

/// `POST /_/tokens`: a new token for the caller, shown once.
async fn create_token(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: NewToken = if body.is_empty() {
        NewToken::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("token request: {}", chartyard_core::error::bounded(&e, 512))))?
    };
    let (record, token) = issue_token(&app, &caller, request).await?;
    Ok((StatusCode::CREATED, axum::Json(TokenView::of(&record, None, Some(token)))).into_response())
}

/// A new API token for the signed-in caller (who signed in with a password): its record
/// and the token itself.
pub(crate) async fn issue_token(
    app: &AppState,
    caller: &Caller,
    request: NewToken,
) -> Result<(TokenRecord, String), ApiError> {
    let user = signed_in(app, caller)?;
    let access = app.access.as_ref().expect("signed_in checked access control is on");
    if caller.identity.token.is_some() || caller.identity.scopes.is_some() {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "tokens are created with a password, not with a token"));
    }
    let bad = ApiError::bad_request;
    if request.spaces.len() > 32 || request.description.len() > 256 {
        return Err(bad("a token names at most 32 space patterns and a description of 256 bytes".into()));
    }
    let expires_in = match &request.expires {
        None => None,
        Some(text) => Some(humantime::parse_duration(text).map_err(|e| bad(format!("expires {text:?}: {e}")))?),
    };
    let expires = auth::token_expiry(access, expires_in).map_err(bad)?;
    let tokens = app.registry.tokens().list().await?;
    if tokens.iter().filter(|t| t.record.owner == user).count() >= MAX_TOKENS_PER_USER {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("{user} has {MAX_TOKENS_PER_USER} tokens already; revoke some first"),
        ));
    }
    let (token, id, hash) = auth::new_api_token().map_err(ApiError::internal_message)?;
    let record = TokenRecord {
        id,
        owner: user,
        hash,
        created: seconds(SystemTime::now()),
        expires,
        limits: TokenLimits { spaces: request.spaces, role: request.role },
        description: request.description,
    };
    app.registry.tokens().create(&record).await?;
    Ok((record, token))
}

/// `DELETE /_/tokens/{id}`: by its owner or a global admin.
async fn revoke_token(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    revoke(&app, &caller, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Revokes token `id`, if the caller is its owner or a global admin.
pub(crate) async fn revoke(app: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let user = signed_in(app, caller)?;
    // A token may end itself (a CI job logging out), but only a password revokes others:
    // a token limited to reading must not take its owner's write tokens away.
    if let Some((own, _)) = &caller.identity.token
        && *own != id
    {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "a token revokes only itself; sign in with a password"));
    }
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, format!("no token {}", chartyard_core::error::echo(id)));
    let record = app.registry.tokens().get(id).await?;
    // Someone else's token is as good as absent, unless the caller is a global admin.
    let Some(record) = record.filter(|r| r.owner == user || caller.is_global_admin()) else {
        return Err(not_found());
    };
    app.registry.tokens().revoke(&record.id).await?;
    if let Some(access) = &app.access {
        access.forget_token(&record.id);
    }
    Ok(())
}

/// `GET /_/whoami`: who the credentials sign in as.
async fn whoami(State(app): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Response, ApiError> {
    if app.access.is_none() {
        return Ok(axum::Json(serde_json::json!({"user": null, "accesscontrol": false, "admin": true})).into_response());
    }
    if let Err(denied) = caller.require_signed_in() {
        // Anonymous callers without credentials learn they are anonymous; refused
        // credentials (a login that failed) are an error.
        if !matches!(denied, Denied::Unauthenticated(_)) || caller.rejected() {
            return Err(denied.into());
        }
    }
    Ok(axum::Json(serde_json::json!({
        "user": caller.identity.user,
        "accesscontrol": true,
        "admin": caller.is_global_admin(),
        "token": caller.identity.token.as_ref().map(|(id, _)| id),
    }))
    .into_response())
}
