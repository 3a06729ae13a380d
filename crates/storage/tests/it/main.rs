//! chartyard-storage's integration tests, one binary: the registry's behaviour on every
//! backend, its bounded caches, the key layout it writes, and its store requests under
//! concurrency.

mod support;

mod backends;
mod caches;
mod layout;
mod requests;
