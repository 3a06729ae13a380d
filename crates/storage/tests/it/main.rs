//! chartyard-storage's integration tests, one binary: the registry's behaviour on every
//! backend, its bounded caches, and the key layout it writes.

mod support;

mod backends;
mod caches;
mod layout;
