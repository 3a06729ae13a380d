//! Access control at the HTTP edge, decided in one place for every protocol:
//!
//! - the identity layer ([`identify`]) runs on every request: it checks the credentials
//!   (Basic with a password or an API token, Bearer with an API token or a bearer token of
//!   the token endpoint), leaves a [`Caller`] in the request, and writes the audit line of
//!   every write;
//! - every route carries the action it needs ([`guard`]); the guard takes the space (and
//!   OCI repository) from the matched path and asks the policy before the handler, and so
//!   before any registry call, runs. Handlers that touch more than their route's space
//!   (orchestration's sources, listings) ask the [`Caller`] themselves.
//!
//! With no access control configured every caller may do everything, as before.

mod credentials;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::uri::Scheme;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use chartyard_core::access::{Action, Scope, ScopeAction, TokenLimits};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::AppState;

use credentials::Failure;
pub use credentials::{AccessControl, AuthOptions, TOKEN_PREFIX};
pub(crate) use credentials::{new_api_token, token_expiry};

/// The challenge of the seed API, ChartMuseum's API and Helm repositories.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"chartyard\", charset=\"UTF-8\"";

/// Who is asking, as proven.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The user; none for anonymous callers.
    pub user: Option<String>,
    /// The API token it came with: its id and limits.
    pub token: Option<(String, TokenLimits)>,
    /// The scopes of the bearer token it came with (OCI).
    pub scopes: Option<Vec<Scope>>,
    /// The web UI session it came with (its id), which its forms' CSRF tokens are bound to.
    pub session: Option<String>,
}

impl Identity {
    fn policy_caller(&self) -> chartyard_core::access::Caller<'_> {
        chartyard_core::access::Caller { user: self.user.as_deref(), limits: self.token.as_ref().map(|(_, l)| l) }
    }

    /// How the caller signed in, for the audit log.
    fn via(&self) -> String {
        match (&self.token, &self.scopes) {
            (Some((id, _)), _) => format!("token:{id}"),
            (None, Some(_)) => "bearer".into(),
            (None, None) if self.session.is_some() => "session".into(),
            (None, None) if self.user.is_some() => "password".into(),
            _ => "anonymous".into(),
        }
    }
}

/// What came of the credentials of a request.
#[derive(Debug, Clone)]
enum Proof {
    /// None given, or good ones.
    Accepted,
    /// Wrong, expired, revoked or malformed.
    Rejected(&'static str),
    /// Too many failures from this client lately; not checked.
    Throttled,
    /// They could not be checked (the store did not answer).
    Unavailable,
}

impl Proof {
    /// Counts a refused or unchecked credential in `chartyard_auth_failures_total`.
    fn count_failure(&self) {
        let reason = match self {
            Proof::Accepted => return,
            Proof::Rejected(_) => "rejected",
            Proof::Throttled => "throttled",
            Proof::Unavailable => "unavailable",
        };
        metrics::counter!("chartyard_auth_failures_total", "reason" => reason).increment(1);
    }
}

/// The caller of a request, left in its extensions by [`identify`].
#[derive(Clone)]
pub struct Caller {
    pub identity: Identity,
    proof: Proof,
    access: Option<Arc<AccessControl>>,
    /// The client's address: the peer's, or what a trusted proxy says it forwarded.
    client: Option<IpAddr>,
    https: bool,
}

impl Caller {
    /// Whether access control is off (everyone may do everything).
    pub fn is_open(&self) -> bool {
        self.access.is_none()
    }

    /// Whether the caller may do `action` in `space`.
    pub fn allows(&self, space: &str, action: Action) -> bool {
        match &self.access {
            None => true,
            Some(access) => {
                matches!(self.proof, Proof::Accepted)
                    && access.options.policy.allows(self.identity.policy_caller(), space, action)
            }
        }
    }

    /// Whether the caller is a global admin (or access control is off).
    pub fn is_global_admin(&self) -> bool {
        match &self.access {
            None => true,
            Some(access) => access.options.policy.is_global_admin(self.identity.policy_caller()),
        }
    }

    /// `Ok` if the caller may do `action` in `space`, else why not.
    pub fn require(&self, space: &str, action: Action) -> Result<(), Denied> {
        if self.allows(space, action) { Ok(()) } else { Err(self.denied(space, action)) }
    }

    fn signed_in(&self) -> bool {
        self.identity.user.is_some()
    }

