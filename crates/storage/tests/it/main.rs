//! chartyard-storage's integration tests, one binary.

mod caches;
