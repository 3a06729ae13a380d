//! `TestApp`: the whole HTTP application (`chartyard_http::app`) over an in-memory
//! registry, called in process with `tower::ServiceExt::oneshot` (no socket, no binary).

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request};
use chartyard_http::HttpOptions;
use chartyard_http::auth::{AccessControl, AuthOptions};
use chartyard_storage::{Registry, RegistryOptions};
use object_store::memory::InMemory;
use serde_json::Value;
use tower::ServiceExt;

/// Builds a [`TestApp`] with other than default settings.
#[derive(Default)]
pub struct TestAppBuilder {
    http: HttpOptions,
    registry: RegistryOptions,
}

impl TestAppBuilder {
    /// Serves `space` at the root too (`/index.yaml`, `/api/charts`).
    pub fn default_space(mut self, space: &str) -> Self {
        self.http.default_space = Some(space.to_string());
        self
    }

    /// Changes the HTTP settings.
    pub fn http(mut self, change: impl FnOnce(&mut HttpOptions)) -> Self {
        change(&mut self.http);
        self
    }

    /// Changes the registry settings.
    pub fn registry(mut self, change: impl FnOnce(&mut RegistryOptions)) -> Self {
        change(&mut self.registry);
        self
    }

    pub fn build(self) -> TestApp {
        let store = Arc::new(InMemory::new());
        // The in-memory store can compare-and-swap, as the binary tells the registry.
        let options = RegistryOptions { conditional_updates: true, ..self.registry };
        let registry = Arc::new(Registry::new(store.clone(), options));
        let router = chartyard_http::app(registry.clone(), &self.http);
        TestApp { router, registry, store }
    }

    /// The application under access control.
    pub async fn build_with_access(self, auth: AuthOptions) -> TestApp {
        let store = Arc::new(InMemory::new());
        let options = RegistryOptions { conditional_updates: true, ..self.registry };
        let registry = Arc::new(Registry::new(store.clone(), options));
        let access = AccessControl::open(registry.clone(), auth, None).await.expect("access control");
        let router = chartyard_http::app_with_access(registry.clone(), &self.http, Some(access));
        TestApp { router, registry, store }
    }
}

/// The HTTP application over its own in-memory registry.
pub struct TestApp {
    router: Router,
    pub registry: Arc<Registry>,
    pub store: Arc<InMemory>,
}

impl TestApp {
    /// Default settings, as the binary starts without a configuration.
    pub fn new() -> Self {
        Self::builder().build()
    }

    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// Sends one request through the whole application (middleware included).
    pub async fn request(&self, request: Request<Body>) -> TestResponse {
        let response = self.router.clone().oneshot(request).await.expect("the router never fails");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("response body");
        TestResponse { status: parts.status.as_u16(), headers: parts.headers, body }
    }

    /// `method path` with a body and its content type.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Body>,
        content_type: Option<&str>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.request(request.body(body.into()).unwrap()).await
    }

    /// `method path` with headers and a body.
    pub async fn send_with(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(path).header("host", "registry.test");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.request(request.body(body.into()).unwrap()).await
    }

    pub async fn get_url(&self, path: &str) -> TestResponse {
        self.send(Method::GET, path, Body::empty(), None).await
    }

    pub async fn head_url(&self, path: &str) -> TestResponse {
        self.send(Method::HEAD, path, Body::empty(), None).await
    }

    // ---- /api/v1, named as the binary-level harness names them ----

    /// `GET /api/v1{path}`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.get_url(&api(path)).await
    }

    /// `DELETE /api/v1{path}`.
    pub async fn delete(&self, path: &str) -> TestResponse {
        self.send(Method::DELETE, &api(path), Body::empty(), None).await
    }

    /// `PUT /api/v1{path}` with a JSON body.
    pub async fn put_json(&self, path: &str, body: &Value) -> TestResponse {
        self.send(Method::PUT, &api(path), body.to_string(), Some("application/json")).await
    }

    /// `POST /api/v1{path}` with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> TestResponse {
        self.send(Method::POST, &api(path), body.to_string(), Some("application/json")).await
    }

    pub async fn create_space(&self, space: &str) -> TestResponse {
        self.send(Method::POST, &api(&format!("/spaces?space={space}")), Body::empty(), None).await
    }

    /// Uploads an archive as the seed's clients do (multipart field `chartfile`).
    pub async fn upload(&self, space: &str, archive: &[u8]) -> TestResponse {
        let (content_type, body) = multipart(&[("chartfile", "chart.tgz", archive)]);
        self.send(Method::POST, &api(&format!("/spaces/{space}/charts")), body, Some(&content_type)).await
    }

    pub async fn replace(&self, space: &str, chart: &str, version: &str, archive: &[u8]) -> TestResponse {
        let (content_type, body) = multipart(&[("chartfile", "chart.tgz", archive)]);
        let path = api(&format!("/spaces/{space}/charts/{chart}/versions/{version}"));
        self.send(Method::PUT, &path, body, Some(&content_type)).await
    }

    pub async fn download(&self, space: &str, chart: &str, version: &str) -> Vec<u8> {
        let response = self.get(&format!("/spaces/{space}/charts/{chart}/versions/{version}")).await;
        assert_eq!(response.status, 200, "download {space}/{chart}/{version}");
        response.body.to_vec()
    }
}

/// `/api/v1{path}`.
pub fn api(path: &str) -> String {
    format!("/api/v1{path}")
}

/// A `multipart/form-data` body of file parts `(field, file name, bytes)`; answers its
/// content type and the body.
pub fn multipart(parts: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    const BOUNDARY: &str = "chartyard-test-boundary-7d9f0c";
    let mut body = Vec::new();
    for (field, file_name, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// A whole response: status, headers and the collected body.
pub struct TestResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON body, asserting the status.
    pub fn json(&self, status: u16) -> Value {
        let text = self.text();
        assert_eq!(self.status, status, "unexpected status; body: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
    }

    /// Asserts a seed-style error answer (`{"message","reason"}`) and returns its message.
    pub fn error(&self, status: u16) -> String {
        let body = self.json(status);
        let reason = body["reason"].as_str().unwrap_or_else(|| panic!("no reason in {body}"));
        assert!(["ReasonRequest", "ReasonInternal", "ResourceLocking"].contains(&reason), "{body}");
        body["message"].as_str().unwrap_or_else(|| panic!("no message in {body}")).to_string()
    }

    /// Asserts an error in the OCI distribution spec's shape (`{"errors":[{code,message,
    /// detail?}]}`, JSON content type) whose first code is `code`; returns its message.
    pub fn oci_error(&self, status: u16, code: &str) -> String {
        let content_type = self.header("content-type").unwrap_or_default().to_string();
        let body = self.json(status);
        assert!(content_type.starts_with("application/json"), "error Content-Type is {content_type:?}: {body}");
        let errors = body["errors"].as_array().unwrap_or_else(|| panic!("no errors array in {body}"));
        assert!(!errors.is_empty(), "empty errors array: {body}");
        for error in errors {
            let fields = error.as_object().unwrap_or_else(|| panic!("error entry is not an object: {body}"));
            assert!(fields.keys().all(|k| ["code", "message", "detail"].contains(&k.as_str())), "{body}");
            assert!(error["code"].is_string(), "{body}");
            assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
        assert_eq!(errors[0]["code"], code, "{body}");
        errors[0]["message"].as_str().unwrap().to_string()
    }
}