    /// Whether the caller may pull from OCI repository `repository` (`{space}/{name}`).
    pub fn may_pull(&self, repository: &str) -> bool {
        let Some((space, _)) = repository.split_once('/') else { return false };
        match &self.identity.scopes {
            Some(scopes) if self.access.is_some() => {
                matches!(self.proof, Proof::Accepted) && scopes.iter().any(|s| s.permits(repository, ScopeAction::Pull))
            }
            _ => self.allows(space, Action::Read),
        }
    }

    /// The answer to `GET /v2/` of a caller that has not signed in (anonymous bearer
    /// tokens count as signed in): 401 with the challenge that names the token endpoint.
    pub fn challenge_ping(&self, headers: &HeaderMap) -> Option<Response> {
        let access = self.access.as_ref()?;
        let denied = match self.proof {
            Proof::Accepted if self.signed_in() || self.identity.scopes.is_some() => return None,
            Proof::Accepted => Denied::Unauthenticated("authentication required".into()),
            _ => self.denied("", Action::Read),
        };
        let need = Need { protocol: Protocol::Oci, action: Action::Read };
        Some(deny(Protocol::Oci, denied, &Challenge { access, caller: self, headers, repository: None, need }))
    }

    /// `Ok` unless credentials were given and refused (or could not be checked): for
    /// routes without a guard, whose callers get 401, not an empty listing.
    pub fn credentials(&self) -> Result<(), Denied> {
        match (&self.access, &self.proof) {
            (None, _) | (_, Proof::Accepted) => Ok(()),
            _ => Err(self.denied("", Action::Read)),
        }
    }

    /// The answer for a route without a guard (listings filtered per caller) when the
    /// credentials given were refused: such a caller gets 401, not an empty listing.
    pub fn refused(&self, protocol: Protocol, headers: &HeaderMap) -> Option<Response> {
        let denied = self.credentials().err()?;
        let access = self.access.as_ref()?;
        let need = Need { protocol, action: Action::Read };
        let challenge = Challenge { access, caller: self, headers, repository: None, need };
        Some(deny(protocol, denied, &challenge))
    }

    /// Whether the request came with credentials that were refused.
    pub fn rejected(&self) -> bool {
        matches!(self.proof, Proof::Rejected(_))
    }

    /// The signed-in user, or why there is none.
    pub fn require_signed_in(&self) -> Result<String, Denied> {
        match (&self.proof, &self.identity.user) {
            (Proof::Accepted, Some(user)) => Ok(user.clone()),
            _ => Err(self.denied("", Action::Read)),
        }
    }

    /// The CSRF token the web UI's forms must carry: one bound to the caller's session,
    /// none without a session (nothing a forged request could borrow).
    pub fn csrf_token(&self) -> Option<String> {
        Some(self.access.as_ref()?.csrf_token(self.identity.session.as_ref()?))
    }

    /// Whether a form's CSRF token is the one of the caller's session.
    pub fn csrf_matches(&self, given: Option<&str>) -> bool {
        match self.csrf_token() {
            None => true,
            Some(expected) => given.is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes()))),
        }
    }

    /// The caller after a password sign-in through the web UI, and the session cookie to
    /// set; the caller with the reason when it failed.
    pub async fn sign_in_session(&self, user: &str, password: &str) -> Result<(String, String), Denied> {
        let Some(access) = &self.access else {
            return Err(Denied::Forbidden("access control is off: there is nothing to sign in to".into()));
        };
        if password.starts_with(TOKEN_PREFIX) {
            return Err(Denied::Unauthenticated("sign in with a password; API tokens are for clients".into()));
        }
        let signed = password_grant(access, self, user, password).await;
        let user = signed.require_signed_in()?;
        let cookie = access.start_session(&user).ok_or(Denied::Unavailable)?;
        Ok((user, cookie))
    }

    /// Whether the request runs over TLS (cookies are then marked `Secure`).
    pub fn https(&self) -> bool {
        self.https
    }

    /// How long a UI session lasts.
    pub fn session_ttl(&self) -> Option<std::time::Duration> {
        self.access.as_ref().map(|a| a.options.session_ttl)
    }

    pub fn name(&self) -> &str {
        self.identity.user.as_deref().unwrap_or("anonymous")
    }

    fn denied(&self, space: &str, action: Action) -> Denied {
        match self.proof {
            Proof::Rejected(why) => Denied::Unauthenticated(why.into()),
            Proof::Throttled => Denied::Throttled,
            Proof::Unavailable => Denied::Unavailable,
            Proof::Accepted if !self.signed_in() => Denied::Unauthenticated("authentication required".into()),
            Proof::Accepted => {
                Denied::Forbidden(format!("{} may not {} in space {space:?}", self.name(), action.as_str()))
            }
        }
    }
}

