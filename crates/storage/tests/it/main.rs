//! chartyard-storage's integration tests, one binary: the registry's behaviour on every
//! backend and its bounded caches.

mod support;

mod backends;
mod caches;
