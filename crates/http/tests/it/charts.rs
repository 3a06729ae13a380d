//! Chart archives built in memory for the tests.

pub use chartyard_testkit::{ChartBuilder, chart_with_noise, descriptor, digest_of, manifest_bytes, sha256};