/// Why a request may not go on.
#[derive(Debug)]
pub enum Denied {
    /// No or bad credentials: 401 with a challenge.
    Unauthenticated(String),
    /// Signed in, but not allowed: 403.
    Forbidden(String),
    /// Too many failed logins: 429.
    Throttled,
    /// Credentials could not be checked: 503.
    Unavailable,
}

impl Denied {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Throttled => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The headers of this refusal outside OCI distribution (whose 401 challenge names
    /// the token endpoint and the repository): the Basic challenge of a 401, the
    /// `Retry-After` of a 429.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            Self::Unauthenticated(_) => vec![(header::WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_CHALLENGE))],
            Self::Throttled => vec![(header::RETRY_AFTER, HeaderValue::from_static("60"))],
            Self::Forbidden(_) | Self::Unavailable => vec![],
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Unauthenticated(m) | Self::Forbidden(m) => m.clone(),
            Self::Throttled => "too many failed logins from this client; try again in a minute".into(),
            Self::Unavailable => "credentials cannot be checked now; try again".into(),
        }
    }
}

/// The protocol of a route, which shapes its error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `/api/v1` and the server's own routes: `{"message","reason"}`.
    Api,
    /// ChartMuseum's API and Helm repositories: `{"error"}`.
    ChartMuseum,
    /// OCI distribution: `{"errors":[...]}` and a Bearer challenge.
    Oci,
}

/// What a route needs.
#[derive(Debug, Clone, Copy)]
struct Need {
    protocol: Protocol,
    action: Action,
}

/// `route`, allowed only to callers who may do `action` in the space its path names.
pub fn guard(protocol: Protocol, action: Action, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.layer(from_fn_with_state(Need { protocol, action }, authorize))
}

async fn authorize(State(need): State<Need>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let params = RawPathParams::from_request_parts(&mut parts, &()).await.ok();
    if let Some(refusal) = refusal(need, &parts, params.as_ref()) {
        return refusal;
    }
    next.run(Request::from_parts(parts, body)).await
}

/// The answer to a request whose caller may not do what its route needs, if it may not.
fn refusal(need: Need, parts: &Parts, params: Option<&RawPathParams>) -> Option<Response> {
    let caller = parts.extensions.get::<Caller>()?;
    let access = caller.access.as_ref()?;
    let param = |name: &str| params.and_then(|p| p.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()));
    let space = param("space").or_else(|| access.default_space.clone())?;
    let repository = param("name").filter(|_| need.protocol == Protocol::Oci).map(|name| format!("{space}/{name}"));
    let decision = match (&repository, &caller.identity.scopes) {
        // A bearer token of the token endpoint allows what its scopes say.
        (Some(repository), Some(scopes)) => {
            let wanted = ScopeAction::of(need.action);
            if matches!(caller.proof, Proof::Accepted) && scopes.iter().any(|s| s.permits(repository, wanted)) {
                Ok(())
            } else if caller.allows(&space, need.action) || !caller.signed_in() {
                // Allowed, but not by this token: the client asks for one that is.
                Err(Denied::Unauthenticated("the bearer token does not grant this".into()))
            } else {
                Err(caller.denied(&space, need.action))
            }
        }
        _ => caller.require(&space, need.action),
    };
    let denied = decision.err()?;
    let challenge = Challenge { access, caller, headers: &parts.headers, repository, need };
    Some(deny(need.protocol, denied, &challenge))
}

/// What a 401 challenge is built from.
struct Challenge<'a> {
    access: &'a AccessControl,
    caller: &'a Caller,
    headers: &'a HeaderMap,
    repository: Option<String>,
    need: Need,
}

impl Challenge<'_> {
    fn header(&self) -> String {
        if self.need.protocol != Protocol::Oci {
            return BASIC_CHALLENGE.into();
        }
        let realm = self.access.realm(self.headers, self.caller.https);
        let mut challenge = format!("Bearer realm=\"{realm}\",service=\"{}\"", self.access.options.service);
        if let Some(repository) = &self.repository {
            let actions = match self.need.action {
                Action::Read => "pull",
                Action::Write => "pull,push",
                Action::Delete | Action::Admin => "delete",
            };
            challenge.push_str(&format!(",scope=\"repository:{repository}:{actions}\""));
            if self.caller.identity.scopes.is_some() {
                challenge.push_str(",error=\"insufficient_scope\"");
            }
        }
        challenge
    }
}

