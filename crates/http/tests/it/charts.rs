//! Chart archives built in memory for the tests.

pub use chartyard_testkit::{ChartBuilder, chart_with_noise, digest_of, sha256};
