//! chartyard's integration tests, one binary: each module drives the real `chartyard`
//! binary (started on a loopback port by `common::Server`) and, where installed, real
//! clients such as helm. Run one module with `cargo test -p chartyard --test it oci_spec::`.

mod common;

mod access;
mod auth_clients;
mod bad_input;
mod chartmuseum_api;
mod cli;
mod cli_auth;
mod cli_config;
mod cm_push;
mod compose;
mod concurrency;
mod deploy_chart;
mod durability;
mod helm_client;
mod helm_repo;
mod limits;
mod oci_helm;
mod oci_spec;
mod operations;
mod policies;
mod replicas;
mod s3;
mod seed_e2e;
mod shutdown;
mod support_s3;
mod tls;
mod traces;
mod ui;