/// The answer to a denied request, in its protocol's shape.
fn deny(protocol: Protocol, denied: Denied, challenge: &Challenge<'_>) -> Response {
    let status = denied.status();
    let message = denied.message();
    let mut response = match protocol {
        Protocol::Api => crate::error::ApiError::new(status, message).into_response(),
        Protocol::ChartMuseum => crate::chartmuseum::CmError::new(status, message).into_response(),
        Protocol::Oci => {
            let code = match &denied {
                Denied::Unauthenticated(_) => "UNAUTHORIZED",
                Denied::Forbidden(_) => "DENIED",
                Denied::Throttled => "TOOMANYREQUESTS",
                Denied::Unavailable => "UNAVAILABLE",
            };
            let body = json!({"errors": [{"code": code, "message": message, "detail": null}]});
            (status, [("docker-distribution-api-version", "registry/2.0")], axum::Json(body)).into_response()
        }
    };
    match denied {
        Denied::Unauthenticated(_) => {
            if let Ok(value) = HeaderValue::from_str(&challenge.header()) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        Denied::Throttled => {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        _ => {}
    }
    response
}

/// Where the web UI lives; its session cookie is scoped to it.
pub const UI_PREFIX: &str = "/_/ui/";
/// The name of the web UI's session cookie.
pub const SESSION_COOKIE: &str = "chartyard_session";

/// The value of the session cookie, if the request carries one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(SESSION_COOKIE)?.strip_prefix('='))
}

/// The identity layer: checks the request's credentials and leaves its [`Caller`].
pub async fn identify(State(state): State<IdentifyState>, request: Request, next: Next) -> Response {
    let access = state.access.clone();
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let https = request.extensions().get::<Scheme>().is_some_and(|s| *s == Scheme::HTTPS);
    let caller = match access {
        None => Caller { identity: Identity::default(), proof: Proof::Accepted, access: None, client: peer, https },
        Some(access) => {
            let client = peer.map(|peer| access.client(peer, request.headers()));
            let (mut identity, mut proof) = access.check(request.headers(), client).await;
            // The web UI's session cookie counts on the UI's own routes only: a browser
            // sends it with any request to this host, and the APIs have no CSRF tokens.
            if request.uri().path().starts_with(UI_PREFIX)
                && !request.headers().contains_key(header::AUTHORIZATION)
                && let Some((user, sid)) = session_cookie(request.headers()).and_then(|c| access.session(c))
            {
                identity = Identity { user: Some(user), session: Some(sid), ..Identity::default() };
            }
            // A bearer token of the token endpoint grants OCI scopes, which say nothing of
            // the other APIs: there it would act for its whole user, whatever its scopes.
            let path = request.uri().path();
            if identity.scopes.is_some() && path != "/v2" && !path.starts_with("/v2/") {
                identity = Identity::default();
                proof = Proof::Rejected("a bearer token of /_/token is for the OCI API (/v2/) only");
            }
            proof.count_failure();
            Caller { identity, proof, access: Some(access), client, https }
        }
    };
    // Every write gets one audit line: who, what, from where, and how it ended. A token
    // request is a sign-in, not a write.
    let method = request.method().clone();
    let audited = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS) && request.uri().path() != "/_/token";
    let path = audited.then(|| {
        let mut path = request.uri().path().to_string();
        chartyard_core::error::shorten(&mut path, 512);
        path
    });
    let (user, via, client) = (caller.name().to_string(), caller.identity.via(), caller.client);
    // Where the write lands, for the space's audit log: the route's space (or the default
    // space on its routes), with the chart and version the route names.
    let (mut parts, body) = request.into_parts();
    let target = match (&path, &state.audit) {
        (Some(_), Some(_)) => audit_target(&mut parts, state.default_space.as_deref()).await,
        _ => None,
    };
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(crate::observe::LoggedCaller { user: user.clone(), client });
    if let Some(path) = path {
        let client = client.map(|ip| ip.to_string()).unwrap_or_default();
        let status = response.status().as_u16();
        tracing::info!(target: "chartyard::audit", user, via, client = %client, %method, path, status, "write");
        // Queued only now: the write it records has finished (its answer is ready).
        if let (Some(target), Some(audit)) = (target, &state.audit) {
            let now = SystemTime::now();
            let entry = chartyard_core::wire::AuditEntry {
                time: humantime::format_rfc3339_millis(now).to_string(),
                user,
                via,
                client,
                method: method.to_string(),
                route: target.route,
                path,
                status,
                chart: target.chart,
                version: target.version,
            };
            audit.submit(target.space, now, entry);
        }
    }
    response
}

/// What [`identify`] needs.
#[derive(Clone)]
pub struct IdentifyState {
    /// Access control; none: everyone may do everything.
    pub access: Option<Arc<AccessControl>>,
    /// Where writes are recorded per space; none: only in the log.
    pub audit: Option<Arc<crate::audit::AuditQueue>>,
    /// The space the routes without one in their path serve.
    pub default_space: Option<String>,
}

