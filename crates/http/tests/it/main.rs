//! chartyard-http's tests, one binary: the whole application (`chartyard_http::app`) over
//! an in-memory registry, driven in process through `TestApp` without a socket. What
//! needs the real binary, real clients or a disk (helm, durability, connection limits,
//! the CLI) is tested in `crates/chartyard/tests/it`.

mod app;
mod charts;

mod access;
mod api_routes;
mod oci_errors;
mod policies;
mod search;
mod settings;
mod snapshots;
mod ui;