/// The space, route template, chart and version of an audited request.
struct AuditTarget {
    space: String,
    route: String,
    chart: Option<String>,
    version: Option<String>,
}

/// Where an audited request writes: `None` for requests that name no space.
async fn audit_target(parts: &mut Parts, default_space: Option<&str>) -> Option<AuditTarget> {
    let route = parts.extensions.get::<axum::extract::MatchedPath>()?.as_str().to_string();
    let params = RawPathParams::from_request_parts(parts, &()).await.ok();
    let param = |name: &str| params.as_ref()?.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
    let space = match param("space") {
        Some(space) => space,
        // Creating a space names it in the query.
        None if route == "/api/v1/spaces" => {
            let query = parts.uri.query().unwrap_or_default();
            let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
            pairs.into_iter().find(|(k, _)| k == "space").map(|(_, v)| v)?
        }
        // ChartMuseum's API for the default space.
        None if route.starts_with("/api/") && !route.starts_with("/api/v1/") => default_space?.to_string(),
        None => return None,
    };
    if !chartyard_core::names::is_valid_name(&space) {
        return None;
    }
    let (chart, version) = if route.starts_with("/v2/") {
        // A repository is a chart; a tag (not a digest) is its version.
        (param("name"), param("reference").filter(|r| !r.contains(':')))
    } else {
        (param("chart").or_else(|| param("name")), param("version"))
    };
    let shorten = |mut value: String| {
        chartyard_core::error::shorten(&mut value, 256);
        value
    };
    Some(AuditTarget { space, route, chart: chart.map(shorten), version: version.map(shorten) })
}

// ---- the token endpoint ----

/// `GET|POST /_/token`: bearer tokens for OCI clients (the distribution token protocol
/// with Basic credentials, and the OAuth2 password grant).
pub(crate) async fn token_endpoint(app: &AppState, caller: &Caller, scopes: Vec<String>) -> Response {
    let Some(access) = &app.access else {
        // Open: any token does; clients only need one to carry.
        return token_answer(String::from("open"), 3600);
    };
    // A bearer token of this endpoint is never exchanged for another (`identify` refuses
    // it outside /v2/): the new one would carry every scope its user may have, and
    // exchanging it again before each expiry would keep a token alive without a password.
    let denied = match &caller.proof {
        Proof::Accepted => None,
        Proof::Throttled => Some(Denied::Throttled),
        Proof::Unavailable => Some(Denied::Unavailable),
        Proof::Rejected(why) => Some(Denied::Unauthenticated((*why).into())),
    };
    if let Some(denied) = denied {
        let body = json!({"error": "invalid_grant", "error_description": denied.message()});
        let mut response = (denied.status(), axum::Json(body)).into_response();
        response.headers_mut().extend(denied.headers());
        return response;
    }
    let policy_caller = caller.identity.policy_caller();
    let granted: Vec<Scope> = scopes
        .iter()
        .flat_map(|s| s.split(' '))
        .take(32)
        .filter_map(Scope::parse)
        .filter_map(|scope| scope.granted(&access.options.policy, policy_caller))
        .collect();
    let (token, ttl) = access.sign(&caller.identity, granted);
    token_answer(token, ttl)
}

fn token_answer(token: String, ttl: u64) -> Response {
    let issued = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    axum::Json(json!({"token": token, "access_token": token, "expires_in": ttl, "issued_at": issued})).into_response()
}

/// The caller of a password grant: its user and password from the form.
pub(crate) async fn password_grant(access: &AccessControl, caller: &Caller, user: &str, password: &str) -> Caller {
    let peer = caller.client;
    let signed = password_grant_unobserved(access, caller, user, password, peer).await;
    signed.proof.count_failure();
    signed
}

async fn password_grant_unobserved(
    access: &AccessControl,
    caller: &Caller,
    user: &str,
    password: &str,
    peer: Option<IpAddr>,
) -> Caller {
    if access.throttled(peer) {
        return Caller { proof: Proof::Throttled, identity: Identity::default(), ..caller.clone() };
    }
    match access.sign_in(user, password).await {
        Ok(identity) => Caller { identity, proof: Proof::Accepted, ..caller.clone() },
        Err(Failure::Unavailable(_)) => {
            Caller { proof: Proof::Unavailable, identity: Identity::default(), ..caller.clone() }
        }
        Err(Failure::Rejected(why)) => {
            access.failed(peer);
            tokio::time::sleep(access.options.failure_delay).await;
            Caller { proof: Proof::Rejected(why), identity: Identity::default(), ..caller.clone() }
        }
    }
}
